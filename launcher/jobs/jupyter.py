"""The Jupyter session kind: JupyterLab in a job (or a process here), reached through a tunnel.

``--mode run`` starts it, ``--mode attach`` opens a new tunnel to it; both wait for Jupyter
(and the session's Dask scheduler, with ``--scheduler``), open the tunnels, announce the URL
and watch the job until it ends or the user detaches. Everything here goes through the
:class:`~launcher.session.jobsite.JobSite` it was given, whichever site that is.
"""

from __future__ import annotations

import contextlib
import webbrowser
from typing import TYPE_CHECKING, TextIO

from rich.markup import escape

from eoshared.batchsystem import JobStatus
from eoshared.errors import (
    JobFailedError,
    JupyterTimeoutError,
    LinkLostError,
    NoSessionError,
    SessionExistsError,
)
from eoshared.scheduler import local_copy
from eoshared.scheduler.contract import read_scheduler_file
from launcher.connection.tunnel import check_port_free, free_port, port_free
from launcher.jobs.dashboard import dashboard_hint
from launcher.session import state as saved
from launcher.session.jobsite import JobSite
from launcher.session.kinds import Record, job_record
from launcher.session.state import SessionState

#: The ended state recorded for a session its user stopped.
STOPPED = "CANCELLED"


def stopped_outcome(state: SessionState) -> str:
    """The outcome recorded for a session its user stopped with ``--mode stop``."""
    return f"job {state.job_id} was stopped with --mode stop"


if TYPE_CHECKING:
    from launcher.session.kinds import Driver
    from launcher.session.options import Options


