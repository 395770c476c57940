"""The test cluster itself: jobs submitted over SSH as the unprivileged user, on both topologies."""

from __future__ import annotations

import io
import socket
import time

import pytest
from fabric import Connection

from tests.cluster import rig

pytestmark = pytest.mark.cluster

JOB = """#!/bin/bash
#SBATCH --job-name=rigtest
#SBATCH --output=rigtest-%j.out
#SBATCH --time=00:05:00
echo "host=$(hostname)"
echo "user=$(id -un) uid=$(id -u)"
echo "partition=$SLURM_JOB_PARTITION"
"""


def submit_and_read(conn: Connection, script: str, timeout: float = 60) -> tuple[str, str]:
    """Submit ``script`` on stdin with ``sbatch --parsable``, poll the queue, read the output."""
    job_id = conn.run("cd ~ && sbatch --parsable", in_stream=io.StringIO(script), hide=True)
    job_id = job_id.stdout.strip().split(";")[0]
    assert job_id.isdigit(), job_id
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        queued = conn.run(
            f"squeue -h -j {job_id} -o %T", hide=True, warn=True, in_stream=False
        ).stdout.strip()
        if not queued:
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"job {job_id} still in the queue after {timeout} s")
    output = conn.run(
        f"cat ~/rigtest-{job_id}.out && rm ~/rigtest-{job_id}.out", hide=True, in_stream=False
    )
    return job_id, output.stdout


def test_single_node_job_over_ssh(clean_queue: rig.ClusterInfo) -> None:
    info = clean_queue
    with info.connection() as conn:
        _, out = submit_and_read(conn, JOB)
    assert f"host={info.compute_hostname}" in out
    assert f"user={info.user}" in out
    assert "uid=0" not in out
    assert f"partition={info.partition}" in out


def test_netns_job_runs_on_the_compute_node(clean_netns_queue: rig.ClusterInfo) -> None:
    info = clean_netns_queue
    with info.connection() as conn:
        login = conn.run("hostname", hide=True, in_stream=False).stdout.strip()
        _, out = submit_and_read(conn, JOB)
    assert login == info.login_hostname
    assert f"host={info.compute_hostname}" in out
    assert info.compute_hostname != info.login_hostname
    assert f"user={info.user}" in out


def test_netns_compute_node_is_reachable_only_through_the_login_node(
    netns_cluster: rig.ClusterInfo,
) -> None:
    info = netns_cluster
    # slurmd listens on port 6818 of the compute node.
    with pytest.raises(OSError), socket.create_connection((rig.COMPUTE_ADDR, 6818), timeout=3):
        pass
    with (
        info.connection() as conn,
        conn.forward_local(
            local_port=(port := rig.free_port()),
            remote_port=6818,
            remote_host=info.compute_hostname,
        ),
    ):
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
                    s.settimeout(3)
                    # The forward is bound; a refused remote end would close the socket at once.
                    s.sendall(b"\0")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def test_up_is_idempotent(slurm_cluster: rig.ClusterInfo) -> None:
    pids = {
        n: rig.pid_alive(rig.topo_dir("single") / "run" / f"{n}.pid")
        for n in ("slurmctld", "slurmd", "sshd")
    }
    again = rig.up("single")
    assert again == slurm_cluster
    pids_after = {n: rig.pid_alive(rig.topo_dir("single") / "run" / f"{n}.pid") for n in pids}
    assert pids == pids_after
    assert all(pids.values())


def test_queue_is_empty_after_cleanup(slurm_cluster: rig.ClusterInfo) -> None:
    with slurm_cluster.connection() as conn:
        # no output file: the job may start before it is cancelled, and must leave nothing in ~
        submit = "cd ~ && sbatch --parsable --output=/dev/null --wrap 'sleep 300'"
        conn.run(submit, hide=True, in_stream=False)
        assert conn.run("squeue -h -u $USER -o %i", hide=True, in_stream=False).stdout.strip()
    rig.cancel_all_jobs(slurm_cluster)
    with slurm_cluster.connection() as conn:
        assert conn.run("squeue -h -u $USER -o %i", hide=True, in_stream=False).stdout.strip() == ""
