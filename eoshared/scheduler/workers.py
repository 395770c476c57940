"""Worker jobs: dask-jobqueue's cluster for a batch system, its scheduler options, job names,
the wait for the workers (telling which jobs pend and why) and the cancellation of every worker
job of a cluster by name."""

from __future__ import annotations

import logging
import os
import pwd
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import dask

from eoshared.batchsystem import BATCH_SYSTEMS, BatchSystem, JobStatus, batch_system_class
from eoshared.scheduler.contract import BATCH_SYSTEM_ENV

log = logging.getLogger(__name__)
JOB_NAME_PREFIX = "eohpc-dask"
#: Every batch system's name (SLURM's first), the order in which a process looks for one.
BATCH_SYSTEM_NAMES = tuple(BATCH_SYSTEMS)
#: How often the wait for workers asks the batch system about the worker jobs.
POLL_SECONDS = 3.0


class WorkersNotReady(RuntimeError):
    """The workers did not all arrive; the message says which worker jobs pend and why."""


def jobqueue() -> Any:
    """Import ``dask_jobqueue`` (adding its defaults to Dask's config), keeping SIGINT as is.

    dask-jobqueue 0.9.0 replaces the SIGINT handler on import with one calling ``sys.exit()``,
    which turns Ctrl-C and Jupyter's interrupt into SystemExit (dask/dask-jobqueue#696); the
    handler in place before the import is put back.
    """
    if "dask_jobqueue" in sys.modules:
        return sys.modules["dask_jobqueue"]
    main = threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGINT) if main else None
    import dask_jobqueue

    if before is not None and signal.getsignal(signal.SIGINT) is not before:
        signal.signal(signal.SIGINT, before)
    return dask_jobqueue


def batch_system(name: str | None = None) -> BatchSystem:
    """The batch system named, else $EOHPC_BATCH_SYSTEM, else SLURM (commands run here)."""
    return batch_system_class(name or os.environ.get(BATCH_SYSTEM_ENV) or "slurm")()


def cluster_class(system: BatchSystem) -> Any:
    """dask-jobqueue's cluster class for the batch system (``SLURMCluster``, ...)."""
    return getattr(jobqueue(), system.jobqueue_class)


def jobqueue_config(system: BatchSystem, key: str, default: Any = None) -> Any:
    """A value of the batch system's ``jobqueue.<section>`` Dask config."""
    jobqueue()
    return dask.config.get(f"jobqueue.{system.jobqueue_section}.{key}", default)


def scheduler_options(
    system: BatchSystem,
    *,
    dashboard_address: str = "127.0.0.1:0",
    host: str | None = None,
    interface: str | None = None,
) -> dict[str, Any]:
    """The scheduler options of a session's cluster: the configured ones, the dashboard on
    ``dashboard_address`` (loopback by default: it has no authentication), and the scheduler
    on ``interface``, else on ``host``, else on the configured interface or this host's name
    (which workers and the login node resolve)."""
    options = dict(jobqueue_config(system, "scheduler-options", {}) or {})
    options["dashboard_address"] = dashboard_address
    if interface:
        options.pop("host", None)
        options["interface"] = interface
    elif host:
        options.pop("interface", None)
        options["host"] = host
    elif not ({"host", "interface"} & set(options) or jobqueue_config(system, "interface")):
        options["host"] = socket.gethostname()
    return options


def name_options(system: BatchSystem, job_name: str) -> dict[str, Any]:
    """The cluster-class arguments that give every worker job the name ``job_name``, by which
    the worker jobs are listed and cancelled. Where dask-jobqueue names each job after its
    worker (HTCondor's ``batch_name``), the name is an extra submit directive
    (``jobqueue_name_directive``)."""
    options: dict[str, Any] = {"job_name": job_name}
    directive = system.jobqueue_name_directive
    if directive:
        extra = dict(jobqueue_config(system, "job-extra-directives", {}) or {})
        options["job_extra_directives"] = {**extra, directive: job_name}
    return options


def worker_options(system: BatchSystem, extra_args: list[str] | None = None) -> dict[str, Any]:
    """The cluster-class arguments that make every worker process clear OpenSSL's error queue
    before each TLS operation (:mod:`eoshared.scheduler.tls_errors`, as a ``--preload``):
    ``worker_extra_args`` = ``extra_args`` (default: the configured ``worker-extra-args``)
    + the preload."""
    from eoshared.scheduler.tls_errors import PRELOAD_MODULE

    args = list(
        extra_args
        if extra_args is not None
        else (jobqueue_config(system, "worker-extra-args", []) or [])
    )
    if PRELOAD_MODULE not in args:
        args += ["--preload", PRELOAD_MODULE]
    return {"worker_extra_args": args}