class JupyterKind:
    """A site's interactive session (saved as the site's uid)."""

    #: Runs on every site.
    needs_cluster = None

    def __init__(self, site: JobSite) -> None:
        self.site = site

    # ---------------------------------------------------------------------------- run

    def start(self, lc: Driver, options: Options) -> int:
        """Submit, wait, tunnel, open the browser; stay in the foreground unless detached."""
        lc.configure(options.reconnect_for)
        if not options.new:
            self.require_no_live_session(lc, options)
        port = options.local_port or free_port()
        check_port_free(port)
        workers = options.scheduler_max_jobs is not None
        self.site.prepare(
            lambda: lc.check_fit(lc.config.profile.job, "the Jupyter job", workers=workers)
        )
        self.site.check_build(lc.problem)
        state = self.site.submit_jupyter(port, options.scheduler_max_jobs)
        saved.save(state)
        lc.say(f"submitted job {state.job_id} for site '{lc.config.uid}'")
        try:
            self.wait(lc, state, options.timeout)
            return self.serve(lc, state, options, cancel_on_exit=True)
        except KeyboardInterrupt:
            return lc.interrupted(state, "job", "--mode attach reconnects")

    def require_no_live_session(self, lc: Driver, options: Options) -> None:
        """Refuse a second job for a site whose saved session is still queued or running."""
        existing = saved.load(lc.config.uid)
        if existing is None:
            return
        status = self.site.status(existing)
        if status.finished:
            lc.forget(existing)
            return
        if self.held_after_start(existing, status):
            self.site.cancel(existing)
            self.report(lc, existing, status, options)
            return
        raise SessionExistsError(
            f"site '{lc.config.uid}' already has a live session (job {existing.job_id}, "
            f"{status.state}). Reconnect with --mode attach, end it with --mode stop, or pass "
            "--new for a second job."
        )

    def held_after_start(self, state: SessionState, status: JobStatus) -> bool:
        """True for a session whose job ran (Jupyter was ready) and is held now: HTCondor
        holds a job past its allowed_execute_duration, and it never runs again by itself."""
        return state.ready and self.site.stuck(status)

    def wait(self, lc: Driver, state: SessionState, timeout: float) -> None:
        """Wait for Jupyter (and the session scheduler, if any); save what was learnt. A job
        that failed, or was cancelled for taking too long, is forgotten."""
        try:
            self.site.wait_ready(state, timeout, lc.show_status, lc.problem)
            saved.save(state)
            if state.with_scheduler:
                lc.say("- waiting for the session's Dask scheduler")
                info = self.site.wait_scheduler(state, timeout, lc.problem)
                state.scheduler_remote = info.address
                state.scheduler_port = state.scheduler_port or free_port()
                state.scheduler_file = str(
                    local_copy.point_at(state.uid, info, state.scheduler_port)
                )
                saved.save(state)
        except JobFailedError as exc:
            lc.end(state, "FAILED", str(exc))
            raise
        except JupyterTimeoutError as exc:
            lc.end(state, "TIMEOUT", str(exc))
            raise
        except LinkLostError as exc:
            raise LinkLostError(
                f"{exc} Job {state.job_id} is left as it is; --mode attach continues once the "
                "login node answers (--mode stop cancels it)."
            ) from None

    # ---------------------------------------------------------------------------- attach

    def attach(self, lc: Driver, state: SessionState, options: Options) -> int:
        """Open a new tunnel to the site's running session (the same job)."""
        status = self.site.status(state)
        if status.finished:
            lc.forget(state)
            raise NoSessionError(
                f"job {state.job_id} of site '{lc.config.uid}' has ended ({status.state}). "
                "Start a new one with --mode run."
            )
        if self.held_after_start(state, status):
            self.site.cancel(state)
            return self.report(lc, state, status, options)
        if options.local_port:
            state.local_port = options.local_port
        elif not port_free(state.local_port):
            state.local_port = free_port()
        check_port_free(state.local_port)
        state.local_port = self.site.jupyter_port(state)
        if state.scheduler_remote and not port_free(state.scheduler_port):
            state.scheduler_port = free_port()
        if not state.ready or (state.with_scheduler and not state.scheduler_remote):
            self.wait(lc, state, options.timeout)
        if state.scheduler_remote:
            info = read_scheduler_file(state.scheduler_file)
            local_copy.point_at(state.uid, info, state.scheduler_port)
        saved.save(state)
        try:
            return self.serve(lc, state, options, cancel_on_exit=False)
        except KeyboardInterrupt:
            lc.say(f"detached; job {state.job_id} keeps running (--mode stop ends it)")
            return 130

    def serve(self, lc: Driver, state: SessionState, options: Options, cancel_on_exit: bool) -> int:
        """Open the tunnels, announce the URL, and keep them up while the job runs. A job the
        batch system puts back in the queue (a node failure, a preemption) is said at once,
        waited for, and reconnected when it runs again; so is one that the watch saw start
        again between two queries (returned running)."""
        first = True
        while True:
            final = self.serve_once(lc, state, options, cancel_on_exit, open_browser=first)
            if final is None:
                return 0 if options.detach else LinkLostError.exit_code
            if final.finished or self.site.stuck(final):
                return self.report(lc, state, final, options)
            reason = f", {final.reason}" if final.reason else ""
            if final.pending:
                what = (
                    f"the batch system put it back in the queue ({final.state}{reason}), as "
                    "after a node failure or a preemption. It starts again by itself, on another "
                    "node if need be, and JupyterLab restarts there"
                )
            else:
                what = (
                    f"the batch system put it back in the queue and started it again "
                    f"({final.state} since {final.started}{reason}), as after a node failure or "
                    "a preemption. JupyterLab restarts"
                )
            lc.problem(
                f"job {state.job_id} stopped running on {state.node}: {what} (saved notebooks "
                "are kept; running kernels are lost). Waiting to reconnect; Ctrl-C "
                f"{'cancels' if cancel_on_exit else 'detaches'}."
            )
            state.node, state.started, state.remote_host, state.remote_port = "", "", "", 0
            state.scheduler_remote = ""
            saved.save(state)
            self.wait(lc, state, options.timeout)
            state.local_port = self.site.jupyter_port(state)
            saved.save(state)
            first = False

    def serve_once(
        self,
        lc: Driver,
        state: SessionState,
        options: Options,
        cancel_on_exit: bool,
        open_browser: bool,
    ) -> JobStatus | None:
        """Tunnels, the URL, and the watch of one run of the job: its status when it stopped
        running (None: detached, or the login node stayed unreachable)."""
        with contextlib.ExitStack() as tunnels:
            tunnels.enter_context(self.site.tunnel(state, lc.problem))
            if state.scheduler_remote:
                tunnels.enter_context(self.site.scheduler_tunnel(state, lc.problem))
            lc.console.print(
                f"[green]Jupyter is ready[/] {escape(f'(job {state.job_id} on {state.node})')}",
                markup=True,
                emoji=False,
                soft_wrap=True,
            )
            print(state.url, flush=True)
            if state.scheduler_remote:
                announce_scheduler(lc, state)
            lc.say(dashboard_hint(lc.config.profile, state.local_port))
            if open_browser and not options.no_browser:
                webbrowser.open(state.url)
            if options.detach:
                lc.say(f"detached; --mode attach reconnects, --mode stop ends job {state.job_id}")
                return None
            lc.say("Ctrl-C " + ("cancels the job" if cancel_on_exit else "detaches"))
            try:
                return self.site.watch(
                    state, lc.problem, options.walltime_warning * 60, lc.warn_walltime
                )
            except LinkLostError as exc:
                lc.problem(
                    f"{exc} Job {state.job_id} keeps running; --mode attach reconnects once the "
                    "login node answers, --mode stop ends it."
                )
                return None

    # ---------------------------------------------------------------------------- reports

    def report(self, lc: Driver, state: SessionState, final: JobStatus, options: Options) -> int:
        """Report a session's job that ended while it was watched; record and forget it."""
        ended = saved.load_ended(state.key)
        if ended and ended.job_id == state.job_id and ended.outcome == stopped_outcome(state):
            lc.say(f"{ended.outcome}.")  # from another command, as its user asked
            return 0
        lc.say(f"job {state.job_id} ended ({final.state}). Last lines of its output:")
        lc.say(self.site.tail(state))
        outcome = f"job {state.job_id} ended ({final.state})"
        if self.site.reached_walltime(final):
            notebooks = lc.config.profile.jupyter.root_dir or "~"
            outcome += (
                f": it reached its walltime ({lc.config.profile.job.time}). Your notebooks are "
                f"saved in {notebooks} on the cluster (JupyterLab saves them as you work; "
                "unsaved edits and kernel state are lost). Start again with --mode run; ask "
                "for more time with 'time' in platforms.ini."
            )
            lc.warn_walltime(outcome)
        elif not final.finished:  # held while it ran: cancelled
            outcome += (
                f": it was held ({final.reason or 'no reason given'}) and is cancelled. "
                f"Fix: {self.site.stuck_fix(final)}."
            )
            lc.problem(outcome)
        elif self.site.status_fix(final):
            outcome += f". Fix: {self.site.status_fix(final)}."
            lc.problem(outcome)
        lc.end(state, final.state, outcome)
        return 1

    def status_record(self, lc: Driver, state: SessionState) -> Record:
        """The job's state, its node and time left, the URL once Jupyter is ready."""
        return job_record(lc, state, self.site.status(state))

    def stop(self, lc: Driver, state: SessionState) -> None:
        """Cancel the session's job and forget it, recording that its user stopped it (a
        foreground run watching it then says so, instead of reporting a failure)."""
        state.ended_state, state.outcome = STOPPED, stopped_outcome(state)
        saved.record_end(state)  # before the job ends, so that a watching run finds it
        lc.stop(state)
        lc.say(f"stopped job {state.job_id} of site '{lc.config.uid}'")

    def logs(self, lc: Driver, state: SessionState, follow: bool, lines: int, out: TextIO) -> None:
        """The tail of the job's output (follow: as it grows, until Ctrl-C)."""
        if follow:
            with contextlib.suppress(KeyboardInterrupt):
                self.site.follow(state, lines)
            return
        print(self.site.tail(state, lines), file=out)


def announce_scheduler(lc: Driver, state: SessionState) -> None:
    """Print where the session scheduler is and the one call that connects to it."""
    lc.say(
        f"Dask scheduler is ready at {state.scheduler_address} (forwarded to "
        f"{state.scheduler_remote}); scheduler file {state.scheduler_file}"
    )
    print(f"export EOHPC_SESSION={state.uid}  # or EOHPC_SCHEDULER_FILE={state.scheduler_file}")
    print(local_copy.USAGE, flush=True)
