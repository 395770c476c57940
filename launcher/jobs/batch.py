"""Batch mode: run a script in a batch job with a Dask cluster of N workers; stream its output.

`--mode batch --script analysis.py --workers N [-- args]` uploads the script into a fresh 0700
run directory on the cluster and submits a small job (one CPU) that runs
:mod:`eoshared.scheduler.driver`: it starts a Dask scheduler with the batch system's
dask-jobqueue cluster configured by the site profile's Dask config, keeps N workers (each
worker job a job of its own), exports DASK_SCHEDULER_ADDRESS (and the run's TLS settings) so
that `distributed.Client()` in the script connects, runs `python analysis.py args...`, and
closes the cluster and cancels its worker jobs when the script ends, fails or is cancelled.

Why SLURMCluster worker jobs rather than dask-jobqueue's SLURMRunner (one multi-node
allocation whose ranks become scheduler, client and workers):

- workers come and go independently: each is a small job that starts as soon as the queue has
  room for it, and may end (`--lifetime`) without ending the run;
- the driver job needs no large multi-node allocation, so it starts as quickly as any small job;
- the workers use the same profile config (jobqueue.slurm) as the interactive sessions, so a
  script that works in JupyterLab works unchanged here;
- a lost worker (node failure, preemption, time limit) is replaced, because the cluster adapts
  with minimum = maximum = N; with SLURMRunner a lost rank ends the whole allocation.

Sites that allocate whole nodes (or cap jobs per user) get the runner model too: with
``--nodes N`` (or the site's ``batch_nodes``) the job is one allocation of N nodes, each node
sized as one worker job, whose workers the driver starts on the job's own nodes
(:mod:`eoshared.scheduler.allocation`).

The launcher polls the job's output file and prints what is new until the job ends, then exits
with the script's exit status (written by the driver to `<run dir>/exit_status`; the batch
system's exit code when the script never ran).
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from eoshared.batchsystem import JobStatus, batch_system_class
from eoshared.errors import JobFailedError, LauncherError, LinkLostError
from eoshared.scheduler.contract import EXIT_STATUS_NAME, FAILURE_NAME, TLS_DIR, WORKER_LOGS_DIR
from launcher.config import Site
from launcher.session import state as saved
from launcher.session.kinds import Record, job_record
from launcher.session.state import BATCH, SessionState
from launcher.sites.jobscript import DASK_DIR, batch_job, render_batch
from launcher.sites.remote import POLL_SECONDS, RemoteSite

if TYPE_CHECKING:
    from launcher.session.kinds import Driver
    from launcher.session.options import Options

RESERVED_NAMES = frozenset({EXIT_STATUS_NAME, FAILURE_NAME, DASK_DIR, TLS_DIR, WORKER_LOGS_DIR})


def batch_size(site: Site, workers: int | None, nodes: int | None) -> tuple[int, int | None]:
    """The workers (jobs of their own) and the nodes (one allocation, None: none) of a batch
    job from ``--workers`` and ``--nodes``, the site's ``batch_nodes`` when neither is given;
    a LauncherError for both, or for nodes on a batch system whose jobs span one node."""
    if workers is not None and nodes is not None:
        raise LauncherError(
            "--workers and --nodes exclude each other: with --nodes N each node runs the "
            "workers of one worker job (the site's worker_processes). Keep one of them."
        )
    if workers is None and nodes is None:
        nodes = site.profile.batch_nodes
    if nodes is not None:
        batch_system_class(site.profile.batch_system)().check_multi_node(
            "one allocation (--nodes, batch_nodes)",
            "leave out --nodes (and batch_nodes): each Dask worker is then a job of its own "
            "(--workers N)",
        )
    return workers or 1, nodes


def submit(
    site: RemoteSite,
    script: Path,
    script_args: list[str],
    workers: int,
    timeout: float,
    nodes: int | None = None,
) -> SessionState:
    """Upload the script into a new run directory and submit the batch job (with ``nodes``:
    one allocation of that many nodes).

    `timeout` is how long the driver waits for the workers to join once it runs.
    """
    if not script.is_file():
        raise LauncherError(f"script {script} does not exist. Pass a Python file to --script.")
    if script.name in RESERVED_NAMES:
        raise LauncherError(f"the script may not be called {script.name}; rename it.")
    if workers < 1:
        raise LauncherError("--workers must be at least 1.")
    config = site.config
    files = {script.name: script.read_text(encoding="utf-8")}
    run_dir = site.new_run_dir(f"{config.uid}-batch", files)
    job = render_batch(config, run_dir, script.name, script_args, workers, timeout, nodes)
    job_id = site.batch.submit(job)
    return SessionState(
        uid=config.uid,
        platform=config.platform,
        job_id=job_id,
        run_dir=run_dir,
        token="",
        local_port=0,
        kind=BATCH,
    )


def stream(
    site: RemoteSite,
    state: SessionState,
    out: TextIO,
    show: Callable[[JobStatus], None],
    on_problem: Callable[[str], None] = lambda _: None,
    offset: int = 0,
) -> JobStatus:
    """Print the job's output from ``offset`` on as it grows until the job ends; return its
    final status. A lost connection is retried (RemoteSite.persist) and the output goes on
    where it stopped; a longer outage raises LinkLostError."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    while True:
        status = site.persist(lambda: site.status(state), on_problem)
        show(status)
        if site.batch.stuck(status):
            site.cancel(state)
            raise JobFailedError(site.stuck_message(state, status))
        chunk = site.persist(functools.partial(site.read_output, state, offset), on_problem)
        offset += len(chunk)
        out.write(decoder.decode(chunk, final=status.finished))
        out.flush()
        if status.finished:
            return status
        if not chunk:
            time.sleep(POLL_SECONDS)


