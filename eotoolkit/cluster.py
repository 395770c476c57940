"""Dask clients for scripts and notebooks: on a laptop, on a login node or inside a SLURM job.

:func:`get_client` picks a scheduler in this order:

1. an explicit ``address``;
2. Dask's own convention: the ``scheduler-address`` config value (``DASK_SCHEDULER_ADDRESS``);
3. the session scheduler published in the scheduler file (below), if one is there and answers;
4. a ``dask_jobqueue.SLURMCluster`` built from the ``jobqueue.slurm`` Dask config, adaptive from
   0 to ``max_jobs`` jobs, when on a SLURM cluster (``sbatch`` on PATH, and ``SLURM_CONF`` or
   ``SLURM_JOB_ID`` set or ``jobqueue.slurm`` configured) and ``jobqueue.slurm`` has ``cores``
   and ``memory``;
5. a ``distributed.LocalCluster`` (``local_kwargs`` go to it).

:func:`slurm_cluster` is a context manager for a SLURMCluster of a fixed number of jobs that
cancels every one of its jobs when the block ends, also on exceptions and KeyboardInterrupt:
its jobs carry a unique SLURM job name, and ``scancel --name`` follows ``cluster.close()``.
Should the process die without cleaning up, workers exit on their own once the scheduler has
been unreachable for ``death-timeout`` seconds (jobqueue config, 60 by default), ending their
jobs. ``dask_jobqueue`` is imported here without letting it replace the SIGINT handler, so
Ctrl-C and Jupyter's interrupt still raise KeyboardInterrupt.

Session scheduler
-----------------
``python -m eotoolkit.cluster serve`` runs the long-lived session scheduler of
:mod:`launcher.scheduler.serve`; the scheduler file it publishes, its location and format are
defined once in :mod:`launcher.scheduler.contract` (re-exported here). On the laptop, after
forwarding the scheduler's port and copying its directory, :func:`connect` with
``forwarded_address="tls://127.0.0.1:PORT"`` gives a client: Dask's TLS verifies the certificate
chain, not host names, so the forwarded address is accepted.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import dask
from distributed import Client
from distributed.security import Security

from launcher.scheduler.contract import (
    SchedulerFileError,
    SchedulerInfo,
    read_scheduler_file,
    scheduler_file_path,
)
from launcher.scheduler.serve import answers, serve_scheduler
from launcher.scheduler.tls_errors import install as clear_openssl_errors
from launcher.scheduler.workers import (
    WorkersNotReady,
    batch_system,
    close_cluster,
    jobqueue,
    log_directory,
    new_job_name,
    recording_job_class,
    wait_for_workers,
    worker_processes,
)

__all__ = [
    "SchedulerInfo",
    "WorkersNotReady",
    "connect",
    "get_client",
    "read_scheduler_file",
    "scheduler_file_path",
    "serve_scheduler",
    "slurm_available",
    "slurm_cluster",
    "slurm_configured",
]

DEFAULT_MAX_JOBS = 4


# --------------------------------------------------------------------------------------------
# clients


def connect(
    scheduler_file: str | os.PathLike[str],
    *,
    forwarded_address: str | None = None,
    security: Security | None = None,
    timeout: float = 30,
) -> Client:
    """A client of the session scheduler described by ``scheduler_file``.

    ``forwarded_address`` (e.g. ``"tls://127.0.0.1:40123"`` or ``"127.0.0.1:40123"``) replaces
    the file's address when the scheduler is reached through a forwarded port. The TLS files
    are those named in the file unless ``security`` is given; the key must be private (0600).
    """
    info = read_scheduler_file(scheduler_file)
    address = forwarded_address or info.address
    if "://" not in address:
        address = f"{urlsplit(info.address).scheme or 'tls'}://{address}"
    if security is None:
        security = info.security()
    clear_openssl_errors()
    return Client(address, security=security, timeout=timeout)


def slurm_configured() -> bool:
    """Whether the ``jobqueue.slurm`` Dask config sets ``cores`` and ``memory``."""
    jobqueue()
    return (
        dask.config.get("jobqueue.slurm.cores", None) is not None
        and dask.config.get("jobqueue.slurm.memory", None) is not None
    )


def slurm_available() -> bool:
    """Whether this process runs on a SLURM cluster (``sbatch`` on PATH and SLURM set up).

    SLURM counts as set up when ``SLURM_CONF`` or ``SLURM_JOB_ID`` is set or the
    ``jobqueue.slurm`` Dask config is (see :func:`slurm_configured`).
    """
    if shutil.which("sbatch") is None:
        return False
    if os.environ.get("SLURM_CONF") or os.environ.get("SLURM_JOB_ID"):
        return True
    return slurm_configured()


def get_client(
    address: str | None = None,
    *,
    security: Security | None = None,
    max_jobs: int = DEFAULT_MAX_JOBS,
    timeout: float = 30,
    **local_kwargs: Any,
) -> Client:
    """A Dask client, from the first of: ``address``, Dask config, session file, SLURM, local.

    See the module docstring for the order. ``security`` applies to every choice except the
    session scheduler file, which names its own TLS files (``security`` then overrides them).
    A cluster started here belongs to the client: ``client.shutdown()`` stops it (and it is
    stopped at interpreter exit). ``local_kwargs`` are used only for a LocalCluster.
    """
    if address is not None:
        return Client(address, security=security, timeout=timeout)
    configured = dask.config.get("scheduler-address", None) or os.environ.get(
        "DASK_SCHEDULER_ADDRESS"
    )
    if configured:
        return Client(configured, security=security, timeout=timeout)
    path = scheduler_file_path()
    if path.exists():
        try:
            info = read_scheduler_file(path)
            if answers(info.address):
                return connect(path, security=security, timeout=timeout)
            reason = f"nothing answers at {info.address}"
        except (OSError, SchedulerFileError) as exc:
            reason = str(exc)
        warnings.warn(
            f"ignoring the session scheduler file {path}: {reason}", RuntimeWarning, stacklevel=2
        )
    if slurm_available():
        if slurm_configured():
            cluster = jobqueue().SLURMCluster(security=security)
            cluster.adapt(minimum_jobs=0, maximum_jobs=max_jobs)
            return Client(cluster, timeout=timeout)
        warnings.warn(
            "SLURM is available but the Dask config jobqueue.slurm sets no cores/memory; "
            "using a LocalCluster in this process's allocation",
            RuntimeWarning,
            stacklevel=2,
        )
    if security is not None:
        local_kwargs.setdefault("security", security)
    return Client(timeout=timeout, **local_kwargs)


# --------------------------------------------------------------------------------------------
# SLURM clusters that leave no jobs behind


@contextlib.contextmanager
def slurm_cluster(
    jobs: int = 1,
    *,
    adapt: tuple[int, int] | None = None,
    timeout: float = 120,
    report: Callable[[str], None] | None = None,
    **kwargs: Any,
) -> Iterator[Client]:
    """A client of a SLURMCluster with ``jobs`` worker jobs (or adaptive ``(min, max)`` jobs).

    Waits up to ``timeout`` seconds for the workers of ``jobs`` (or ``min``) jobs, yields the
    client (``client.cluster`` is the SLURMCluster) and, however the block ends, closes the
    cluster and cancels every job it submitted. ``kwargs`` go to ``SLURMCluster``.

    While it waits, each change of a worker job's state or pending reason goes to ``report``
    (standard error by default) as one line. A worker job that SLURM rejects, or that pends
    for a reason that does not clear by itself (``ReqNodeNotAvail``, ``PartitionConfig``,
    ``QOSMax...``), ends the wait at once, as the timeout does, with
    :class:`~launcher.scheduler.workers.WorkersNotReady` naming the jobs and their reasons.
    """
    job_name = kwargs.pop("job_name", None) or new_job_name()
    system = batch_system("slurm")
    failures: list[str] = []
    cls = jobqueue().SLURMCluster
    kwargs.setdefault("job_cls", recording_job_class(cls, failures))
    cluster = cls(job_name=job_name, **kwargs)
    try:
        processes = worker_processes(cluster)
        with Client(cluster, timeout=timeout) as client:
            if adapt is not None:
                cluster.adapt(minimum_jobs=adapt[0], maximum_jobs=adapt[1])
                wanted = adapt[0]
            else:
                cluster.scale(jobs=jobs)
                wanted = jobs
            if wanted > 0:
                wait_for_workers(
                    client,
                    wanted * processes,
                    timeout,
                    system,
                    job_name,
                    failures=failures,
                    report=report or _to_stderr,
                    log_directory=log_directory(cluster),
                )
            yield client
    finally:
        close_cluster(cluster, system, job_name)


def _to_stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# command line


def main(argv: list[str] | None = None) -> int:
    """``python -m eotoolkit.cluster serve [options]``: the session scheduler (see
    :mod:`launcher.scheduler.serve`)."""
    from launcher.scheduler import serve

    args = sys.argv[1:] if argv is None else argv
    if args[:1] != ["serve"]:
        print("usage: python -m eotoolkit.cluster serve [options] (serve --help)", file=sys.stderr)
        return 2
    return serve.main(args[1:], prog="python -m eotoolkit.cluster serve")


if __name__ == "__main__":
    sys.exit(main())
