"""Batch mode: run a script in a SLURM job with a Dask cluster of N workers; stream its output.

`--mode batch --script analysis.py --workers N [-- args]` uploads the script into a fresh 0700
run directory on the cluster and submits a small job (one CPU) that runs
templates/batch_driver.py: it starts a Dask scheduler with a `dask_jobqueue.SLURMCluster`
configured by the site profile's Dask config, keeps N workers (each worker job a SLURM job of
its own), exports DASK_SCHEDULER_ADDRESS (and the run's TLS settings) so that
`distributed.Client()` in the script connects, runs `python analysis.py args...`, and closes
the cluster and cancels its worker jobs when the script ends, fails or the job is cancelled.

Why SLURMCluster worker jobs rather than dask-jobqueue's SLURMRunner (one multi-node
allocation whose ranks become scheduler, client and workers):

- workers come and go independently: each is a small job that starts as soon as the queue has
  room for it, and may end (`--lifetime`) without ending the run;
- the driver job needs no large multi-node allocation, so it starts as quickly as any small job;
- the workers use the same profile config (jobqueue.slurm) as the interactive sessions, so a
  script that works in JupyterLab works unchanged here;
- a lost worker (node failure, preemption, time limit) is replaced, because the cluster adapts
  with minimum = maximum = N; with SLURMRunner a lost rank ends the whole allocation.

The launcher polls the job's output file and prints what is new until the job ends, then exits
with the script's exit status (written by the driver to `<run dir>/exit_status`; SLURM's exit
code when the script never ran). Batch jobs are saved as `<uid>.batch-<job id>` so they never
collide with the site's interactive session; `status`, `logs` and `stop` take `--job JOBID`.
"""

from __future__ import annotations

import codecs
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from launcher import state as saved
from launcher.errors import LauncherError
from launcher.jobscript import BATCH_DRIVER_NAME, render_batch, template_text
from launcher.scheduler import JobStatus
from launcher.session import RemoteSession
from launcher.state import BATCH, SessionState

EXIT_STATUS_NAME = "exit_status"
POLL_SECONDS = 1.0
RESERVED_NAMES = frozenset({BATCH_DRIVER_NAME, EXIT_STATUS_NAME, "dask", "tls"})


def submit(
    session: RemoteSession,
    script: Path,
    script_args: list[str],
    workers: int,
    timeout: float,
) -> SessionState:
    """Upload the script into a new run directory and submit the batch job; save its state.

    `timeout` is how long the driver waits for the workers to join once it runs.
    """
    if not script.is_file():
        raise LauncherError(f"script {script} does not exist. Pass a Python file to --script.")
    if script.name in RESERVED_NAMES:
        raise LauncherError(f"the script may not be called {script.name}; rename it.")
    if workers < 1:
        raise LauncherError("--workers must be at least 1.")
    site = session.site
    files = {
        BATCH_DRIVER_NAME: template_text(BATCH_DRIVER_NAME),
        script.name: script.read_text(encoding="utf-8"),
    }
    run_dir = session.new_run_dir(f"{site.uid}-batch", files)
    job = render_batch(site, run_dir, script.name, script_args, workers, timeout)
    job_id = session.scheduler.submit(job)
    state = SessionState(
        uid=site.uid,
        platform=site.platform,
        job_id=job_id,
        run_dir=run_dir,
        token="",
        local_port=0,
        kind=BATCH,
    )
    saved.save(state)
    return state


def stream(
    session: RemoteSession,
    state: SessionState,
    out: TextIO,
    show: Callable[[JobStatus], None],
) -> JobStatus:
    """Print the job's output as it grows until the job ends; return its final status."""
    path = session.output_path(state)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    offset = 0
    while True:
        status = session.status(state)
        show(status)
        chunk = session.read_from(path, offset)
        offset += len(chunk)
        out.write(decoder.decode(chunk, final=status.finished))
        out.flush()
        if status.finished:
            return status
        if not chunk:
            time.sleep(POLL_SECONDS)


def recorded_exit_status(session: RemoteSession, state: SessionState) -> int | None:
    """The script's exit status as the driver recorded it, or None."""
    text = session.read_from(f"{state.run_dir}/{EXIT_STATUS_NAME}", 0).decode().strip()
    return int(text) if text.lstrip("-").isdigit() else None


def slurm_exit_code(exit_code: str) -> int | None:
    """A shell-style exit status from SLURM's `code:signal` ExitCode (128+signal if killed)."""
    code, _, signal = exit_code.partition(":")
    if not code.isdigit():
        return None
    if signal.isdigit() and int(signal):
        return 128 + int(signal)
    return int(code)


def exit_status(session: RemoteSession, state: SessionState, status: JobStatus) -> int:
    """The script's exit status; SLURM's exit code when the script did not run to its end."""
    recorded = recorded_exit_status(session, state)
    if recorded is not None:
        return recorded
    from_slurm = slurm_exit_code(status.exit_code)
    if from_slurm is not None and (from_slurm or status.state == "COMPLETED"):
        return from_slurm
    return 0 if status.state == "COMPLETED" else 1
