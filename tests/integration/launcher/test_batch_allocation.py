"""--mode batch --nodes N: the script, the scheduler and the workers in one multi-node job.

SLURM on the two-namespace rig's partition of two compute nodes (each node a network namespace
with its own slurmd): the workers are started with srun on both nodes. PBS on its rig: two
chunks of one job, the workers started with pbsdsh. HTCondor has no such job and refuses.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import rig
from tests.support.launcher_run import Launcher, assert_error
from tests.support.rig_sites import OtherLauncher, launcher_on
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(900)]

#: The script: Client() and get_client() reach the same scheduler; every worker says where it
#: runs; the queue holds this one job; a computation runs on all workers; the status is 5.
ON_EVERY_NODE = """
import getpass
import shutil
import socket
import subprocess
import sys

import dask.array as da
from distributed import Client

from eotoolkit.cluster import get_client

client = Client()
assert get_client().scheduler.address == client.scheduler.address
hosts = sorted(set(client.run(socket.gethostname).values()))
print("HOSTS", " ".join(hosts), flush=True)
print("WORKERS", len(client.scheduler_info()["workers"]), flush=True)
total = da.ones((4000, 1000), chunks=(250, 250)).sum().compute()
print("SUM", int(total), "ARGS", sys.argv[1:], flush=True)
if shutil.which("squeue"):
    out = subprocess.run(["squeue", "-h", "-u", getpass.getuser(), "-o", "%j %D"], text=True,
                         capture_output=True).stdout
    print("QUEUE", " | ".join(line.strip() for line in out.splitlines() if line.strip()),
          flush=True)
