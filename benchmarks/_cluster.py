"""Access to the test SLURM cluster of tests/cluster/rig.py for the launcher and slurm suites."""

from __future__ import annotations

import io
import json
import os
import secrets
import textwrap
from typing import Any


class Skip(Exception):
    """The suite cannot run here; the message says why and what to do."""


STARTED: set[str] = set()  # topologies this process brought up, stopped by stop_started()


def cluster(topology: str) -> Any:
    """The rig's ClusterInfo for ``topology``, bringing it up (idempotent) if it is down."""
    if os.geteuid() != 0:
        raise Skip("the test cluster needs root (python -m tests.cluster.rig up)")
    try:
        from tests.cluster import rig
    except Exception as exc:  # the rig module may be missing in an installed copy
        raise Skip(f"tests.cluster.rig is not importable ({exc})") from exc
    try:
        if not rig.is_up(topology):
            STARTED.add(topology)
        info = rig.up(topology)
        if not os.path.exists(f"{info.venv}/bin/python"):
            rig.ensure_cluster_venv()  # an existing venv is used as it is
    except Exception as exc:
        raise Skip(
            f"could not bring up the {topology} test cluster ({exc}); run "
            f"`python -m tests.cluster.rig up --topology {topology} --venv` and retry"
        ) from exc
    return info


def stop_started() -> None:
    """Stop the test-cluster topologies that this process started."""
    if not STARTED:
        return
    from tests.cluster import rig

    for topology in sorted(STARTED):
        rig.down(topology)
    STARTED.clear()


def connection(info: Any) -> Any:
    """A fabric connection to the login node as the cluster user."""
    return info.connection()


def sh(conn: Any, command: str, **kwargs: Any) -> Any:
    """Run a remote shell command quietly, not reading our stdin."""
    kwargs.setdefault("hide", True)
    return conn.run(command, in_stream=False, **kwargs)


def run_python(info: Any, script: str, timeout: float = 600) -> dict[str, Any]:
    """Run ``script`` with the rig venv's Python as the cluster user; return its BENCH JSON."""
    with connection(info) as conn:
        home = sh(conn, 'printf %s "$HOME"').stdout
        path = f"{home}/.eo-bench-{secrets.token_hex(4)}.py"
        conn.put(io.StringIO(textwrap.dedent(script)), path)
        try:
            proc = sh(conn, f"{info.venv}/bin/python {path}", warn=True, timeout=timeout)
        finally:
            sh(conn, f"rm -f {path}", warn=True)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("BENCH "):
            result: dict[str, Any] = json.loads(line[6:])
            return result
    raise RuntimeError(f"remote script failed ({proc.exited}):\n{proc.stderr[-3000:]}")


SBATCH_LATENCY = """
    import os, subprocess, time
    def sbatch_latency(partition):
        out = os.path.expanduser(f"~/.eo-bench-lat-{os.getpid()}.out")
        t0 = time.time()
        job = subprocess.run(
            ["sbatch", "--parsable", "-p", partition, "-o", out, "--wrap", "date +%s.%N"],
            capture_output=True, text=True, check=True,
        ).stdout.strip().split(";")[0]
        t_submitted = time.time()
        deadline = t0 + 120
        text = ""
        while time.time() < deadline:
            try:
                text = open(out).read().strip()
            except OSError:
                text = ""
            if text:
                break
            time.sleep(0.02)
        os.remove(out) if os.path.exists(out) else None
        started = float(text) if text else float("nan")
        return {"job": job, "submit_s": t_submitted - t0, "start_latency_s": started - t0}
"""