def new_job_name(prefix: str = JOB_NAME_PREFIX) -> str:
    """A job name unique to one cluster, so that its worker jobs can be cancelled by name."""
    return f"{prefix}-{secrets.token_hex(4)}"


def cancel_worker_jobs(system: BatchSystem, job_name: str) -> None:
    """Cancel every job of this user named ``job_name`` (failures are logged, not raised)."""
    try:
        system.cancel_named(job_name, current_user())
    except Exception as exc:  # cleanup must go on: the caller closes the cluster next
        log.warning("cancelling the worker jobs named %s failed: %s", job_name, exc)


def worker_processes(cluster: Any) -> int:
    """Dask workers per job of a dask-jobqueue cluster."""
    return int(getattr(getattr(cluster, "_dummy_job", None), "worker_processes", 1) or 1)


def close_cluster(cluster: Any, system: BatchSystem, job_name: str, timeout: float = 20) -> None:
    """Close a jobqueue cluster and cancel its worker jobs, also those whose submission raced
    with ``close()`` or an interrupted close."""
    try:
        cluster.close(timeout=timeout)
    finally:
        cancel_worker_jobs(system, job_name)


def log_directory(cluster: Any) -> str | None:
    """Where a dask-jobqueue cluster's worker jobs write their output (None: not kept)."""
    return getattr(getattr(cluster, "_dummy_job", None), "log_directory", None)


def current_user() -> str:
    """This process's user name (the owner of the worker jobs)."""
    return pwd.getpwuid(os.getuid()).pw_name


def submit_failure(exc: BaseException) -> str:
    """The batch system's own words from a failed worker-job submission.

    dask-jobqueue raises ``RuntimeError("Command exited with non-zero exit code ...
    stderr:\n<text>")``; the text after ``stderr:`` is the submit command's message."""
    text = str(exc)
    _, found, stderr = text.rpartition("stderr:")
    lines = [line.strip() for line in (stderr if found else text).splitlines() if line.strip()]
    return "; ".join(lines) or type(exc).__name__


def recording_job_class(cluster_cls: Any, failures: list[str]) -> Any:
    """dask-jobqueue's job class of ``cluster_cls`` that adds the message of each failed
    submission to ``failures`` (dask-jobqueue itself only logs it from a background task).

    The failed job is marked failed: a job left "created" makes ``cluster.close()`` fail an
    assertion of distributed's SpecCluster, hiding the submission's message."""
    from distributed.core import Status

    base = cluster_cls.job_cls

    class RecordingJob(base):  # type: ignore[misc, valid-type]
        async def start(self) -> None:
            try:
                await super().start()
            except Exception as exc:
                failures.append(submit_failure(exc))
                self.status = Status.failed
                raise

    RecordingJob.__name__ = RecordingJob.__qualname__ = base.__name__
    return RecordingJob


def describe(status: JobStatus) -> str:
    """``worker job 12 PENDING (Resources)``."""
    reason = f" ({status.reason})" if status.reason else ""
    return f"worker job {status.job_id} {status.state}{reason}"


def own_client(cluster: Any, timeout: float = 60) -> Any:
    """A Client of a dask-jobqueue cluster's scheduler that runs in an event loop of its own.

    ``Client(cluster)`` shares the cluster's event loop, where the scheduler itself runs, and
    polls through the cluster's own connection: every spurious TLS failure in that thread
    (see :mod:`eoshared.scheduler.tls_errors`) then ends the wait at once. A client that
    connects to the scheduler's address from its own loop, with the cluster's security, keeps
    the scheduler's thread to the scheduler.
    """
    from distributed import Client

    return Client(cluster.scheduler_address, security=cluster.security, timeout=timeout)


def submitted_jobs(client: Any, cluster: Any = None) -> set[str]:
    """The ids of the worker jobs a dask-jobqueue cluster (default: the client's) has
    submitted."""
    cluster = cluster if cluster is not None else getattr(client, "cluster", None)
    workers = getattr(cluster, "workers", None) or {}
    return {str(job.job_id) for job in list(workers.values()) if getattr(job, "job_id", None)}


def final_status(system: BatchSystem, job_id: str) -> JobStatus | None:
    """The state of a job that left the queue (None when it cannot be told)."""
    try:
        return system.status(job_id)
    except Exception as exc:  # the wait goes on without it
        log.debug("cannot ask for worker job %s's state: %s", job_id, exc)
        return None


