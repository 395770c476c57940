"""`JobKind`: what a site's saved job is, and what status, stop, logs and attach do with it.

Three kinds, each saved under its name in ``SessionState.kind`` and started by one mode:

- ``jupyter``: :class:`launcher.jobs.jupyter.JupyterKind` (``--mode run``; ``attach``);
- ``batch``: :class:`launcher.jobs.batch.BatchKind` (``--mode batch``);
- ``pipeline``: :class:`launcher.pipeline.run.PipelineKind` (``--mode pipeline``).

The lifecycle picks the kind once, from the saved state (or the mode), through the site
(:meth:`JobSite.kind <launcher.session.jobsite.JobSite.kind>`): a cluster site runs every kind; the
local site runs Jupyter sessions only and answers for the others with a
:class:`ClusterOnlyKind`, whose every call raises ClusterSiteError naming the mode.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, TextIO

from eoshared.errors import ClusterSiteError

if TYPE_CHECKING:
    from rich.console import Console

    from eoshared.batchsystem import JobSpec, JobStatus
    from launcher.config import Site
    from launcher.session.options import Options
    from launcher.session.state import SessionState

#: What ``status`` prints about a saved job (one JSON object with --json).
Record = dict[str, str | int | None]


class Driver(Protocol):
    """What a kind of job may ask of the lifecycle that drives it
    (:class:`launcher.jobs.lifecycle.Lifecycle`): the site's settings, the terminal, and
    the saved state's changes."""

    config: Site
    console: Console

    def say(self, text: str) -> None:
        """Print a line of progress."""
        ...

    def problem(self, text: str) -> None:
        """Print a warning line."""
        ...

    def warn_walltime(self, text: str) -> None:
        """Warn that the job's walltime ends soon."""
        ...

    def show_status(self, status: JobStatus, waiting_for: str = "Jupyter") -> None:
        """Show the job's queue state while waiting for it."""
        ...

    def configure(self, reconnect_for: float) -> None:
        """How long the site's waits and watches retry a lost connection."""
        ...

    def check_fit(self, job: JobSpec, what: str, workers: bool) -> None:
        """Refuse a job (and its workers) no node can hold, before submitting."""
        ...

    def end(self, state: SessionState, ended_state: str, outcome: str) -> None:
        """Record how the saved job ended and forget it."""
        ...

    def forget(self, state: SessionState) -> None:
        """Forget the saved job."""
        ...

    def stop(self, state: SessionState) -> None:
        """Cancel the saved job and forget it."""
        ...

    def interrupted(self, state: SessionState, what: str, resume_hint: str) -> int:
        """The user interrupted the watch: cancel or keep the job as asked; the exit status."""
        ...


class JobKind(Protocol):
    """One kind of job of a site, as the lifecycle drives it."""

    def start(self, lc: Driver, options: Options) -> int:
        """Submit a job of this kind; unless detached, follow it to its end and report."""
        ...

    def attach(self, lc: Driver, state: SessionState, options: Options) -> int:
        """Follow the saved job ``state`` (again) until it ends; its exit status."""
        ...

    def report(self, lc: Driver, state: SessionState, final: Any, options: Options) -> int:
        """Tell how the job ended (``final``: what following it returned); record and forget
        it; the exit status of the command."""
        ...

    def status_record(self, lc: Driver, state: SessionState) -> Record:
        """What ``--mode status`` reports about the saved job."""
        ...

    def stop(self, lc: Driver, state: SessionState) -> None:
        """Cancel the saved job, forget it, and say so."""
        ...

    def logs(self, lc: Driver, state: SessionState, follow: bool, lines: int, out: TextIO) -> None:
        """Print the tail of the job's output (``follow``: as it grows)."""
        ...


def job_record(lc: Driver, state: SessionState, status: JobStatus) -> Record:
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

    def start(self, lc: Driver, options: Options) -> int:
        raise ClusterSiteError(self.mode)

    def attach(self, lc: Driver, state: SessionState, options: Options) -> int:
        raise ClusterSiteError(self.saved)

    def report(self, lc: Driver, state: SessionState, final: Any, options: Options) -> int:
        raise ClusterSiteError(self.saved)

    def status_record(self, lc: Driver, state: SessionState) -> Record:
        raise ClusterSiteError(self.saved)

    def stop(self, lc: Driver, state: SessionState) -> None:
        """Forget the saved job (this site cannot reach it), then refuse."""
        lc.forget(state)
        raise ClusterSiteError(self.saved)

    def logs(self, lc: Driver, state: SessionState, follow: bool, lines: int, out: TextIO) -> None:
        raise ClusterSiteError(self.saved)