def recorded_failure(site: RemoteSite, state: SessionState) -> str:
    """Why the script never ran, as the driver recorded it ("" if it did not)."""
    return site.link.read(f"{state.run_dir}/{FAILURE_NAME}").decode(errors="replace").strip()


def recorded_exit_status(site: RemoteSite, state: SessionState) -> int | None:
    """The script's exit status as the driver recorded it, or None."""
    text = site.link.read(f"{state.run_dir}/{EXIT_STATUS_NAME}").decode().strip()
    return int(text) if text.lstrip("-").isdigit() else None


def job_exit_code(exit_code: str) -> int | None:
    """A shell-style exit status from a `code:signal` exit code (128+signal if killed)."""
    code, _, signal = exit_code.partition(":")
    if not code.isdigit():
        return None
    if signal.isdigit() and int(signal):
        return 128 + int(signal)
    return int(code)


def exit_status(site: RemoteSite, state: SessionState, status: JobStatus) -> int:
    """The script's exit status; the job's exit code when the script did not run to its end."""
    recorded = recorded_exit_status(site, state)
    if recorded is not None:
        return recorded
    from_job = job_exit_code(status.exit_code)
    if from_job is not None and (from_job or status.state == "COMPLETED"):
        return from_job
    return 0 if status.state == "COMPLETED" else 1


class BatchKind:
    """A batch job of a cluster site (saved as ``<uid>.batch-<job id>``)."""

    #: What starts one and what a saved one is called, where a site has no batch system.
    needs_cluster = ("--mode batch", "batch mode")

    def __init__(self, site: RemoteSite) -> None:
        self.site = site

    def start(self, lc: Driver, options: Options) -> int:
        """Submit a script with N Dask workers; stream its output and return its exit status."""
        if options.script is None:
            raise LauncherError("--mode batch needs --script PATH (and --workers N).")
        workers, nodes = batch_size(lc.config, options.workers, options.nodes)
        what = f"each node of the batch job ({nodes} nodes)" if nodes else "the batch job"
        lc.check_fit(batch_job(lc.config, nodes), what, workers=not nodes)
        self.site.check_build(lc.problem)
        state = submit(
            self.site, options.script, options.script_args, workers, options.timeout, nodes
        )
        saved.save(state)
        lc.say(
            f"submitted batch job {state.job_id} for site '{lc.config.uid}' "
            f"(run directory {state.run_dir})"
        )
        if options.detach:
            print(state.job_id, flush=True)
            lc.say(f"--mode logs/status/stop --job {state.job_id} follow, show or cancel it")
            return 0
        return self.attach(lc, state, options)

    def attach(self, lc: Driver, state: SessionState, options: Options) -> int:
        """Stream the job's output until it ends; report it and return the script's exit
        status."""
        try:
            final = stream(
                self.site, state, options.out, lambda s: lc.show_status(s, "the script"), lc.problem
            )
        except KeyboardInterrupt:
            return lc.interrupted(state, "batch job", f"--job {state.job_id} finds it")
        except JobFailedError as exc:
            lc.end(state, "CANCELLED", str(exc))
            raise
        except LinkLostError as exc:
            raise LinkLostError(
                f"{exc} Batch job {state.job_id} keeps running; --mode logs -f --job "
                f"{state.job_id} follows it and gives its exit status once the login node "
                "answers."
            ) from None
        return self.report(lc, state, final, options)

    def report(self, lc: Driver, state: SessionState, final: JobStatus, options: Options) -> int:
        """Report how a batch job ended (with its cause when the script never ran or the job
        failed); record it and return the script's exit status."""
        site = self.site
        code = exit_status(site, state, final)
        outcome = f"batch job {state.job_id} ended ({final.state}); script exit status {code}"
        failure = recorded_failure(site, state)
        if failure:
            outcome += f". The script did not run: {failure}"
        elif site.batch.failed(final) and recorded_exit_status(site, state) is None:
            outcome += (
                f". Last lines of {site.output_path(state)}:\n{site.tail(state, 10)}\n"
                f"Fix: {site.batch.status_fix(final)}."
            )
        lc.end(state, final.state, outcome)
        lc.say(outcome)
        return code

    def status_record(self, lc: Driver, state: SessionState) -> Record:
        """The job's state, its run directory and, once it ended, the script's exit status."""
        status = self.site.status(state)
        record = job_record(lc, state, status)
        record["url"] = record["local_port"] = None
        record["kind"] = state.kind
        record["run_dir"] = state.run_dir
        record["exit_status"] = exit_status(self.site, state, status) if status.finished else None
        return record

    def stop(self, lc: Driver, state: SessionState) -> None:
        """Cancel the batch job (its driver cancels the workers) and forget it."""
        lc.stop(state)
        lc.say(f"stopped batch job {state.job_id} of site '{lc.config.uid}'")

    def logs(self, lc: Driver, state: SessionState, follow: bool, lines: int, out: TextIO) -> None:
        """The tail of the job's output; follow: all of it, as it grows, until the job ends."""
        if follow:
            with contextlib.suppress(KeyboardInterrupt):
                stream(self.site, state, out, lambda _: None)
            return
        print(self.site.tail(state, lines), file=out)
