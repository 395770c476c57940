"""`JobSite`: what the lifecycle asks of a site, whichever it is.

Two classes fill it in: :class:`~launcher.sites.remote.RemoteSite` (a cluster's login node and
batch system over one SSH connection) and :class:`~launcher.sites.local.LocalSite` (JupyterLab as
a process of this machine). Both take the same calls with the same signatures, so
:class:`~launcher.session.lifecycle.Lifecycle` never asks which one it has: where a call means
nothing locally the local site answers in its own way (no tunnel, no walltime, nothing to
retry), and where it needs a batch system (pipelines, batch jobs, the session scheduler) it raises
:class:`~eoshared.errors.ClusterSiteError`, naming the mode or option that needs one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

from eoshared.batchsystem import JobStatus

if TYPE_CHECKING:
    from eoshared.scheduler.contract import SchedulerInfo
    from launcher.config import JobSpec, Site
    from launcher.session.kinds import JobKind
    from launcher.session.state import SessionState

#: How often a job's state (or a local process) is looked at while waiting.
POLL_SECONDS = 1.0
#: Lines of a job's output shown when it ended.
TAIL_LINES = 30
#: The file the job's wrapper writes once Jupyter listens (host and port), in the run directory.
CONNECTION_FILE = "connection.json"

StatusCallback = Callable[[JobStatus], None]
#: Receives one readable line about a problem noticed in the background.
ProblemCallback = Callable[[str], None]


class JobSite(Protocol):
    """A site's jobs: run directories, submit, wait, watch, query, cancel, output, tunnels."""

    #: The site as platforms.ini and its profile describe it.
    config: Site
    #: Seconds a lost connection is retried by the waits and watches (nothing to retry locally).
    reconnect_for: float

    def kind(self, cls: type) -> JobKind:
        """A job of kind ``cls`` (a JobKind class, taking the site it runs on) as this site
        runs it."""
        ...

    def prepare(self, check: Callable[[], None]) -> None:
        """Get ready to submit (log in, learn the home directory) while ``check`` runs."""
        ...

    def check_build(self, on_problem: ProblemCallback) -> None:
        """Warn when the cluster's environment holds another build of eo-hpc than this one."""
        ...

    def check_fit(
        self,
        job: JobSpec,
        what: str,
        workers: bool,
        on_problem: ProblemCallback,
        show_config: ProblemCallback | None = None,
    ) -> None:
        """Refuse a job (and, with ``workers``, the Dask worker jobs) that no node can hold,
        before anything is submitted; ``show_config`` gets the workers' merged Dask config."""
        ...

    def new_run_dir(self, label: str, files: Mapping[str, str]) -> str:
        """Create a fresh private run directory for a job, holding the site's Dask config and
        ``files`` (relative path -> text, each 0600); its path on the site."""
        ...

    def submit_jupyter(self, local_port: int, scheduler_max_jobs: int | None) -> SessionState:
        """Start the Jupyter job (with the session's Dask scheduler for a number of jobs)."""
        ...

    def wait_ready(
        self,
        state: SessionState,
        timeout: float,
        show: StatusCallback,
        on_problem: ProblemCallback | None = None,
    ) -> SessionState:
        """Wait until Jupyter said where it listens; record it in ``state``."""
        ...

    def wait_scheduler(
        self, state: SessionState, timeout: float, on_problem: ProblemCallback | None = None
    ) -> SchedulerInfo:
        """Wait for the session scheduler to publish itself; copy its files here."""
        ...

    def tunnel(
        self, state: SessionState, on_problem: ProblemCallback, ready_timeout: float = 60.0
    ) -> AbstractContextManager[object]:
        """Make Jupyter answer on 127.0.0.1:state.local_port while the context is open."""
        ...

    def scheduler_tunnel(
        self, state: SessionState, on_problem: ProblemCallback
    ) -> AbstractContextManager[object]:
        """Make the session scheduler answer on 127.0.0.1:state.scheduler_port."""
        ...

    def jupyter_port(self, state: SessionState) -> int:
        """The port on this machine that Jupyter answers on for ``state``."""
        ...

    def status(self, state: SessionState) -> JobStatus:
        """The job's status now."""
        ...

    def watch(
        self,
        state: SessionState,
        on_problem: ProblemCallback,
        warn_before: float = 0.0,
        on_warning: ProblemCallback | None = None,
    ) -> JobStatus:
        """Block while the job runs; return its final status (see RemoteSite.watch)."""
        ...

    def stuck(self, status: JobStatus) -> bool:
        """True when the job waits (or is held) for a reason that does not clear by itself."""
        ...

    def reached_walltime(self, status: JobStatus) -> bool:
        """True when the job ended because its time ran out."""
        ...

    def stuck_fix(self, status: JobStatus) -> str:
        """What the user can do about a job that is stuck."""
        ...

    def status_fix(self, status: JobStatus) -> str:
        """What the user can do about the final state ``status`` ("" when nothing)."""
        ...

    def tail(self, state: SessionState, lines: int = TAIL_LINES) -> str:
        """The last lines of the job's output."""
        ...

    def follow(self, state: SessionState, lines: int = TAIL_LINES) -> None:
        """Print the job's output as it grows (until Ctrl-C)."""
        ...

    def cancel(self, state: SessionState) -> None:
        """End the job and remove its token file."""
        ...
