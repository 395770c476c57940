"""The session lifecycle: start, wait, tunnel, watch, stop, and the saved state of each.

A session is one job of a site: JupyterLab (`run`, `attach`) or a script with Dask workers
(`batch`). This module is the only one that saves or forgets a session
(:mod:`launcher.state`); the site it drives (a :class:`~launcher.jobsite.JobSite`:
:class:`~launcher.remote.RemoteSite` or :class:`~launcher.local.LocalSite`) submits, queries
and cancels jobs, and the lifecycle never asks which one it has.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import webbrowser
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.markup import escape

# batch, ledger and pipeline are imported by the modes that use them (run/attach need none).
from launcher import state as saved
from launcher.batchsystem import JobStatus
from launcher.config import JobSpec, Site
from launcher.dashboard import dashboard_hint
from launcher.errors import (
    ClusterSiteError,
    JobFailedError,
    JupyterTimeoutError,
    LauncherError,
    LinkLostError,
    NoSessionError,
    SessionExistsError,
)
from launcher.jobscript import BATCH_JOB_CPUS
from launcher.jobsite import JobSite
from launcher.local import LocalSite
from launcher.remote import RECONNECT_SECONDS, RemoteSite
from launcher.scheduler import local_copy
from launcher.scheduler.contract import read_scheduler_file
from launcher.ssh import SSHLink
from launcher.state import SessionState
from launcher.tunnel import check_port_free, free_port, port_free


@dataclass
class Options:
    """What the command line says about a session."""

    local_port: int | None = None
    timeout: float = 300.0
    no_browser: bool = False
    detach: bool = False
    new: bool = False
    scheduler_max_jobs: int | None = None
    #: Minutes before the Jupyter job's walltime ends at which the terminal warns (0: never).
    walltime_warning: float = 10.0
    #: Seconds a lost connection to the login node is retried before giving up.
    reconnect_for: float = RECONNECT_SECONDS


@contextlib.contextmanager
def open_site(config: Site) -> Iterator[JobSite]:
    """The local site, or a remote one over the run's single SSH connection."""
    if config.is_local:
        yield LocalSite(config)
        return
    with SSHLink(config) as link:
        yield RemoteSite(config, link)


def require_remote(site: JobSite, what: str) -> RemoteSite:
    """The site as a RemoteSite, or an error saying that `what` needs a batch system."""
    if not isinstance(site, RemoteSite):
        raise ClusterSiteError(what)
    return site


