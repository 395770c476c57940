"""Run Python on the test cluster as its user, over SSH, and look at the SLURM queue."""

from __future__ import annotations

import contextlib
import io
import json
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from fabric import Connection, Result
from invoke.exceptions import ThreadException

from tests.cluster import rig

REPO_ROOT = Path(__file__).resolve().parents[3]
SANDBOX_PROFILE = REPO_ROOT / "config" / "platforms" / "sandbox.yaml"
RESULT_MARK = "RESULT "
# Used when config/platforms/sandbox.yaml has no Dask section.
DEFAULT_JOBQUEUE = {
    "cores": 1,
    "processes": 1,
    "memory": "1GB",
    "walltime": "00:30:00",
    "local-directory": "/tmp",
    "log-directory": "~/.eohpc/dask-logs",
    "worker-extra-args": ["--lifetime", "55m", "--lifetime-stagger", "4m"],
}


def sh(conn: Connection, command: str, **kwargs: object) -> Result:
    """Run ``command`` remotely without reading this process's stdin (pytest captures it)."""
    kwargs.setdefault("hide", True)
    return conn.run(command, in_stream=False, **kwargs)


def home(conn: Connection) -> str:
    return str(sh(conn, "echo $HOME").stdout.strip())


def jobqueue_config(info: rig.ClusterInfo, user_home: str) -> dict[str, object]:
    """The ``jobqueue.slurm`` config the launcher's ``install`` writes for the sandbox platform."""
    slurm = dict(DEFAULT_JOBQUEUE)
    if SANDBOX_PROFILE.exists():
        profile = yaml.safe_load(SANDBOX_PROFILE.read_text()) or {}
        slurm = dict(profile.get("dask", {}).get("jobqueue", {}).get("slurm") or slurm)
    slurm.setdefault("queue", info.partition)
    for key in ("local-directory", "log-directory"):
        value = slurm.get(key)
        if isinstance(value, str) and value.startswith("~/"):
            slurm[key] = f"{user_home}/{value[2:]}"
    return {"jobqueue": {"slurm": slurm}}


def install_dask_config(info: rig.ClusterInfo) -> dict[str, object]:
    """Write the user's ``~/.config/dask/jobqueue.yaml``; return the config written."""
    with info.connection() as conn:
        user_home = home(conn)
        config = jobqueue_config(info, user_home)
        sh(conn, "mkdir -p ~/.config/dask ~/.eo-tests")
        text = yaml.safe_dump(config, sort_keys=False)
        conn.put(io.StringIO(text), f"{user_home}/.config/dask/jobqueue.yaml")
    return config


def remove_dask_config(info: rig.ClusterInfo) -> None:
    """Remove what install_dask_config and run_python wrote to the user's home."""
    with info.connection() as conn:
        sh(
            conn,
            "rm -rf ~/.config/dask/jobqueue.yaml ~/.eo-tests; "
            "rmdir ~/.config/dask ~/.config 2>/dev/null; true",
            warn=True,
        )


def run_python(
    info: rig.ClusterInfo, script: str, *, args: str = "", timeout: float = 300
) -> dict[str, Any]:
    """Run ``script`` with the cluster venv's Python as the user; return its RESULT JSON line."""
    with info.connection() as conn:
        path = f"{home(conn)}/.eo-tests/{secrets.token_hex(4)}.py"
        sh(conn, "mkdir -p ~/.eo-tests")
        conn.put(io.StringIO(script), path)
        try:
            proc = sh(conn, f"{info.venv}/bin/python {path} {args}", warn=True, timeout=timeout)
        finally:
            sh(conn, f"rm -f {path}", warn=True)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            result: dict[str, Any] = json.loads(line[len(RESULT_MARK) :])
            return result
    raise AssertionError(
        f"remote script failed ({proc.exited}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    )


def user_jobs(info: rig.ClusterInfo) -> list[str]:
    """Ids of the cluster user's jobs still in the queue (any state)."""
    proc = rig.run(rig.slurm_cmd(info, "squeue", "-h", "-u", info.user, "-o", "%i"))
    return proc.stdout.split()


def wait_no_jobs(info: rig.ClusterInfo, timeout: float = 60) -> list[str]:
    """Wait until the user has no job in the queue; return what is left at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        left = user_jobs(info)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


def wait_port(port: int, timeout: float = 30) -> None:
    """Wait until something listens on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@contextlib.contextmanager
def forward(
    conn: Connection, remote_host: str, remote_port: int, *, refused_clients: bool = False
) -> Iterator[int]:
    """Forward a free local port to ``remote_host:remote_port`` via the login node; yield it.

    Fabric's tunnel threads fail on a connection the far end (or the client) resets, which is
    how a refused TLS handshake ends; with ``refused_clients`` such resets, and only those,
    are accepted when the forwarding stops.
    """
    port = rig.free_port()
    try:
        with conn.forward_local(local_port=port, remote_port=remote_port, remote_host=remote_host):
            wait_port(port)
            yield port
    except ThreadException as exc:
        errors = [e.value for e in exc.exceptions]
        if not refused_clients or not all(isinstance(e, ConnectionError) for e in errors):
            raise
