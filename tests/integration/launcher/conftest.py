"""Drive the launcher's command line as a user would, against the real test cluster."""

from __future__ import annotations

import json
import os
import queue
import re
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from launcher.config.distribution import project_wheel, running_origin
from tests.cluster import rig

REPO = Path(__file__).resolve().parents[3]
RUN_JUPYTER = REPO / "run_jupyter.py"
URL_RE = re.compile(r"http://127\.0\.0\.1:(\d+)/lab\?token=(\S+)")


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


def read_url(proc: subprocess.Popen[str], timeout: float = 240) -> tuple[str, int, str]:
    """Wait for the URL line of a foreground run; return (url, port, token)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if ready:
            line = proc.stdout.readline()
            match = URL_RE.search(line)
            if match:
                return match.group(0), int(match.group(1)), match.group(2)
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            pytest.fail(f"run exited ({proc.returncode}) before printing a URL:\n{err}")
    proc.kill()
    pytest.fail(f"no URL within {timeout}s")


def follow_until(proc: subprocess.Popen[str], text: str, timeout: float) -> list[str]:
    """Lines of ``proc``'s output up to the first containing ``text`` (read by a thread: the
    pipe's text buffer may hold lines that select() on its descriptor does not see)."""
    assert proc.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    stdout = proc.stdout
    threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            seen.append(lines.get(timeout=1.0))
        except queue.Empty:
            assert proc.poll() is None, "".join(seen)
            continue
        if text in seen[-1]:
            return seen
    pytest.fail(f"no {text!r} within {timeout}s:\n{''.join(seen)}")


def url_of(stdout: str) -> tuple[str, int, str]:
    match = URL_RE.search(stdout)
    assert match, stdout
    return match.group(0), int(match.group(1)), match.group(2)


def wait_until(predicate, timeout: float, interval: float = 0.5) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


@pytest.fixture
def sandbox(
    clean_netns_queue: rig.ClusterInfo, cluster_venv: str, tmp_path: Path
) -> Iterator[Launcher]:
    """The launcher pointed at the two-namespace cluster; every job cancelled afterwards."""
    info = clean_netns_queue
    launcher = Launcher(tmp_path / "platforms.ini", launcher_env(tmp_path), info)
    launcher.write_site("sandbox", **info.ini_section(), env_path=cluster_venv)
    yield launcher


def checked_sandbox(
    info: rig.ClusterInfo, venv: str, tmp_path: Path, env: dict[str, str] | None = None
) -> Iterator[Launcher]:
    """The launcher on the cluster; asserts that the test leaves none of its user's jobs."""
    launcher = Launcher(tmp_path / "platforms.ini", env or launcher_env(tmp_path), info)
    launcher.write_site("sandbox", **info.ini_section(), env_path=venv)
    assert launcher.squeue() == "", "jobs of the test user were queued before the test"
    try:
        yield launcher
        assert wait_until(lambda: launcher.squeue() == "", 60), launcher.squeue()
    finally:
        subprocess.run(rig.slurm_cmd(info, "scancel", "-u", info.user), check=False)


@pytest.fixture
def local_launcher(tmp_path: Path) -> Launcher:
    """The launcher with only the built-in sites."""
    launcher = Launcher(tmp_path / "platforms.ini", launcher_env(tmp_path))
    launcher.write_site("local", platform="local")
    return launcher


def launcher_env(tmp_path: Path) -> dict[str, str]:
    """State and user config directories of the test's own (the user's files stay unread)."""
    return {
        **os.environ,
        "EOHPC_STATE_DIR": str(tmp_path / "state"),
        "EOHPC_CONFIG_DIR": str(tmp_path / "user-config"),
        "PYTHONUNBUFFERED": "1",
    }


# --------------------------------------------------------------------------------------------
# the launcher installed from its wheel, outside the checkout


def pip_install(venv: Path) -> list[str]:
    """pip install into `venv` without dependencies (they come from this machine)."""
    python = str(venv / "bin" / "python")
    options = ["-q", "--no-deps", "--ignore-installed", "--disable-pip-version-check"]
    return [python, "-m", "pip", "install", *options]


NOTEBOOK = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


@dataclass
class Installed:
    venv: Path
    wheel: Path
    workdir: Path
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.venv / "bin" / "run-jupyter"), *args],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def python(self, code: str) -> str:
        result = subprocess.run(
            [str(self.venv / "bin" / "python"), "-c", code],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout.strip()


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """eo-hpc from its wheel in a fresh venv outside the checkout (dependencies from this
    machine), run from a work directory with a notebook, with its own HOME and config dir."""
    base = tmp_path_factory.mktemp("wheel-install")
    assert not base.resolve().is_relative_to(REPO)
    dist = base / "dist"
    dist.mkdir()
    wheel = project_wheel(dist, running_origin())
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    subprocess.run(
        [*pip_install(venv), str(wheel)],
        check=True,
    )
    workdir = base / "work"
    workdir.mkdir()
    (workdir / "hello.ipynb").write_text(json.dumps(NOTEBOOK))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "EOHPC_"))}
    env.update(
        HOME=str(base / "home"),
        EOHPC_STATE_DIR=str(base / "state"),
        EOHPC_CONFIG_DIR=str(base / "config"),
        PYTHONUNBUFFERED="1",
    )
    (base / "home").mkdir()
    return Installed(venv, wheel, workdir, env)