class Lifecycle:
    """Start, wait for, serve, stop and report the sessions of one site."""

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

    # ---------------------------------------------------------------------------- run/attach

    def require_no_live_session(self) -> None:
        """Refuse a second job for a site whose saved session is still queued or running."""
        existing = saved.load(self.config.uid)
        if existing is None:
            return
        status = self.site.status(existing)
        if status.finished:
            self.forget(existing)
            return
        if self.held_after_start(existing, status):
            self.site.cancel(existing)
            self.ended(existing, status)
            return
        raise SessionExistsError(
            f"site '{self.config.uid}' already has a live session (job {existing.job_id}, "
            f"{status.state}). Reconnect with --mode attach, end it with --mode stop, or pass "
            "--new for a second job."
        )

    def run(self, options: Options) -> int:
        """Submit, wait, tunnel, open the browser; stay in the foreground unless detached."""
        self.configure(options.reconnect_for)
        if not options.new:
            self.require_no_live_session()
        port = options.local_port or free_port()
        check_port_free(port)
        workers = options.scheduler_max_jobs is not None
        self.site.prepare(
            lambda: self.check_fit(self.config.profile.job, "the Jupyter job", workers=workers)
        )
        state = self.site.submit_jupyter(port, options.scheduler_max_jobs)
        saved.save(state)
        self.say(f"submitted job {state.job_id} for site '{self.config.uid}'")
        try:
            self.wait(state, options.timeout)
            return self.serve(state, options, cancel_on_exit=True)
        except KeyboardInterrupt:
            return self.interrupted(state, "job", "--mode attach reconnects")

    def held_after_start(self, state: SessionState, status: JobStatus) -> bool:
        """True for a session whose job ran (Jupyter was ready) and is held now: HTCondor
        holds a job past its allowed_execute_duration, and it never runs again by itself."""
        return state.ready and self.site.stuck(status)

    def configure(self, reconnect_for: float) -> None:
        """How long the site's waits and watches retry a lost connection."""
        self.site.reconnect_for = reconnect_for

    def end(self, state: SessionState, ended_state: str, outcome: str) -> None:
        """Record how a session ended (``saved.record_end``), then forget it."""
        state.ended_state, state.outcome = ended_state, outcome
        saved.record_end(state)
        self.forget(state)

    def check_fit(self, job: JobSpec, what: str, workers: bool) -> None:
        """Refuse a job (and, with ``workers``, the Dask worker jobs) that the site cannot
        hold, before anything is submitted (verbose: show the workers' merged Dask config)."""
        self.site.check_fit(job, what, workers, self.problem, self.say if self.verbose else None)

    def wait(self, state: SessionState, timeout: float) -> None:
        """Wait for Jupyter (and the session scheduler, if any); save what was learnt. A job
        that failed, or was cancelled for taking too long, is forgotten."""
        try:
            self.site.wait_ready(state, timeout, self.show_status, self.problem)
            saved.save(state)
            if state.with_scheduler:
                self.say("- waiting for the session's Dask scheduler")
                info = self.site.wait_scheduler(state, timeout, self.problem)
                state.scheduler_remote = info.address
                state.scheduler_port = state.scheduler_port or free_port()
                state.scheduler_file = str(
                    local_copy.point_at(state.uid, info, state.scheduler_port)
                )
                saved.save(state)
        except JobFailedError as exc:
            self.end(state, "FAILED", str(exc))
            raise
        except JupyterTimeoutError as exc:
            self.end(state, "TIMEOUT", str(exc))
            raise
        except LinkLostError as exc:
            raise LinkLostError(
                f"{exc} Job {state.job_id} is left as it is; --mode attach continues once the "
                "login node answers (--mode stop cancels it)."
            ) from None

    def attach(self, options: Options) -> int:
        """Open a new tunnel to the site's running session (the same job)."""
        self.configure(options.reconnect_for)
        state = saved.load(self.config.uid)
        if state is None:
            raise NoSessionError(
                f"no session saved for site '{self.config.uid}'. Start one with --mode run."
            )
        status = self.site.status(state)
        if status.finished:
            self.forget(state)
            raise NoSessionError(
                f"job {state.job_id} of site '{self.config.uid}' has ended ({status.state}). "
                "Start a new one with --mode run."
            )
        if self.held_after_start(state, status):
            self.site.cancel(state)
            return self.ended(state, status)
        if options.local_port:
            state.local_port = options.local_port
        elif not port_free(state.local_port):
            state.local_port = free_port()
        check_port_free(state.local_port)
        state.local_port = self.site.jupyter_port(state)
        if state.scheduler_remote and not port_free(state.scheduler_port):
            state.scheduler_port = free_port()
        if not state.ready or (state.with_scheduler and not state.scheduler_remote):
            self.wait(state, options.timeout)
        if state.scheduler_remote:
            info = read_scheduler_file(state.scheduler_file)
            local_copy.point_at(state.uid, info, state.scheduler_port)
        saved.save(state)
        try:
            return self.serve(state, options, cancel_on_exit=False)
        except KeyboardInterrupt:
            self.say(f"detached; job {state.job_id} keeps running (--mode stop ends it)")
            return 130

    def serve(self, state: SessionState, options: Options, cancel_on_exit: bool) -> int:
        """Open the tunnels, announce the URL, and keep them up while the job runs."""
        with contextlib.ExitStack() as tunnels:
            tunnels.enter_context(self.site.tunnel(state, self.problem))
            if state.scheduler_remote:
                tunnels.enter_context(self.site.scheduler_tunnel(state, self.problem))
            self.console.print(
                f"[green]Jupyter is ready[/] {escape(f'(job {state.job_id} on {state.node})')}",
                markup=True,
                emoji=False,
                soft_wrap=True,
            )
            print(state.url, flush=True)
            if state.scheduler_remote:
                self.announce_scheduler(state)
            self.say(dashboard_hint(self.config.profile, state.local_port))
            if not options.no_browser:
                webbrowser.open(state.url)
            if options.detach:
                self.say(f"detached; --mode attach reconnects, --mode stop ends job {state.job_id}")
                return 0
            self.say("Ctrl-C " + ("cancels the job" if cancel_on_exit else "detaches"))
            try:
                final = self.watch(state, options)
            except LinkLostError as exc:
                self.problem(
                    f"{exc} Job {state.job_id} keeps running; --mode attach reconnects once the "
                    "login node answers, --mode stop ends it."
                )
                return LinkLostError.exit_code
        return self.ended(state, final)

    def watch(self, state: SessionState, options: Options) -> JobStatus:
        """Watch the running job; warn ``options.walltime_warning`` minutes before its
        walltime ends (a site that has one)."""
        return self.site.watch(
            state, self.problem, options.walltime_warning * 60, self.warn_walltime
        )

    def warn_walltime(self, text: str) -> None:
        """The walltime warning, on a line of its own that stands out."""
        self.console.print(
            f"[bold yellow]walltime:[/] {escape(text)}", markup=True, emoji=False, soft_wrap=True
        )

    def ended(self, state: SessionState, final: JobStatus) -> int:
        """Report a session's job that ended while it was watched; record and forget it."""
        self.say(f"job {state.job_id} ended ({final.state}). Last lines of its output:")
        self.say(self.site.tail(state))
        outcome = f"job {state.job_id} ended ({final.state})"
        if self.site.reached_walltime(final):
            notebooks = self.config.profile.jupyter.root_dir or "~"
            outcome += (
                f": it reached its walltime ({self.config.profile.job.time}). Your notebooks are "
                f"saved in {notebooks} on the cluster (JupyterLab saves them as you work; "
                "unsaved edits and kernel state are lost). Start again with --mode run; ask "
                "for more time with 'time' in platforms.ini."
            )
            self.warn_walltime(outcome)
        elif not final.finished:  # held while it ran: cancelled
            outcome += (
                f": it was held ({final.reason or 'no reason given'}) and is cancelled. "
                f"Fix: {self.site.stuck_fix(final)}."
            )
            self.problem(outcome)
        elif self.site.status_fix(final):
            outcome += f". Fix: {self.site.status_fix(final)}."
            self.problem(outcome)
        self.end(state, final.state, outcome)
        return 1

    def announce_scheduler(self, state: SessionState) -> None:
        """Print where the session scheduler is and the one call that connects to it."""
        self.say(
            f"Dask scheduler is ready at {state.scheduler_address} (forwarded to "
            f"{state.scheduler_remote}); scheduler file {state.scheduler_file}"
        )
        print(f"export EOHPC_SESSION={state.uid}  # or EOHPC_SCHEDULER_FILE={state.scheduler_file}")
        print(local_copy.USAGE, flush=True)

    # ---------------------------------------------------------------------------- stop

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
            self.say(f"cancelled {what} {state.job_id}")
        else:
            self.say(f"{what} {state.job_id} keeps running; {resume_hint}")
        return 130

    # ---------------------------------------------------------------------------- reports

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

    def status_record(self, job_id: str | None) -> dict[str, str | int | None]:
        """What status reports about a saved session or batch job (no session: state NONE)."""
        from launcher import batch

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
        if state.kind == saved.PIPELINE:
            return pipeline_status(self.site, state)
        status = self.site.status(state)
        record: dict[str, str | int | None] = {
            "uid": self.config.uid,
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
        if state.kind == saved.BATCH:
            remote = require_remote(self.site, "batch mode")
            record["url"] = record["local_port"] = None
            record["kind"] = state.kind
            record["run_dir"] = state.run_dir
            record["exit_status"] = (
                batch.exit_status(remote, state, status) if status.finished else None
            )
        return record

    def stop_saved(self, job_id: str | None) -> None:
        """Cancel a saved session's job (`job_id` picks a batch job) and forget it."""
        from launcher import pipeline

        if not job_id and saved.load(self.config.uid) is None:
            raise NoSessionError(f"no session saved for site '{self.config.uid}'; nothing to stop.")
        state = self.find(job_id)
        if state.kind == saved.PIPELINE:
            try:
                pipeline.cancel(require_remote(self.site, "a pipeline"), state)
            finally:
                self.forget(state)
            self.say(f"stopped pipeline {Path(state.run_dir).name} of site '{self.config.uid}'")
            return
        self.stop(state)
        what = "batch job" if state.kind == saved.BATCH else "job"
        self.say(f"stopped {what} {state.job_id} of site '{self.config.uid}'")

    def logs(self, job_id: str | None, follow: bool, lines: int, out: TextIO) -> None:
        """Print the tail of the job's output (follow: as it grows; a batch job until it ends)."""
        from launcher import batch, pipeline

        state = self.find(job_id)
        if state.kind == saved.PIPELINE:
            with contextlib.suppress(KeyboardInterrupt):
                pipeline.logs(require_remote(self.site, "a pipeline"), state, lines, follow)
            return
        if follow and state.kind == saved.BATCH:
            with contextlib.suppress(KeyboardInterrupt):
                batch.stream(require_remote(self.site, "batch mode"), state, out, lambda _: None)
            return
        if follow:
            with contextlib.suppress(KeyboardInterrupt):
                self.site.follow(state, lines)
            return
        print(self.site.tail(state, lines), file=out)

    # ---------------------------------------------------------------------------- batch

    def batch(
        self,
        script: Path | None,
        script_args: list[str],
        workers: int,
        timeout: float,
        detach: bool,
        out: TextIO,
    ) -> int:
        """Submit a script with N Dask workers; stream its output and return its exit status."""
        from launcher import batch

        remote = require_remote(self.site, "--mode batch")
        if script is None:
            raise LauncherError("--mode batch needs --script PATH (and --workers N).")
        job = dataclasses.replace(self.config.profile.job, cpus=BATCH_JOB_CPUS)
        self.check_fit(job, "the batch job", workers=True)
        state = batch.submit(remote, script, script_args, workers, timeout)
        saved.save(state)
        self.say(
            f"submitted batch job {state.job_id} for site '{self.config.uid}' "
            f"(run directory {state.run_dir})"
        )
        if detach:
            print(state.job_id, flush=True)
            self.say(f"--mode logs/status/stop --job {state.job_id} follow, show or cancel it")
            return 0
        try:
            final = batch.stream(
                remote, state, out, lambda s: self.show_status(s, "the script"), self.problem
            )
        except KeyboardInterrupt:
            return self.interrupted(state, "batch job", f"--job {state.job_id} finds it")
        except JobFailedError as exc:
            self.end(state, "CANCELLED", str(exc))
            raise
        except LinkLostError as exc:
            raise LinkLostError(
                f"{exc} Batch job {state.job_id} keeps running; --mode logs -f --job "
                f"{state.job_id} follows it and gives its exit status once the login node "
                "answers."
            ) from None
        return self.batch_ended(remote, state, final)

    def batch_ended(self, remote: RemoteSite, state: SessionState, final: JobStatus) -> int:
        """Report how a batch job ended (with its cause when the script never ran or the job
        failed); record it and return the script's exit status."""
        from launcher import batch

        code = batch.exit_status(remote, state, final)
        outcome = f"batch job {state.job_id} ended ({final.state}); script exit status {code}"
        failure = batch.recorded_failure(remote, state)
        if failure:
            outcome += f". The script did not run: {failure}"
        elif remote.batch.failed(final) and batch.recorded_exit_status(remote, state) is None:
            outcome += (
                f". Last lines of {remote.output_path(state)}:\n{remote.tail(state, 10)}\n"
                f"Fix: {remote.batch.status_fix(final)}."
            )
        self.end(state, final.state, outcome)
        self.say(outcome)
        return code

    # ---------------------------------------------------------------------------- pipeline

    def pipeline(self, path: Path | None, detach: bool, as_json: bool) -> int:
        """Submit a staged pipeline; wait for it, print its report, return 0 only when every
        scene is done (the details are in launcher.pipeline)."""
        from launcher import ledger, pipeline

        remote = require_remote(self.site, "--mode pipeline")
        pipe = pipeline.require_file(path)
        state, info = pipeline.submit(remote, pipe, self.say)
        if state is None:
            records = pipeline.read_ledger(remote, info["workdir"])
            rep = ledger.report(records, info["scenes"], pipeline=pipe.name, run=info["run"])
            return self.print_report(rep, as_json)
        saved.save(state)
        pipe_id = Path(state.run_dir).name
        if detach:
            print(pipe_id, flush=True)
            self.say(f"--mode status/logs/stop --job {pipe_id} show, follow or cancel it")
            return 0
        try:
            final = pipeline.watch(remote, state, self.say)
        except KeyboardInterrupt:
            return self.interrupted(state, "pipeline", f"--job {pipe_id} finds it")
        rep = pipeline.final_report(remote, state, final)
        self.forget(state)
        pipeline.on_failure(path, rep, self.say)
        return self.print_report(rep, as_json)

    def print_report(self, rep: dict[str, object], as_json: bool) -> int:
        """The report as a table here (and as JSON on standard output); its exit status."""
        from launcher import ledger

        self.say(ledger.table(rep))
        if as_json:
            print(json.dumps(rep), flush=True)
        return 0 if rep["ok"] else 1


def pipeline_status(site: JobSite, state: SessionState) -> dict[str, str | int | None]:
    """A pipeline's status record (each step and the ledger's counts)."""
    from launcher import pipeline

    record = pipeline.status_record(require_remote(site, "a pipeline"), state)
    return {k: v if v is None or isinstance(v, int | str) else str(v) for k, v in record.items()}


def confirm_cancel(job_id: str) -> bool:
    """Ask before cancelling on a terminal; cancel without asking otherwise."""
    if not sys.stdin.isatty():
        return True
    try:
        answer = input(f"\nCancel job {job_id}? [Y/n] ").strip().lower()
    except (EOFError, KeyboardInterrupt):
        return True
    return answer in ("", "y", "yes")
