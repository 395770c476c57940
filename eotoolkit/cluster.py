"""Dask clients for scripts and notebooks: on a laptop, on a login node or inside a batch job.

:func:`get_client` picks a scheduler in this order:

1. an explicit ``address``;
2. Dask's own convention: the ``scheduler-address`` config value (``DASK_SCHEDULER_ADDRESS``);
3. the session scheduler published in the scheduler file (below), if one is there and answers;
4. the batch system's dask-jobqueue cluster (``SLURMCluster``, ``PBSCluster`` or
   ``HTCondorCluster``) built from its ``jobqueue.<system>`` Dask config, adaptive from 0 to
   ``max_jobs`` jobs, when this process is on a cluster of that batch system (see
   :func:`detect_batch_system`) and that config has ``cores`` and ``memory``;
5. a ``distributed.LocalCluster`` (``local_kwargs`` go to it).

:func:`detect_batch_system` names the batch system: ``$EOHPC_BATCH_SYSTEM`` (set in the jobs
the launcher submits), else the first of SLURM, PBS and HTCondor whose submit command
(``sbatch``, ``qsub``, ``condor_submit``) is on PATH and whose ``jobqueue.<system>`` config
sets ``cores`` and ``memory``, else the first whose submit command is on PATH and that is set
up here (its job id or configuration variable is set: ``SLURM_JOB_ID``/``SLURM_CONF``,
``PBS_JOBID``/``PBS_CONF_FILE``, ``HTCONDOR_JOB_ID``/``_CONDOR_JOB_AD``/``CONDOR_CONFIG``).

:func:`jobqueue_cluster` is a context manager for such a cluster of a fixed number of jobs (or
adaptive) that cancels every one of its jobs when the block ends, also on exceptions and
KeyboardInterrupt: its jobs carry a unique job name (HTCondor: batch name), and the batch
system's cancel-by-name command follows ``cluster.close()``. :func:`slurm_cluster` is the same
for SLURM. Should the process die without cleaning up, workers exit on their own once the
scheduler has been unreachable for ``death-timeout`` seconds (jobqueue config, 60 by
default), ending their jobs. ``dask_jobqueue`` is imported here without letting it replace the
SIGINT handler, so Ctrl-C and Jupyter's interrupt still raise KeyboardInterrupt.

Session scheduler
-----------------
``python -m eotoolkit.cluster serve`` runs the long-lived session scheduler of
:mod:`eoshared.scheduler.serve`; the scheduler file it publishes, its location and format are
defined once in :mod:`eoshared.scheduler.contract` (re-exported here). On the laptop, after
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

from eoshared.scheduler.contract import (
    BATCH_SYSTEM_ENV,
    SchedulerFileError,
    SchedulerInfo,
    read_scheduler_file,
    scheduler_file_path,
)
from eoshared.scheduler.serve import answers, serve_scheduler
from eoshared.scheduler.tls_errors import install as clear_openssl_errors
from eoshared.scheduler.workers import (
    BATCH_SYSTEM_NAMES,
    WorkersNotReady,
    batch_system,
    close_cluster,
    cluster_class,
    jobqueue,
    log_directory,
    name_options,
    new_job_name,
    recording_job_class,
    wait_for_workers,
    worker_options,
    worker_processes,
)

__all__ = [
    "SchedulerInfo",
    "WorkersNotReady",
    "batch_system_available",
    "connect",
    "detect_batch_system",
    "get_client",
    "jobqueue_cluster",
    "jobqueue_configured",
    "read_scheduler_file",
    "scheduler_file_path",
    "serve_scheduler",
    "slurm_available",
    "slurm_cluster",
    "slurm_configured",
]

DEFAULT_MAX_JOBS = 4
#: The batch systems get_client() looks for, in this order.
DETECTION_ORDER = BATCH_SYSTEM_NAMES


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


def jobqueue_configured(system: str = "slurm") -> bool:
    """Whether the ``jobqueue.<system>`` Dask config sets ``cores`` and ``memory``."""
    section = batch_system(system).jobqueue_section
    jobqueue()
    return (
        dask.config.get(f"jobqueue.{section}.cores", None) is not None
        and dask.config.get(f"jobqueue.{section}.memory", None) is not None
    )


def _submit_command_here(system: str) -> bool:
    return shutil.which(batch_system(system).submit_command.split()[0]) is not None


def _set_up_here(system: str) -> bool:
    found = batch_system(system)
    names = (found.job_id_variable, *found.setup_variables)
    return any(os.environ.get(name) for name in names)


def batch_system_available(system: str = "slurm") -> bool:
    """Whether this process runs on a cluster of ``system`` (``slurm``, ``pbs``, ``htcondor``):
    its submit command is on PATH, and it is set up here (its job id or configuration
    variable is set) or its ``jobqueue`` Dask config is (see :func:`jobqueue_configured`)."""
    if not _submit_command_here(system):
        return False
    return _set_up_here(system) or jobqueue_configured(system)


def detect_batch_system() -> str | None:
    """The batch system whose dask-jobqueue cluster this process would use (None: none).

    ``$EOHPC_BATCH_SYSTEM`` if set; else the first of SLURM, PBS, HTCondor with its submit
    command on PATH and its ``jobqueue`` config set; else the first with its submit command on
    PATH that is set up here (see :func:`batch_system_available`).
    """
    named = os.environ.get(BATCH_SYSTEM_ENV)
    if named:
        return batch_system(named).name
    here = [name for name in DETECTION_ORDER if _submit_command_here(name)]
    for name in here:
        if jobqueue_configured(name):
            return name
    for name in here:
        if _set_up_here(name):
            return name
    return None


def slurm_configured() -> bool:
    """Whether the ``jobqueue.slurm`` Dask config sets ``cores`` and ``memory``."""
    return jobqueue_configured("slurm")


def slurm_available() -> bool:
    """Whether this process runs on a SLURM cluster (``sbatch`` on PATH and SLURM set up).

    SLURM counts as set up when ``SLURM_CONF`` or ``SLURM_JOB_ID`` is set or the
    ``jobqueue.slurm`` Dask config is (see :func:`slurm_configured`).
    """
    return batch_system_available("slurm")


def get_client(
    address: str | None = None,
    *,
    security: Security | None = None,
    max_jobs: int = DEFAULT_MAX_JOBS,
    timeout: float = 30,
    **local_kwargs: Any,
) -> Client:
    """A Dask client, from the first of: ``address``, Dask config, session file, the batch
    system's jobqueue cluster, local.

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
    system = detect_batch_system()
    if system is not None:
        if jobqueue_configured(system):
            clear_openssl_errors()
            cls = cluster_class(batch_system(system))
            cluster = cls(security=security, **worker_options(batch_system(system)))
            cluster.adapt(minimum_jobs=0, maximum_jobs=max_jobs)
            return Client(cluster, timeout=timeout)
        found = batch_system(system)
        warnings.warn(
            f"{found.display_name} is available but the Dask config "
            f"jobqueue.{found.jobqueue_section} sets no cores/memory; using a LocalCluster in "
            "this process's allocation",
            RuntimeWarning,
            stacklevel=2,
        )
    if security is not None:
        local_kwargs.setdefault("security", security)
    return Client(timeout=timeout, **local_kwargs)