def error_tail(log_directory: str | None, job_name: str, job_id: str, lines: int = 8) -> str:
    """The last lines of a worker job's error output (dask-jobqueue's
    ``<log-directory>/<job name>-<job id>.err``), or ""."""
    if not log_directory:
        return ""
    path = os.path.join(os.path.expanduser(log_directory), f"{job_name}-{job_id}.err")
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            tail = [line.rstrip() for line in handle.readlines()[-lines:]]
    except OSError:
        return ""
    return f" Last lines of {path}:\n" + "\n".join(tail) + "\n" if tail else ""


def worker_failure(
    system: BatchSystem,
    status: JobStatus,
    job_name: str,
    arrived: int,
    workers: int,
    log_directory: str | None,
) -> str:
    """Why the wait ended: a worker job that left the queue in a failed state."""
    code = f", exit code {status.exit_code}" if status.exit_code else ""
    return (
        f"worker job {status.job_id} ended {status.state}{code} before its worker joined. "
        f"{arrived}/{workers} workers arrived; the worker jobs are cancelled."
        f"{error_tail(log_directory, job_name, status.job_id)} "
        f"Fix: {system.status_fix(status)}."
    )


def wait_for_workers(
    client: Any,
    workers: int,
    timeout: float,
    system: BatchSystem,
    job_name: str,
    *,
    failures: list[str] | None = None,
    report: Callable[[str], None] = print,
    poll: float = POLL_SECONDS,
    user: str | None = None,
    log_directory: str | None = None,
    cluster: Any = None,
) -> None:
    """Wait up to ``timeout`` seconds until ``workers`` Dask workers run (the worker jobs
    submitted are those of ``cluster``, default the client's).

    Every ``poll`` seconds the worker jobs (named ``job_name``) are looked up and each change
    of their state or pending reason is reported as one line. Raises WorkersNotReady at once
    when a worker job's submission failed (``failures``, see recording_job_class) or a job
    pends for a reason that does not clear by itself, and on timeout, naming the jobs that pend
    and why. A worker job that leaves the queue in a failed state (failed, cancelled, node
    failure, time limit, out of memory, preempted) also ends the wait at once, with the tail
    of its error output from ``log_directory``. The caller closes the cluster (cancelling the
    worker jobs) afterwards."""
    user = user or current_user()
    deadline = time.monotonic() + timeout
    seen: dict[str, str] = {}
    checked: set[str] = set()
    jobs: list[JobStatus] = []
    arrived = 0
    while True:
        try:
            wait = max(0.1, min(poll, deadline - time.monotonic()))
            client.wait_for_workers(workers, timeout=wait)
            return
        except TimeoutError as exc:
            arrived = int(getattr(exc, "available_workers", arrived) or 0)
        if failures:
            raise WorkersNotReady(
                f"{system.submit_command.split()[0]} rejected a worker job: {failures[0]}. "
                "The worker jobs are cancelled; change the worker request (cores, memory, "
                "walltime, queue)."
            )
        listed: list[JobStatus] | None
        try:
            listed = system.named_jobs(job_name, user)
        except Exception as exc:  # the wait goes on without the report
            log.debug("cannot list the worker jobs named %s: %s", job_name, exc)
            listed = None
        listing_failed = listed is None
        jobs = listed or []
        for status in jobs:
            text = describe(status)
            if seen.get(status.job_id) != text:
                seen[status.job_id] = text
                report(text)
        queued = {system.job_key(status.job_id) for status in jobs}
        if jobs or not listing_failed:
            # One id per job, the listing's where it has one (dask-jobqueue keeps PBS's
            # "12" of "12.server").
            ids = {system.job_key(j): j for j in submitted_jobs(client, cluster)}
            ids.update({system.job_key(j): j for j in seen})
            gone = {key: j for key, j in ids.items() if key not in queued and key not in checked}
            for key, job_id in sorted(gone.items()):
                checked.add(key)
                final = final_status(system, job_id)
                if final is not None and system.failed(final):
                    raise WorkersNotReady(
                        worker_failure(system, final, job_name, arrived, workers, log_directory)
                    )
                if seen.pop(job_id, None) is not None:
                    report(f"worker job {job_id} left the queue")
        stuck = [s for s in jobs if system.stuck(s)]
        if stuck:
            raise WorkersNotReady(
                f"{describe(stuck[0])} cannot start: {system.display_name}'s reason "
                f"{stuck[0].reason!r} does not clear by itself. {arrived}/{workers} workers "
                f"arrived; the worker jobs are cancelled. Fix: "
                f"{system.stuck_fix(stuck[0])}."
            )
        if time.monotonic() >= deadline:
            why = "; " + (", ".join(describe(s) for s in jobs) or "no worker job is queued")
            raise WorkersNotReady(
                f"only {arrived}/{workers} workers arrived within {timeout:.0f}s{why}. "
                "The worker jobs are cancelled; raise the timeout, or ask for smaller workers "
                "if they wait for resources."
            )
