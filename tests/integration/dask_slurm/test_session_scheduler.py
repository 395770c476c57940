"""The TLS session scheduler as a SLURM job on the compute node, used from the "laptop"."""

from __future__ import annotations

import io
import secrets
import socket
import stat
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from distributed import Client
from fabric import Connection

from eoshared.scheduler.tls import create_session_tls
from eotoolkit import cluster as eocluster
from tests.cluster import rig
from tests.integration.dask_slurm import remote

pytestmark = [pytest.mark.cluster, pytest.mark.netns, pytest.mark.slow, pytest.mark.timeout(600)]

SERVE_JOB = """#!/bin/bash
#SBATCH -J eohpc-test-scheduler
#SBATCH -p {partition}
#SBATCH -c 1
#SBATCH --mem=1G
#SBATCH -t 00:20:00
#SBATCH -o {out}
exec {venv}/bin/python -m eotoolkit.cluster serve --scheduler-file {scheduler_file} \\
    --adapt-min 1 --adapt-max 2
"""

GET_CLIENT = """
import json, os, socket, sys
os.environ["EOHPC_SESSION"] = sys.argv[1]
from eotoolkit.cluster import get_client

with get_client() as client:
    client.wait_for_workers(1, timeout=60)
    hosts = sorted(set(client.run(socket.gethostname).values()))
    result = {"address": client.scheduler.address, "hosts": hosts}
print("RESULT " + json.dumps(result))
"""


def wait_remote_file(
    conn: Connection, path: str, job_id: str, out: str, timeout: float = 120
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if remote.sh(conn, f"test -s {path}", warn=True).ok:
            return
        time.sleep(1)
    log = remote.sh(conn, f"cat {out}", warn=True).stdout
    raise AssertionError(f"job {job_id} wrote no scheduler file in {timeout} s:\n{log}")


def test_tls_session_scheduler_from_the_laptop(dask_netns: rig.ClusterInfo, tmp_path: Path) -> None:
    info = dask_netns
    with info.connection() as conn:
        home = remote.home(conn)
        session_dir = f"{home}/.local/state/eo-hpc/sessions/test-{secrets.token_hex(3)}"
        scheduler_file = f"{session_dir}/scheduler.json"
        out = f"{home}/.eo-tests/scheduler-%j.out"
        script = f"{home}/.eo-tests/scheduler-{secrets.token_hex(3)}.sh"
        remote.sh(conn, "mkdir -p ~/.eo-tests")
        conn.put(
            io.StringIO(
                SERVE_JOB.format(
                    partition=info.partition,
                    out=out,
                    venv=info.venv,
                    scheduler_file=scheduler_file,
                )
            ),
            script,
        )
        job_id = remote.sh(conn, f"sbatch --parsable {script}").stdout.strip()
        out = out.replace("%j", job_id)
        try:
            wait_remote_file(conn, scheduler_file, job_id, out)

            # Fetch the scheduler file and certificates into a private local directory.
            local = tmp_path / "session"
            local.mkdir(mode=0o700)
            for name in ("scheduler.json", "ca.pem", "cert.pem", "key.pem"):
                conn.get(f"{session_dir}/{name}", str(local / name))
                assert stat.S_IMODE((local / name).stat().st_mode) == 0o600
            published = eocluster.read_scheduler_file(local / "scheduler.json")
            assert published.address.startswith("tls://")
            assert published.host == info.compute_hostname
            assert published.job_id == job_id
            target = urlsplit(published.address)
            assert target.hostname is not None and target.port is not None

            # The compute node is not reachable from the laptop: only through the login node.
            with pytest.raises(OSError):
                socket.create_connection((target.hostname, target.port), timeout=2).close()

            with (
                remote.forward(conn, target.hostname, target.port) as port,
                eocluster.connect(
                    local / "scheduler.json", forwarded_address=f"tls://127.0.0.1:{port}"
                ) as client,
            ):
                client.wait_for_workers(1, timeout=120)
                hosts = set(client.run(socket.gethostname).values())
                assert hosts == {info.compute_hostname}
                total = client.submit(sum, range(1000)).result(timeout=60)
                assert total == sum(range(1000))
                queue = rig.run(
                    rig.slurm_cmd(info, "squeue", "-h", "-u", info.user, "-o", "%i %j")
                ).stdout
                names = dict(line.split() for line in queue.splitlines())
                assert names.pop(job_id) == "eohpc-test-scheduler"
                assert names and set(names.values()) == {published.worker_job_name}

            # Without the session's certificates the scheduler refuses the connection.
            stranger = create_session_tls(tmp_path / "stranger").security()
            with remote.forward(conn, target.hostname, target.port, refused_clients=True) as port:
                with pytest.raises(OSError):
                    Client(f"tcp://127.0.0.1:{port}", timeout=10)
                with pytest.raises(OSError):
                    Client(f"tls://127.0.0.1:{port}", security=stranger, timeout=10)
                with eocluster.connect(  # the same tunnel serves the session's own certificates
                    local / "scheduler.json", forwarded_address=f"127.0.0.1:{port}"
                ) as client:
                    assert client.submit(pow, 3, 4).result(timeout=60) == 81

            # On the cluster, get_client() finds the session through its scheduler file.
            found = remote.run_python(info, GET_CLIENT, args=session_dir.rsplit("/", 1)[1])
            assert found == {"address": published.address, "hosts": [info.compute_hostname]}

            # Another user of the cluster can read neither the certificates nor the file.
            with info.connection(other=True) as other:
                for name in ("key.pem", "cert.pem", "ca.pem", "scheduler.json"):
                    denied = remote.sh(other, f"cat {session_dir}/{name}", warn=True)
                    assert denied.failed and "Permission denied" in denied.stderr
                assert remote.sh(other, f"ls {session_dir}", warn=True).failed

            # SIGTERM (scancel) stops the scheduler, its worker jobs and removes its files.
            remote.sh(conn, f"scancel {job_id}")
            assert remote.wait_no_jobs(info, timeout=60) == []
            assert remote.sh(conn, f"test -e {scheduler_file}", warn=True).failed
            assert remote.sh(conn, f"test -e {session_dir}/key.pem", warn=True).failed
            log = remote.sh(conn, f"cat {out}").stdout
            assert "eo-hpc: scheduler stopped" in log, log
        finally:
            remote.sh(conn, f"scancel {job_id}", warn=True)
            remote.sh(conn, f"rm -rf {script} {out} {session_dir}", warn=True)