# --------------------------------------------------------------------------------------------
# dask-jobqueue clusters that leave no jobs behind


@contextlib.contextmanager
def jobqueue_cluster(
    jobs: int = 1,
    *,
    batch_system_name: str | None = None,
    adapt: tuple[int, int] | None = None,
    timeout: float = 120,
    report: Callable[[str], None] | None = None,
    **kwargs: Any,
) -> Iterator[Client]:
    """A client of the batch system's dask-jobqueue cluster with ``jobs`` worker jobs (or
    adaptive ``(min, max)`` jobs); the batch system is ``batch_system_name`` (``slurm``,
    ``pbs``, ``htcondor``), else :func:`detect_batch_system`'s.

    Waits up to ``timeout`` seconds for the workers of ``jobs`` (or ``min``) jobs, yields the
    client (``client.cluster`` is the SLURMCluster, PBSCluster or HTCondorCluster) and,
    however the block ends, closes the cluster and cancels every job it submitted. ``kwargs``
    go to the cluster class.

    While it waits, each change of a worker job's state or pending reason goes to ``report``
    (standard error by default) as one line. A worker job that the batch system rejects, or
    that pends for a reason that does not clear by itself (SLURM's ``ReqNodeNotAvail``, a
    held job, ...), ends the wait at once, as the timeout does, with
    :class:`~eoshared.scheduler.workers.WorkersNotReady` naming the jobs and their reasons.
    """
    name = batch_system_name or detect_batch_system()
    if name is None:
        raise RuntimeError(
            "no batch system found here (none of sbatch, qsub, condor_submit on PATH with its "
            "jobqueue Dask config or environment); pass batch_system_name="
        )
    system = batch_system(name)
    job_name = kwargs.pop("job_name", None) or new_job_name()
    naming = name_options(system, job_name)
    if "job_extra_directives" in naming and "job_extra_directives" in kwargs:
        extra = kwargs.pop("job_extra_directives") or {}
        naming["job_extra_directives"] = {**extra, system.jobqueue_name_directive: job_name}
    workers = worker_options(system, kwargs.pop("worker_extra_args", None))
    failures: list[str] = []
    cls = cluster_class(system)
    kwargs.setdefault("job_cls", recording_job_class(cls, failures))
    clear_openssl_errors()
    cluster = cls(**naming, **workers, **kwargs)
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


@contextlib.contextmanager
def slurm_cluster(
    jobs: int = 1,
    *,
    adapt: tuple[int, int] | None = None,
    timeout: float = 120,
    report: Callable[[str], None] | None = None,
    **kwargs: Any,
) -> Iterator[Client]:
    """:func:`jobqueue_cluster` on SLURM: a client of a SLURMCluster with ``jobs`` worker jobs
    (or adaptive ``(min, max)`` jobs) whose jobs are all cancelled when the block ends."""
    with jobqueue_cluster(
        jobs, batch_system_name="slurm", adapt=adapt, timeout=timeout, report=report, **kwargs
    ) as client:
        yield client


def _to_stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# command line


def main(argv: list[str] | None = None) -> int:
    """``python -m eotoolkit.cluster serve [options]``: the session scheduler (see
    :mod:`eoshared.scheduler.serve`)."""
    from eoshared.scheduler import serve

    args = sys.argv[1:] if argv is None else argv
    if args[:1] != ["serve"]:
        print("usage: python -m eotoolkit.cluster serve [options] (serve --help)", file=sys.stderr)
        return 2
    return serve.main(args[1:], prog="python -m eotoolkit.cluster serve")


if __name__ == "__main__":
    sys.exit(main())
