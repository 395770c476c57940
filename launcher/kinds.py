"""`JobKind`: what a site's saved job is, and what status, stop, logs and attach do with it.

Three kinds, each saved under its name in ``SessionState.kind`` and started by one mode:

- ``jupyter``: :class:`launcher.jupyter_session.JupyterKind` (``--mode run``; ``attach``);
- ``batch``: :class:`launcher.batch.BatchKind` (``--mode batch``);
- ``pipeline``: :class:`launcher.pipeline.PipelineKind` (``--mode pipeline``).

The lifecycle picks the kind once, from the saved state (or the mode), through the site
(:meth:`JobSite.kind <launcher.jobsite.JobSite.kind>`): a cluster site runs every kind; the
local site runs Jupyter sessions only and answers for the others with a
:class:`ClusterOnlyKind`, whose every call raises ClusterSiteError naming the mode.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from launcher.errors import ClusterSiteError
from launcher.state import BATCH, JUPYTER, PIPELINE

if TYPE_CHECKING:
    from launcher.batchsystem import JobStatus
    from launcher.session import Lifecycle, Options
    from launcher.state import SessionState

#: What ``status`` prints about a saved job (one JSON object with --json).
Record = dict[str, str | int | None]

#: The kinds by their saved name: module and class, imported when a site first needs them
#: (``run`` and ``attach`` load neither batch mode nor pipelines).
KINDS = {
    JUPYTER: ("launcher.jupyter_session", "JupyterKind"),
    BATCH: ("launcher.batch", "BatchKind"),
    PIPELINE: ("launcher.pipeline", "PipelineKind"),
}


class JobKind(Protocol):
    """One kind of job of a site, as the lifecycle drives it."""

    def start(self, lc: Lifecycle, options: Options) -> int:
        """Submit a job of this kind; unless detached, follow it to its end and report."""
        ...

    def attach(self, lc: Lifecycle, state: SessionState, options: Options) -> int:
        """Follow the saved job ``state`` (again) until it ends; its exit status."""
        ...

    def report(self, lc: Lifecycle, state: SessionState, final: Any, options: Options) -> int:
        """Tell how the job ended (``final``: what following it returned); record and forget
        it; the exit status of the command."""
        ...

    def status_record(self, lc: Lifecycle, state: SessionState) -> Record:
        """What ``--mode status`` reports about the saved job."""
        ...

    def stop(self, lc: Lifecycle, state: SessionState) -> None:
        """Cancel the saved job, forget it, and say so."""
        ...

    def logs(
        self, lc: Lifecycle, state: SessionState, follow: bool, lines: int, out: TextIO
    ) -> None:
        """Print the tail of the job's output (``follow``: as it grows)."""
        ...


def kind_class(name: str) -> Any:
    """The class of the kind saved as ``name`` (each takes the site it runs on)."""
    module, cls = KINDS[name]
    return getattr(importlib.import_module(module), cls)


def job_record(lc: Lifecycle, state: SessionState, status: JobStatus) -> Record:
    """What status reports about any job: its state, reason, node and time left, the URL of a
    ready session and the session scheduler's address and file, if any."""
    record: Record = {
        "uid": lc.config.uid,
        "job_id": state.job_id,
        "state": status.state,
        "reason": status.reason,
        "node": status.node or state.node,
        "time_left": status.time_left,
        "url": state.url if state.ready else None,
        "local_port": state.local_port,
    }
    if state.scheduler_remote:
        record["scheduler_address"] = state.scheduler_address
        record["scheduler_file"] = state.scheduler_file
    return record


class ClusterOnlyKind:
    """A kind that needs a batch system, as the local site answers for it: every call raises
    ClusterSiteError, naming ``mode`` (what starts it) or ``saved`` (a saved job of it)."""

    def __init__(self, mode: str, saved: str) -> None:
        self.mode = mode
        self.saved = saved

    def start(self, lc: Lifecycle, options: Options) -> int:
        raise ClusterSiteError(self.mode)

    def attach(self, lc: Lifecycle, state: SessionState, options: Options) -> int:
        raise ClusterSiteError(self.saved)

    def report(self, lc: Lifecycle, state: SessionState, final: Any, options: Options) -> int:
        raise ClusterSiteError(self.saved)

    def status_record(self, lc: Lifecycle, state: SessionState) -> Record:
        raise ClusterSiteError(self.saved)

    def stop(self, lc: Lifecycle, state: SessionState) -> None:
        """Forget the saved job (this site cannot reach it), then refuse."""
        lc.forget(state)
        raise ClusterSiteError(self.saved)

    def logs(
        self, lc: Lifecycle, state: SessionState, follow: bool, lines: int, out: TextIO
    ) -> None:
        raise ClusterSiteError(self.saved)


if TYPE_CHECKING:
    from launcher.batch import BatchKind
    from launcher.jupyter_session import JupyterKind
    from launcher.pipeline import PipelineKind
    from launcher.remote import RemoteSite

    def _every_kind_is_a_job_kind(site: RemoteSite) -> list[JobKind]:
        """For mypy only: each kind class takes every JobKind call as the protocol says."""
        return [JupyterKind(site), BatchKind(site), PipelineKind(site), ClusterOnlyKind("", "")]
