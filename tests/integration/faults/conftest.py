"""Faults injected into the real two-namespace rig with the batch system's and the OS's own
tools, and what the launcher must say about them.

Every fault that changes the shared rig (a node or partition down, sshd killed) is undone in a
``finally`` block, also when the test fails. Other engineers' tests share the rig, so each
test checks only its own jobs (by id) rather than the whole queue.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import rig
from tests.integration.launcher.conftest import Launcher, launcher_env, wait_until

JOB_RE = re.compile(r"submitted (?:batch )?job (\d+)")


@pytest.fixture
def faults(clean_netns_queue: rig.ClusterInfo, cluster_venv: str, tmp_path: Path) -> Launcher:
    """The launcher on the two-namespace rig, its state and config directories its own."""
    info = clean_netns_queue
    launcher = Launcher(tmp_path / "platforms.ini", launcher_env(tmp_path), info)
    launcher.write_site("sandbox", **info.ini_section(), env_path=cluster_venv)
    return launcher


#: The launcher's line for a job it submitted (a -v traceback may quote other text).
SUBMITTED = re.compile(r"(?m)^submitted (batch )?job ")


def job_ids(text: str) -> list[str]:
    """The job ids the launcher said it submitted."""
    return JOB_RE.findall(text)


def jobs_gone(info: rig.ClusterInfo, ids: list[str], timeout: float = 30) -> bool:
    """True once none of ``ids`` is queued any more."""

    def gone() -> bool:
        if not ids:
            return True
        cmd = rig.slurm_cmd(info, "squeue", "-h", "-o", "%i", "-j", ",".join(ids))
        proc = subprocess.run(cmd, capture_output=True, text=True)
        return not proc.stdout.split()

    return wait_until(gone, timeout)


def ended_records(launcher: Launcher) -> list[dict[str, object]]:
    """The launcher's records of sessions and batch jobs that ended."""
    directory = Path(launcher.env["EOHPC_STATE_DIR"]) / "ended"
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]


def live_states(launcher: Launcher) -> list[str]:
    """The keys of the sessions the launcher still keeps."""
    return sorted(p.stem for p in Path(launcher.env["EOHPC_STATE_DIR"]).glob("*.json"))


def scontrol(info: rig.ClusterInfo, *args: str) -> None:
    rig.run(rig.slurm_cmd(info, "scontrol", *args))


@contextlib.contextmanager
def partition_down(info: rig.ClusterInfo) -> Iterator[None]:
    scontrol(info, "update", f"partitionname={info.partition}", "state=down")
    try:
        yield
    finally:
        scontrol(info, "update", f"partitionname={info.partition}", "state=up")


@contextlib.contextmanager
def node_down(info: rig.ClusterInfo) -> Iterator[None]:
    node = info.compute_hostname
    scontrol(info, "update", f"nodename={node}", "state=down", "reason=eo-hpc fault test")
    try:
        yield
    finally:
        scontrol(info, "update", f"nodename={node}", "state=resume")
        rig.wait_node_idle(info)


# ------------------------------------------------------------------------------------ sshd


def sshd_pid_file(info: rig.ClusterInfo) -> Path:
    return rig.topo_dir(info.topology) / "run" / "sshd.pid"


def start_sshd(info: rig.ClusterInfo) -> None:
    """Start the login node's sshd as the rig does (no-op while it runs)."""
    conf = rig.topo_dir(info.topology) / "etc" / "sshd_config"
    ns = rig.NETNS_LOGIN if info.topology == "netns" else None
    command = rig.in_namespace(ns, info.login_hostname, ["/usr/sbin/sshd", "-f", str(conf)])
    env = {**os.environ, "SLURM_CONF": info.slurm_conf}
    rig.start_daemon(sshd_pid_file(info), command, env, "sshd")


def _ss(netns: str | None, *filters: str) -> str:
    prefix = ["nsenter", f"--net=/run/netns/{netns}"] if netns else []
    cmd = [*prefix, "ss", "-tnpH", "state", "established", *filters]
    return subprocess.run(cmd, capture_output=True, text=True).stdout


def ssh_session_pids(client_pid: int, host: str, port: int, netns: str | None) -> list[int]:
    """The sshd processes (in network namespace ``netns``, listening on ``port``) that serve
    ``client_pid``'s SSH connections to ``host:port``."""
    ports = [
        line.split()[2].rsplit(":", 1)[1]
        for line in _ss(None, "dst", f"{host}:{port}").splitlines()
        if f"pid={client_pid}," in line
    ]
    pids: list[int] = []
    for line in _ss(netns, "sport", f":{port}").splitlines():
        if any(line.split()[3].endswith(f":{p}") for p in ports):
            pids += [int(p) for p in re.findall(r"pid=(\d+)", line)]
    return pids


def session_pids(info: rig.ClusterInfo, client_pid: int) -> list[int]:
    """The sshd processes on the login node that serve ``client_pid``'s SSH connections."""
    ns = rig.NETNS_LOGIN if info.topology == "netns" else None
    return ssh_session_pids(client_pid, info.ssh_host, info.ssh_port, ns)


@contextlib.contextmanager
def sshd_stopped(info: rig.ClusterInfo, client_pid: int) -> Iterator[None]:
    """Kill the login node's sshd listener and the sessions of ``client_pid`` (as a restart of
    sshd or of the login node would); start sshd again on leaving, also on failure."""
    pids = session_pids(info, client_pid)
    assert pids, "found no SSH session of the launcher to cut"
    try:
        listener = rig.pid_alive(sshd_pid_file(info))
        if listener is not None:
            os.kill(listener, signal.SIGTERM)
            wait_until(lambda: rig.pid_alive(sshd_pid_file(info)) is None, 10, 0.05)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        yield
    finally:
        start_sshd(info)


def read_until(proc: subprocess.Popen[str], pattern: str, timeout: float) -> str:
    """Lines of ``proc``'s standard output up to one containing ``pattern``."""
    import select

    assert proc.stdout is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            seen += line
            if pattern in line:
                return seen
        if proc.poll() is not None:
            break
    raise AssertionError(f"no {pattern!r} within {timeout}s; output so far:\n{seen}")


class StreamLines:
    """The lines of one of a process's pipes, collected by a thread as they come (so that
    standard output and standard error can both be waited on)."""

    def __init__(self, pipe: typing.IO[str]) -> None:
        import threading

        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: typing.IO[str]) -> None:
        for line in pipe:
            self.lines.append(line)

    def wait_for(self, pattern: str, timeout: float, after: int = 0) -> int:
        """The index of the first line from ``after`` on containing ``pattern``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for n in range(after, len(self.lines)):
                if pattern in self.lines[n]:
                    return n
            time.sleep(0.2)
        raise AssertionError(f"no {pattern!r} within {timeout}s:\n{''.join(self.lines)}")

    @property
    def text(self) -> str:
        return "".join(self.lines)
