"""--mode batch on the two-namespace cluster: a script with Dask workers that are SLURM jobs."""

from __future__ import annotations

import json
import select
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import rig
from tests.support.launcher_run import Launcher, checked_sandbox
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.netns, pytest.mark.slow, pytest.mark.timeout(900)]

TWO_WORKERS = """
import sys
import time

import dask.array as da
from distributed import Client

client = Client()
workers = client.scheduler_info()["workers"]
assert len(workers) == 2, workers
total = da.ones((2000, 1000), chunks=(250, 250)).sum().compute()
print("SUM", int(total), "ARGS", sys.argv[1:], flush=True)
time.sleep(8)  # the launcher has to show the line above while the job still runs
print("DONE", flush=True)
"""

EXIT_3 = """
import sys

print("failing on purpose", flush=True)
sys.exit(3)
"""

LONG_RUNNING = """
import time

from distributed import Client

client = Client()
print("STARTED with", len(client.scheduler_info()["workers"]), "worker", flush=True)
time.sleep(600)
"""


@pytest.fixture
def batch_launcher(
    netns_cluster: rig.ClusterInfo, cluster_venv: str, tmp_path: Path
) -> Iterator[Launcher]:
    """The launcher pointed at the cluster; asserts that the test leaves none of its user's jobs."""
    yield from checked_sandbox(netns_cluster, cluster_venv, tmp_path)


def write_script(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def job_names(launcher: Launcher) -> list[str]:
    info = launcher.info
    assert info is not None
    cmd = rig.slurm_cmd(info, "squeue", "-h", "-u", info.user, "-o", "%j")
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()


def test_two_workers_output_streamed_and_exit_0(batch_launcher: Launcher, tmp_path: Path) -> None:
    script = write_script(tmp_path, "analysis.py", TWO_WORKERS)
    proc = batch_launcher.start(
        "--uid", "sandbox", "--mode", "batch", "--script", str(script), "--workers", "2",
        "--", "one", "two words",
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    sum_seen_while_running = False
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if ready:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("SUM "):
                sum_seen_while_running = proc.poll() is None and "DONE\n" not in lines
    proc.wait(timeout=120)
    out = "".join(lines)
    err = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == 0, out + err
    assert "SUM 2000000 ARGS ['one', 'two words']" in out
    assert "eo-hpc: 2 workers ready" in out and "DONE" in out
    assert sum_seen_while_running, "the output was not streamed while the job ran"
    assert "script exit status 0" in err


def test_script_exit_status_is_the_launchers(batch_launcher: Launcher, tmp_path: Path) -> None:
    script = write_script(tmp_path, "fails.py", EXIT_3)
    result = batch_launcher.run(
        "--uid", "sandbox", "--mode", "batch", "--script", str(script), "--workers", "1",
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 3, result.stdout + result.stderr
    assert "failing on purpose" in result.stdout
    assert "eo-hpc: script exited with status 3" in result.stdout
    assert "Traceback" not in result.stderr


def test_detach_logs_status_stop(batch_launcher: Launcher, tmp_path: Path) -> None:
    script = write_script(tmp_path, "long.py", LONG_RUNNING)
    result = batch_launcher.run(
        "--uid", "sandbox", "--mode", "batch", "--script", str(script), "--workers", "1",
        "--detach",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()
    assert job_id.isdigit(), result.stdout

    def logs() -> str:
        return batch_launcher.run("--uid", "sandbox", "--mode", "logs", "--job", job_id).stdout

    assert wait_until(lambda: "STARTED with 1 worker" in logs(), 600, interval=3), logs()

    status = batch_launcher.run("--uid", "sandbox", "--mode", "status", "--json", "--job", job_id)
    assert status.returncode == 0, status.stderr
    record = json.loads(status.stdout)
    assert record["job_id"] == job_id and record["state"] == "RUNNING"
    assert record["kind"] == "batch" and record["exit_status"] is None
    assert record["node"] == batch_launcher.info.compute_hostname
    modes = subprocess.run(
        batch_launcher.info.ssh_command(
            f"stat -c '%a %n' {record['run_dir']} {record['run_dir']}/long.py "
            f"{record['run_dir']}/tls/key.pem"
        ),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    assert [line.split(" ", 1)[0] for line in modes if line] == ["700", "600", "600"], modes
    names = job_names(batch_launcher)
    assert sorted(names) == sorted(["eohpc-batch-sandbox", f"eohpc-batch-{job_id}-workers"])

    # The batch job is not the site's interactive session.
    site_status = batch_launcher.run("--uid", "sandbox", "--mode", "status", "--json")
    assert json.loads(site_status.stdout)["state"] == "NONE"
    listed = batch_launcher.run("--mode", "list")
    assert "batch" in listed.stdout and job_id in listed.stdout

    stopped = batch_launcher.run("--uid", "sandbox", "--mode", "stop", "--job", job_id)
    assert stopped.returncode == 0, stopped.stderr
    # scancel reaches the driver, whose SIGTERM handler cancels the worker job.
    assert wait_until(lambda: batch_launcher.squeue() == "", 60), batch_launcher.squeue()
    log = subprocess.run(
        batch_launcher.info.ssh_command(f"cat {record['run_dir']}/job-{job_id}.out"),
        capture_output=True,
        text=True,
    ).stdout
    assert "eo-hpc: SIGTERM: stopping the script and the workers" in log, log

    gone = batch_launcher.run("--uid", "sandbox", "--mode", "status", "--job", job_id)
    assert gone.returncode == 8 and "no session or batch job" in gone.stderr