sys.exit(5)
"""


def lines_starting(text: str, word: str) -> list[str]:
    return [line.split(" ", 1)[1] for line in text.splitlines() if line.startswith(word + " ")]


@pytest.mark.netns
@pytest.mark.parametrize("launcher", ["srun", "mpirun"])
def test_slurm_one_allocation_of_two_nodes(
    multi_node: Launcher, tmp_path: Path, launcher: str
) -> None:
    """The site's batch_nodes = 2: srun starts each node's workers, or the site's MPI launcher
    (batch_mpiexec = mpirun, Debian's OpenMPI) starts them as dask-mpi ranks, one a node."""
    info = multi_node.info
    assert info is not None
    uid = "whole-nodes"
    if launcher == "mpirun":
        uid = "mpi-nodes"
        multi_node.write_site(
            uid,
            **{**info.ini_section(), "partition": info.multi_partition},
            env_path=str(info.venv),
            batch_nodes="2",
            batch_mpiexec="mpirun --bind-to none",
        )
    script = tmp_path / "analysis.py"
    script.write_text(ON_EVERY_NODE)
    result = multi_node.run(
        "--uid", uid, "--mode", "batch", "--script", str(script), "--", "a b", timeout=600
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 5, out + result.stderr
    assert lines_starting(out, "HOSTS") == [
        f"{info.compute_hostname} {info.second_compute_hostname}"
    ]
    assert lines_starting(out, "WORKERS") == ["2"]
    assert lines_starting(out, "SUM") == ["4000000 ARGS ['a b']"]
    assert f"of 1 thread(s) on each of 2 nodes with {launcher}" in out
    # one job holds everything (squeue from inside it): no worker job was submitted
    assert lines_starting(out, "QUEUE") == [f"eohpc-batch-{uid} 2"]
    assert "script exit status 5" in result.stderr
    assert "Traceback" not in out + result.stderr


@pytest.mark.netns
def test_slurm_dry_run_and_refusals(multi_node: Launcher, tmp_path: Path) -> None:
    script = tmp_path / "analysis.py"
    script.write_text("print('never runs')\n")
    dry = multi_node.run(
        "--uid", "whole-nodes", "--mode", "dry-run", "--script", str(script), "--nodes", "3"
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    for line in (
        "#SBATCH --nodes=3",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --cpus-per-task=1",
        "#SBATCH --mem=1024M",
        "--nodes 3",
    ):
        assert line in dry.stdout, dry.stdout
    both = multi_node.run(
        "--uid", "whole-nodes", "--mode", "batch", "--script", str(script),
        "--nodes", "2", "--workers", "2",
    )  # fmt: skip
    assert_error(both, 1, "--workers and --nodes exclude each other")
    # more nodes than the partition has: SLURM's refusal, with nothing left queued
    many = multi_node.run(
        "--uid", "whole-nodes", "--mode", "batch", "--script", str(script), "--nodes", "3",
        timeout=300,
    )  # fmt: skip
    assert many.returncode != 0, many.stdout + many.stderr
    assert "Traceback" not in many.stderr
    assert "node" in many.stderr.lower(), many.stderr
    assert multi_node.squeue() == ""


LONG_RUNNING = """
import time

from distributed import Client

client = Client()
print("STARTED with", len(client.scheduler_info()["workers"]), "workers", flush=True)
time.sleep(600)
"""


def worker_processes(info: rig.ClusterInfo) -> list[str]:
    """The cluster user's dask worker processes on every node (the nodes share this machine's
    process table: they are network namespaces)."""
    found = subprocess.run(
        ["pgrep", "-a", "-u", info.user, "-f", "distributed.cli.dask_worker"],
        capture_output=True,
        text=True,
    )
    return found.stdout.splitlines()


@pytest.mark.netns
def test_slurm_stop_ends_every_node(multi_node: Launcher, tmp_path: Path) -> None:
    info = multi_node.info
    assert info is not None
    script = tmp_path / "long.py"
    script.write_text(LONG_RUNNING)
    started = multi_node.run(
        "--uid", "whole-nodes", "--mode", "batch", "--script", str(script), "--detach"
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    job_id = started.stdout.strip()

    def logs() -> str:
        return multi_node.run("--uid", "whole-nodes", "--mode", "logs", "--job", job_id).stdout

    assert wait_until(lambda: "STARTED with 2 workers" in logs(), 300, interval=2), logs()
    status = multi_node.run("--uid", "whole-nodes", "--mode", "status", "--json", "--job", job_id)
    record = json.loads(status.stdout)
    assert record["state"] == "RUNNING" and record["kind"] == "batch"
    assert record["node"] == f"{info.compute_hostname},{info.second_compute_hostname}"
    assert len(worker_processes(info)) >= 2
    stopped = multi_node.run("--uid", "whole-nodes", "--mode", "stop", "--job", job_id)
    assert stopped.returncode == 0, stopped.stderr
    assert wait_until(lambda: multi_node.squeue() == "", 60), multi_node.squeue()
    assert wait_until(lambda: worker_processes(info) == [], 60), worker_processes(info)


@pytest.fixture
def pbs_site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OtherLauncher]:
    yield from launcher_on(request, "pbs", tmp_path)


@pytest.mark.parametrize("launcher", ["pbsdsh", "mpirun"])
def test_pbs_one_allocation_of_two_chunks(
    pbs_site: OtherLauncher, tmp_path: Path, launcher: str
) -> None:
    """Each chunk's workers started by pbsdsh, or as dask-mpi ranks by OpenMPI's mpirun over
    the job's node file (batch_mpiexec)."""
    assert pbs_site.info is not None
    if launcher == "mpirun":
        pbs_site.write_site(
            "sandbox-mpi",
            **pbs_site.info.ini_section(),
            env_path=pbs_site.info.venv,
            batch_mpiexec="mpirun",
        )
    uid = "sandbox-mpi" if launcher == "mpirun" else "sandbox"
    script = tmp_path / "analysis.py"
    script.write_text(ON_EVERY_NODE)
    result = pbs_site.run(
        "--uid", uid, "--mode", "batch", "--script", str(script), "--nodes", "2", "--", "x",
        timeout=600,
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 5, out + result.stderr
    # the rig has one MOM: both chunks are on it, one task (and worker) per chunk
    assert lines_starting(out, "WORKERS") == ["2"]
    assert lines_starting(out, "SUM") == ["4000000 ARGS ['x']"]
    assert f"on each of 2 nodes with {launcher}" in out
    assert "Traceback" not in out + result.stderr


def test_htcondor_refuses_one_allocation(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    for site in launcher_on(request, "htcondor", tmp_path):
        script = tmp_path / "analysis.py"
        script.write_text("print('never runs')\n")
        result = site.run(
            "--uid", "sandbox", "--mode", "batch", "--script", str(script), "--nodes", "2"
        )  # fmt: skip
        assert_error(result, 4, "not supported on HTCondor", "--workers N")
        assert site.queue() == ""
