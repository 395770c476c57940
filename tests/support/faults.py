"""Faults injected into the real rigs with the batch system's and the OS's own tools, and what
the launcher left afterwards (its saved state, its jobs).

Every fault that changes a rig (a node or queue down, sshd killed) is undone on leaving its
context manager, also when the test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from tests.cluster import rig
from tests.support.launcher_run import Launcher
from tests.support.rig_sites import OtherLauncher, RigSite
from tests.support.waiting import wait_until

JOB_RE = re.compile(r"submitted (?:batch )?job (\S+)")
#: The launcher's line for a job it submitted (a -v traceback may quote other text).
SUBMITTED = re.compile(r"(?m)^submitted (batch )?job ")


def job_ids(text: str) -> list[str]:
    """The job ids the launcher said it submitted."""
    return JOB_RE.findall(text)


def timed(
    launcher: Launcher, *args: str, timeout: float
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run the launcher to its end; its result and the seconds it took."""
    start = time.monotonic()
    result = launcher.run(*args, timeout=timeout)
    return result, time.monotonic() - start


# ------------------------------------------------------------------- the launcher's saved state


def ended_records(launcher: Launcher) -> list[dict[str, object]]:
    """The launcher's records of sessions and batch jobs that ended."""
    directory = Path(launcher.env["EOHPC_STATE_DIR"]) / "ended"
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]


def live_states(launcher: Launcher) -> list[str]:
    """The keys of the sessions the launcher still keeps."""
    return sorted(p.stem for p in Path(launcher.env["EOHPC_STATE_DIR"]).glob("*.json"))


def assert_ended(launcher: Launcher, *phrases: str) -> str:
    """The launcher keeps no live session, and the outcome it recorded last says each of
    ``phrases``; return that outcome."""
    records = ended_records(launcher)
    assert records, "no record of the ended session"
    outcome = str(records[-1]["outcome"])
    for phrase in phrases:
        assert phrase in outcome, outcome
    assert not [k for k in live_states(launcher) if k != "ended"], live_states(launcher)
    return outcome


# ------------------------------------------------------------------------ SLURM's partition, node


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


# ------------------------------------------------------------------------- PBS's queue, node


@contextlib.contextmanager
def pbs_admin(site: OtherLauncher, change: str, undo: str) -> Iterator[None]:
    """A change of the PBS rig's queue or node as its administrator, undone on leaving."""
    chroot = site.rig_module.RIG  # type: ignore[attr-defined]
    chroot.sh(change)
    try:
        yield
    finally:
        chroot.sh(undo, check=False)


@contextlib.contextmanager
def pbs_node_change(site: OtherLauncher, change: str, undo: str) -> Iterator[None]:
    """:func:`pbs_admin`, then wait until the PBS node is free again (also on failure)."""
    try:
        with pbs_admin(site, change, undo):
            yield
    finally:
        site.rig_module.wait_node_free()  # type: ignore[attr-defined]


# ---------------------------------------------------------------- the login node's sshd


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


@contextlib.contextmanager
def sshd_stopped(site: RigSite, client_pid: int) -> Iterator[None]:
    """Kill the login node's sshd listener and the sessions of ``client_pid`` (as a restart of
    sshd or of the login node would); start sshd again on leaving, also on failure."""
    assert site.info is not None
    pids = ssh_session_pids(client_pid, site.info.ssh_host, site.info.ssh_port, site.login_netns())
    assert pids, "found no SSH session of the launcher to cut"
    pid_file = site.sshd_pid_file()
    try:
        listener = rig.pid_alive(pid_file)
        if listener is not None:
            os.kill(listener, signal.SIGTERM)
            wait_until(lambda: rig.pid_alive(pid_file) is None, 10, 0.05)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        yield
    finally:
        site.start_sshd()
