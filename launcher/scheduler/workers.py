"""Worker jobs: dask-jobqueue's cluster for a batch system, its scheduler options, job names
and the cancellation of every worker job of a cluster by name."""

from __future__ import annotations

import logging
import os
import pwd
import secrets
import signal
import socket
import sys
import threading
from typing import Any

import dask

from launcher.batchsystem import BatchSystem, batch_system_class
from launcher.scheduler.contract import BATCH_SYSTEM_ENV

log = logging.getLogger(__name__)
JOB_NAME_PREFIX = "eohpc-dask"


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


def new_job_name(prefix: str = JOB_NAME_PREFIX) -> str:
    """A job name unique to one cluster, so that its worker jobs can be cancelled by name."""
    return f"{prefix}-{secrets.token_hex(4)}"


def cancel_worker_jobs(system: BatchSystem, job_name: str) -> None:
    """Cancel every job of this user named ``job_name`` (failures are logged, not raised)."""
    user = pwd.getpwuid(os.getuid()).pw_name
    try:
        system.cancel_named(job_name, user)
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
