"""The launcher's command line, run as a user would, with a platforms.ini and state directory
of the test's own."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.cluster import rig
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
RUN_JUPYTER = REPO / "run_jupyter.py"


@dataclass
class Launcher:
    """The CLI with its own platforms.ini and state dir."""

    ini: Path
    env: dict[str, str]
    info: rig.ClusterInfo | None = None

    def command(self, *args: str) -> list[str]:
        return [sys.executable, str(RUN_JUPYTER), "--config", str(self.ini), *args]

    def run(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        """Run the CLI to completion."""
        return subprocess.run(
            self.command(*args),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def start(self, *args: str) -> subprocess.Popen[str]:
        """Start the CLI in the background (a foreground `run` as the user would)."""
        return subprocess.Popen(
            self.command(*args),
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )

    def write_site(self, uid: str, **keys: str) -> None:
        """Append a [uid] section to the test's platforms.ini."""
        with self.ini.open("a", encoding="utf-8") as handle:
            handle.write(f"\n[{uid}]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items()))

    def squeue(self) -> str:
        """The cluster user's jobs (as root on the login node)."""
        assert self.info is not None
        cmd = rig.slurm_cmd(self.info, "squeue", "-h", "-u", self.info.user, "-o", "%i %T")
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()

    def scontrol_job(self, job_id: str) -> str:
        assert self.info is not None
        cmd = rig.slurm_cmd(self.info, "scontrol", "show", "job", "-dd", job_id)
        return subprocess.run(cmd, capture_output=True, text=True).stdout


def launcher_env(tmp_path: Path) -> dict[str, str]:
    """State and user config directories of the test's own (the user's files stay unread)."""
    return {
        **os.environ,
        "EOHPC_STATE_DIR": str(tmp_path / "state"),
        "EOHPC_CONFIG_DIR": str(tmp_path / "user-config"),
        "PYTHONUNBUFFERED": "1",
    }


def checked_sandbox(
    info: rig.ClusterInfo, venv: str, tmp_path: Path, env: dict[str, str] | None = None
) -> Iterator[Launcher]:
    """The launcher on the cluster; asserts that the test leaves none of its user's jobs (the
    body of a fixture: ``yield from checked_sandbox(...)``)."""
    launcher = Launcher(tmp_path / "platforms.ini", env or launcher_env(tmp_path), info)
    launcher.write_site("sandbox", **info.ini_section(), env_path=venv)
    assert launcher.squeue() == "", "jobs of the test user were queued before the test"
    try:
        yield launcher
        assert wait_until(lambda: launcher.squeue() == "", 60), launcher.squeue()
    finally:
        subprocess.run(rig.slurm_cmd(info, "scancel", "-u", info.user), check=False)


def assert_error(result: subprocess.CompletedProcess[str], code: int, *phrases: str) -> None:
    """The launcher ended with ``code``, no traceback, and said each of ``phrases``."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr
