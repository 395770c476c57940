"""The session lifecycle: start, attach, status, stop and logs of a site's saved jobs.

A session is one job of a site: JupyterLab (`run`, `attach`), a script with Dask workers
(`batch`) or a staged pipeline (`pipeline`). The lifecycle drives the site it is given (a
:class:`~launcher.sites.jobsite.JobSite`: :class:`~launcher.sites.remote.RemoteSite` or
:class:`~launcher.sites.local.LocalSite`) through the kind of job at hand (a
:class:`~launcher.session.kinds.JobKind`, chosen once from the mode or the saved state), and
never asks which site or kind it has. This module, with the kinds it drives, is the only one
that saves or forgets a session (:mod:`launcher.session.state`).
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console
from rich.markup import escape

from eoshared.batchsystem import JobStatus
from eoshared.errors import NoSessionError
from eoshared.scheduler import local_copy
from launcher import signals
from launcher.config import JobSpec, Site
from launcher.connection.ssh import SSHLink
from launcher.session import state as saved
from launcher.session.kinds import JobKind, Record
from launcher.session.options import Options
from launcher.session.state import SessionState
from launcher.sites.jobsite import JobSite
from launcher.sites.local import LocalSite
from launcher.sites.remote import RemoteSite

#: The kinds of job by their saved name: module and class, imported when first driven (``run``
#: and ``attach`` load neither batch mode nor pipelines).
KINDS = {
    saved.JUPYTER: ("launcher.session.jupyter", "JupyterKind"),
    saved.BATCH: ("launcher.session.batch", "BatchKind"),
    saved.PIPELINE: ("launcher.pipeline.run", "PipelineKind"),
}


def kind_class(name: str) -> Any:
    """The class of the kind saved as ``name`` (each takes the site it runs on)."""
    module, cls = KINDS[name]
    return getattr(importlib.import_module(module), cls)


@contextlib.contextmanager
def open_site(config: Site) -> Iterator[JobSite]:
    """The local site, or a remote one over the run's single SSH connection."""
    if config.is_local:
        yield LocalSite(config)
        return
    with SSHLink(config) as link:
        yield RemoteSite(config, link)


class Lifecycle:
    """Start, attach to, report, stop and show the saved jobs of one site."""

    def __init__(self, site: JobSite, console: Console) -> None:
        self.site = site
        self.config = site.config
        self.console = console
        self._last_status = ""
        #: Also show the merged Dask config of the worker jobs, with each value's source.
        self.verbose = False

    # ---------------------------------------------------------------------------- messages

    def say(self, text: str) -> None:
        """One line for the user (never markup or emoji)."""
        self.console.print(text, markup=False, emoji=False, highlight=False, soft_wrap=True)

    def problem(self, text: str) -> None:
        """A problem noticed in the background, as one line."""
        self.console.print(f"warning: {text}", markup=False, emoji=False, soft_wrap=True)

    def warn_walltime(self, text: str) -> None:
        """The walltime warning, on a line of its own that stands out."""
        self.console.print(
            f"[bold yellow]walltime:[/] {escape(text)}", markup=True, emoji=False, soft_wrap=True
        )

    def show_status(self, status: JobStatus, waiting_for: str = "Jupyter") -> None:
        """Print the job's queue state when it changes."""
        if status.pending:
            text = f"job {status.job_id} {status.state}"
            if status.reason:
                text += f" ({status.reason})"
            if status.start_estimate:
                text += f", estimated start {status.start_estimate}"
        elif status.running:
            text = f"job {status.job_id} {status.state} on {status.node}, waiting for {waiting_for}"
        else:
            text = f"job {status.job_id} {status.state}"
        if text != self._last_status:
            self._last_status = text
            self.say(f"- {text}")

    # ---------------------------------------------------------------------------- start

    def kind(self, name: str) -> JobKind:
        """The kind of job saved as ``name``, as this lifecycle's site runs it."""
        return self.site.kind(kind_class(name))

    def configure(self, reconnect_for: float) -> None:
        """How long the site's waits and watches retry a lost connection."""
        self.site.reconnect_for = reconnect_for

    def start(self, kind: str, options: Options) -> int:
        """Start a job of ``kind`` (launcher.session.state.JUPYTER, BATCH or PIPELINE); its exit
        status."""
        return self.kind(kind).start(self, options)

    def check_fit(self, job: JobSpec, what: str, workers: bool) -> None:
        """Refuse a job (and, with ``workers``, the Dask worker jobs) that the site cannot
        hold, before anything is submitted (verbose: show the workers' merged Dask config)."""
        self.site.check_fit(job, what, workers, self.problem, self.say if self.verbose else None)

    def attach(self, options: Options) -> int:
        """Follow the site's saved session again (the same job)."""
        self.configure(options.reconnect_for)
        state = saved.load(self.config.uid)
        if state is None:
            raise NoSessionError(
                f"no session saved for site '{self.config.uid}'. Start one with --mode run."
            )
        return self.kind(state.kind).attach(self, state, options)

    # ---------------------------------------------------------------------------- end, stop

    def end(self, state: SessionState, ended_state: str, outcome: str) -> None:
        """Record how a session ended (``saved.record_end``), then forget it."""
        state.ended_state, state.outcome = ended_state, outcome
        saved.record_end(state)
        self.forget(state)

    def forget(self, state: SessionState) -> None:
        """Forget a session: its saved state and the local copy of its scheduler files."""
        if state.scheduler_file:
            local_copy.remove(state.uid)
        saved.delete(state.key)

    def stop(self, state: SessionState) -> None:
        """Cancel the session's job and forget it."""
        try:
            self.site.cancel(state)
        finally:
            self.forget(state)

    def interrupted(self, state: SessionState, what: str, resume_hint: str) -> int:
        """After Ctrl-C: cancel the job if the user agrees (see confirm_cancel), else say how
        to find it again. Returns 130, the exit status of an interrupted command."""
        if confirm_cancel(state.job_id):
            self.stop(state)
            said = f"cancelled {what} {state.job_id}"
            how = signals.received.name if signals.received is not None else "Ctrl-C"
            state.ended_state, state.outcome = (
                "CANCELLED",
                f"{what} {state.job_id} was cancelled ({how})",
            )
            saved.record_end(state)  # the last outcome is this one, not an earlier failure
        else:
            said = f"{what} {state.job_id} keeps running; {resume_hint}"
        if signals.received is not None:  # the terminal may be gone: cancel first, then say
            said = f"{signals.received.name}: {said}"
            with contextlib.suppress(OSError):
                self.say(said)
        else:
            self.say(said)
        return 130

    # ---------------------------------------------------------------------------- saved jobs

    def find(self, job_id: str | None) -> SessionState:
        """The saved session of job `job_id`, else the site's interactive session."""
        uid = self.config.uid
        if job_id:
            state = saved.find(uid, job_id)
            if state is None:
                raise NoSessionError(f"no session or batch job {job_id} saved for site '{uid}'.")
            return state
        state = saved.load(uid)
        if state is None:
            batch_jobs = [s.job_id for s in saved.load_all() if s.uid == uid]
            hint = f" Batch jobs: {', '.join(batch_jobs)} (pass --job JOBID)." if batch_jobs else ""
            raise NoSessionError(
                f"no session saved for site '{uid}'. Start one with --mode run.{hint}"
            )
        return state

    def status_record(self, job_id: str | None) -> Record:
        """What status reports about a saved session or batch job (no session: state NONE)."""
        if not job_id and saved.load(self.config.uid) is None:
            ended = saved.load_ended(self.config.uid)
            return {
                "uid": self.config.uid,
                "job_id": None,
                "state": "NONE",
                **({"last_job": ended.job_id, "last_outcome": ended.outcome} if ended else {}),
                "reason": "",
                "node": "",
                "time_left": "",
                "url": None,
                "local_port": None,
            }
        state = self.find(job_id)
        return self.kind(state.kind).status_record(self, state)

    def stop_saved(self, job_id: str | None) -> None:
        """Cancel a saved session's job (`job_id` picks a batch job) and forget it."""
        if not job_id and saved.load(self.config.uid) is None:
            raise NoSessionError(f"no session saved for site '{self.config.uid}'; nothing to stop.")
        state = self.find(job_id)
        self.kind(state.kind).stop(self, state)

    def logs(self, job_id: str | None, follow: bool, lines: int, out: TextIO) -> None:
        """Print the tail of the job's output (follow: as it grows; a batch job until it ends)."""
        state = self.find(job_id)
        self.kind(state.kind).logs(self, state, follow, lines, out)


def confirm_cancel(job_id: str) -> bool:
    """Ask before cancelling on a terminal; cancel without asking otherwise, and after SIGTERM
    or SIGHUP (see launcher.signals: nobody is left to answer)."""
    if signals.received is not None or not sys.stdin.isatty():
        return True
    try:
        answer = input(f"\nCancel job {job_id}? [Y/n] ").strip().lower()
    except (EOFError, KeyboardInterrupt):
        return True
    return answer in ("", "y", "yes")


if TYPE_CHECKING:
    from launcher.pipeline.run import PipelineKind
    from launcher.session.batch import BatchKind
    from launcher.session.jupyter import JupyterKind
    from launcher.session.kinds import ClusterOnlyKind, Driver

    def _every_kind_is_a_job_kind(site: RemoteSite) -> list[JobKind]:
        """For mypy only: each kind class takes every JobKind call as the protocol says."""
        return [JupyterKind(site), BatchKind(site), PipelineKind(site), ClusterOnlyKind("", "")]

    def _the_lifecycle_is_a_driver(lc: Lifecycle) -> Driver:
        """For mypy only: the lifecycle offers the kinds every Driver call."""
        return lc
