"""run --scheduler on the two-namespace cluster: the session's Dask scheduler used from the laptop.

The compute node is reachable only through the login node; the launcher copies the scheduler's
TLS files here and forwards a port while a launcher process (`attach` here) holds the tunnel.
"""

from __future__ import annotations

import json
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from distributed import Client

from tests.cluster import rig
from tests.support.launcher_run import Launcher, checked_sandbox, launcher_env
from tests.support.process_output import url_of
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.netns, pytest.mark.slow, pytest.mark.timeout(900)]

LAPTOP_CLIENT = """
import json
import socket

import dask.array as da
from eotoolkit.cluster import get_client

with get_client() as client:
    total = da.ones((4000, 1000), chunks=(500, 500)).sum().compute()
    hosts = sorted(set(client.run(socket.gethostname).values()))
    print("RESULT " + json.dumps({"total": int(total), "address": client.scheduler.address,
                                  "hosts": hosts}))
"""


@pytest.fixture
def scheduler_launcher(
    netns_cluster: rig.ClusterInfo, cluster_venv: str, tmp_path: Path
) -> Iterator[Launcher]:
    """The launcher pointed at the cluster; asserts that the test leaves none of its user's jobs."""
    env = launcher_env(tmp_path)
    env.pop("EOHPC_SCHEDULER_FILE", None)
    env.pop("DASK_SCHEDULER_ADDRESS", None)
    yield from checked_sandbox(netns_cluster, cluster_venv, tmp_path, env)


def job_names(launcher: Launcher) -> set[str]:
    info = launcher.info
    assert info is not None
    cmd = rig.slurm_cmd(info, "squeue", "-h", "-u", info.user, "-o", "%j")
    return set(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split())


def status_json(launcher: Launcher) -> dict[str, object]:
    result = launcher.run("--uid", "sandbox", "--mode", "status", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


class Lines:
    """A foreground launcher's stdout, read line by line in a thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float = 300) -> str:
        """The first line containing text (fails if the launcher exits first)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = next((line for line in self.lines if text in line), None)
            if found is not None:
                return found
            if self.proc.poll() is not None:
                pytest.fail(f"the launcher exited ({self.proc.returncode}) before {text!r}")
            time.sleep(0.2)
        pytest.fail(f"no {text!r} within {timeout}s: {self.lines}")


def test_scheduler_from_the_laptop(scheduler_launcher: Launcher, tmp_path: Path) -> None:
    launcher = scheduler_launcher
    info = launcher.info
    assert info is not None
    started = launcher.run(
        "--uid", "sandbox", "--mode", "run", "--no-browser", "--detach", "--scheduler",
        "--max-worker-jobs", "2", timeout=400,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    url_of(started.stdout)
    assert "from eotoolkit.cluster import get_client; client = get_client()" in started.stdout

    record = status_json(launcher)
    assert record["state"] == "RUNNING"
    scheduler_file = Path(str(record["scheduler_file"]))
    state_dir = tmp_path / "state"
    assert scheduler_file == state_dir / "sessions" / "sandbox" / "scheduler.json"
    assert stat.S_IMODE(scheduler_file.parent.stat().st_mode) == 0o700
    for name in ("scheduler.json", "ca.pem", "cert.pem", "key.pem"):
        assert stat.S_IMODE((scheduler_file.parent / name).stat().st_mode) == 0o600, name
    published = json.loads(scheduler_file.read_text())
    assert published["host"] == info.compute_hostname
    assert published["remote_address"].startswith("tls://")
    assert published["address"] == record["scheduler_address"]
    port = int(str(record["scheduler_address"]).rsplit(":", 1)[1])

    # The tunnel lives in a foreground launcher: attach reopens Jupyter's and the scheduler's.
    attach = launcher.start("--uid", "sandbox", "--mode", "attach", "--no-browser")
    try:
        lines = Lines(attach)
        url_of(lines.wait_for("/lab?token="))
        lines.wait_for("get_client()")
        assert status_json(launcher)["scheduler_address"] == f"tls://127.0.0.1:{port}"

        env = {**launcher.env, "EOHPC_SESSION": "sandbox"}
        laptop = subprocess.Popen(
            [sys.executable, "-c", LAPTOP_CLIENT],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        seen: set[str] = set()
        deadline = time.monotonic() + 300
        while laptop.poll() is None and time.monotonic() < deadline:
            seen |= job_names(launcher)
            time.sleep(1)
        out, err = laptop.communicate(timeout=30)
        assert laptop.returncode == 0, out + err
        result = json.loads(out.split("RESULT ", 1)[1])
        assert result["total"] == 4000 * 1000
        assert result["address"] == f"tls://127.0.0.1:{port}"
        assert result["hosts"] == [info.compute_hostname]
        assert published["worker_job_name"] in seen, seen  # the work ran in SLURM worker jobs

        # Without the session's certificates the forwarded port refuses a client.
        with pytest.raises(OSError):
            Client(f"tcp://127.0.0.1:{port}", timeout=10)
    finally:
        attach.send_signal(signal.SIGINT)
        attach.wait(timeout=60)
    assert attach.returncode == 130
    assert "eohpc-jupyter-sandbox" in job_names(launcher)  # detaching leaves the session

    stopped = launcher.run("--uid", "sandbox", "--mode", "stop")
    assert stopped.returncode == 0, stopped.stderr
    # scancel reaches the scheduler, whose SIGTERM handler cancels its worker jobs.
    assert wait_until(lambda: launcher.squeue() == "", 60), launcher.squeue()
    assert not scheduler_file.parent.exists()
    assert status_json(launcher)["state"] == "NONE"
