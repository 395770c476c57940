"""Dask workers as SLURM jobs of the cluster user, driven as from a notebook on the cluster."""

from __future__ import annotations

import textwrap

import pytest

from tests.cluster import rig
from tests.integration.dask_slurm import remote

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(600)]

PRELUDE = textwrap.dedent(
    """
    import getpass, json, subprocess, time

    def my_jobs():
        out = subprocess.run(
            ["squeue", "-h", "-u", getpass.getuser(), "-o", "%i %j %T"],
            capture_output=True, text=True, check=True,
        ).stdout
        return [line.split() for line in out.splitlines()]

    def wait_no_jobs(timeout=60):
        deadline = time.monotonic() + timeout
        while my_jobs() and time.monotonic() < deadline:
            time.sleep(0.5)
        return my_jobs()

    def report(result):
        print("RESULT " + json.dumps(result), flush=True)
    """
)

NOTEBOOK_CELL = PRELUDE + textwrap.dedent(
    """
    import socket
    import dask.array as da
    from dask_jobqueue import SLURMCluster
    from distributed import Client

    result = {}
    cluster = SLURMCluster()
    try:
        result["job_script"] = cluster.job_script()
        cluster.scale(2)
        client = Client(cluster)
        client.wait_for_workers(2, timeout=120)
        result["job_ids"] = sorted(job.job_id for job in cluster.workers.values())
        result["queue"] = my_jobs()
        x = da.arange(2_000_000, chunks=100_000)
        result["sum"] = int((x % 7).sum().compute())
        result["hosts"] = sorted(set(client.run(socket.gethostname).values()))
        client.close()
    finally:
        cluster.close()
    result["after_close"] = wait_no_jobs()
    report(result)
    """
)


def test_notebook_cell_slurmcluster_from_dask_config(dask_single: rig.ClusterInfo) -> None:
    result = remote.run_python(dask_single, NOTEBOOK_CELL)
    script = str(result["job_script"])
    assert f"#SBATCH -p {dask_single.partition}" in script
    assert "--lifetime 25m" in script or "--lifetime 55m" in script
    assert "--lifetime-stagger" in script
    job_ids = result["job_ids"]
    assert isinstance(job_ids, list) and len(job_ids) == 2
    running = {row[0]: row[2] for row in result["queue"]}
    assert all(running.get(job) == "RUNNING" for job in job_ids), running
    assert result["sum"] == sum(i % 7 for i in range(2_000_000))
    assert result["hosts"] == [dask_single.compute_hostname]
    assert result["after_close"] == []


KILL_ONE_WORKER = PRELUDE + textwrap.dedent(
    """
    from dask_jobqueue import SLURMCluster
    from distributed import Client

    def slow_square(i):
        time.sleep(0.5)
        return i * i

    result = {}
    cluster = SLURMCluster()
    try:
        cluster.scale(jobs=2)
        client = Client(cluster)
        client.wait_for_workers(2, timeout=120)
        jobs = {job.job_id: name for name, job in cluster.workers.items()}
        futures = client.map(slow_square, range(60))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # both workers busy, some results held by each
            busy = [w for w, keys in client.processing().items() if keys]
            held = [w for w, keys in client.has_what().items() if keys]
            if len(busy) == 2 and len(held) == 2:
                break
            time.sleep(0.1)
        victim = sorted(jobs)[0]
        subprocess.run(["scancel", victim], check=True)
        result["victim"] = victim
        deadline = time.monotonic() + 60
        while len(client.scheduler_info()["workers"]) > 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        result["workers_after_kill"] = len(client.scheduler_info()["workers"])
        result["total"] = sum(client.gather(futures))
        result["queue_after_kill"] = my_jobs()
        client.close()
    finally:
        cluster.close()
    result["after_close"] = wait_no_jobs()
    report(result)
    """
)


def test_killing_a_worker_job_mid_computation(dask_single: rig.ClusterInfo) -> None:
    result = remote.run_python(dask_single, KILL_ONE_WORKER)
    assert result["workers_after_kill"] == 1
    assert result["total"] == sum(i * i for i in range(60))
    left = [row[0] for row in result["queue_after_kill"]]
    assert result["victim"] not in left
    assert result["after_close"] == []


CONTEXT_MANAGER = PRELUDE + textwrap.dedent(
    """
    import os, signal, sys
    from eotoolkit.cluster import slurm_cluster

    how = sys.argv[1]
    result = {}
    try:
        with slurm_cluster(jobs=2, timeout=120) as client:
            result["job_ids"] = sorted(job.job_id for job in client.cluster.workers.values())
            result["workers"] = len(client.scheduler_info()["workers"])
            result["queue"] = my_jobs()
            result["answer"] = client.submit(sum, [20, 22]).result()
            if how == "interrupt":
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(30)
            raise RuntimeError("failure inside the block")
    except (RuntimeError, KeyboardInterrupt) as exc:
        result["raised"] = type(exc).__name__
    result["after_block"] = wait_no_jobs()
    report(result)
    """
)


@pytest.mark.parametrize("how", ["exception", "interrupt"])
def test_slurm_cluster_context_leaves_no_jobs(dask_single: rig.ClusterInfo, how: str) -> None:
    result = remote.run_python(dask_single, CONTEXT_MANAGER, args=how)
    assert result["workers"] == 2
    assert result["answer"] == 42
    queued = {row[0] for row in result["queue"]}
    assert set(result["job_ids"]) <= queued
    assert result["raised"] == ("KeyboardInterrupt" if how == "interrupt" else "RuntimeError")
    assert result["after_block"] == []


GET_CLIENT_ON_SLURM = PRELUDE + textwrap.dedent(
    """
    from dask_jobqueue import SLURMCluster
    from eotoolkit.cluster import get_client

    result = {}
    client = get_client()
    result["cluster"] = type(client.cluster).__name__
    result["sum"] = client.submit(sum, range(100)).result(timeout=120)
    result["queue"] = my_jobs()
    client.shutdown()
    result["after_shutdown"] = wait_no_jobs()
    report(result)
    """
)


def test_get_client_on_a_login_node_uses_an_adaptive_slurmcluster(
    dask_single: rig.ClusterInfo,
) -> None:
    result = remote.run_python(dask_single, GET_CLIENT_ON_SLURM)
    assert result["cluster"] == "SLURMCluster"
    assert result["sum"] == sum(range(100))
    assert result["queue"], "the adaptive cluster started no worker job"
    assert result["after_shutdown"] == []
