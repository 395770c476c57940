"""The batch job's driver: a script run with a Dask cluster of N worker jobs, then cleaned up.

``python -m eoshared.scheduler.driver --run-dir DIR --workers N -- SCRIPT ARGS...`` runs inside
the batch-mode job. It creates the run's TLS files in ``DIR/tls`` (the session scheme of
:mod:`eoshared.scheduler.tls`), starts a scheduler here with the batch system's dask-jobqueue
cluster configured by the site's Dask config (DASK_CONFIG), keeps N workers (adaptive with
minimum = maximum, so a lost or retired worker job is replaced), waits for them, and runs
``python SCRIPT ARGS...`` in the run directory with DASK_SCHEDULER_ADDRESS and the TLS settings
exported, so that ``distributed.Client()`` without arguments connects to it.

With ``--nodes N`` the job is one allocation of N nodes: the workers are started on its nodes
(:mod:`eoshared.scheduler.allocation`; with ``--mpiexec``, as dask-mpi ranks of that MPI
launcher) instead of as jobs of their own, everything else alike.

However the script ends, and on SIGTERM (cancel, time limit), SIGINT or SIGHUP, the worker jobs
are cancelled by name and the cluster is closed. While it waits for the workers, each change of
a worker job's state or pending reason is printed; a worker job that cannot be submitted or
pends for a reason that does not clear by itself ends the wait at once. The script's exit
status is written to ``DIR/exit_status`` and is this process's exit status; when the script
never ran, the reason is written to ``DIR/failure`` (one message) for the launcher to report.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from eoshared.batchsystem import BatchSystem
from eoshared.scheduler.allocation import AllocationWorkers
from eoshared.scheduler.contract import (
    EXIT_STATUS_NAME,
    FAILURE_NAME,
    RUN_DIR_ENV,
    TLS_DIR,
    WORKER_LOGS_DIR,
)
from eoshared.scheduler.files import write_private
from eoshared.scheduler.tls import TLSFiles, create_session_tls
from eoshared.scheduler.tls_errors import install as clear_openssl_errors
from eoshared.scheduler.workers import (
    batch_system,
    close_cluster,
    cluster_class,
    log_directory,
    name_options,
    own_client,
    recording_job_class,
    scheduler_options,
    wait_for_workers,
    worker_options,
    worker_processes,
)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Stopped(Exception):
    """The job received a stop signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    raise Stopped(signum)


def script_env(address: str, tls: TLSFiles, run_dir: Path) -> dict[str, str]:
    """The script's environment: where the scheduler is and the TLS files to reach it."""
    return {
        **os.environ,
        "DASK_SCHEDULER_ADDRESS": address,
        "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True",
        "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(tls.ca_file),
        "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": str(tls.cert),
        "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": str(tls.key),
        RUN_DIR_ENV: str(run_dir),
        "PYTHONUNBUFFERED": "1",
    }


def _say(text: str) -> None:
    print(f"eo-hpc: {text}", flush=True)


def _stop_child(child: subprocess.Popen[Any] | None) -> None:
    if child is None or child.poll() is not None:
        return
    child.terminate()
    try:
        child.wait(timeout=10)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


class JobWorkers:
    """Workers that are jobs of their own: the batch system's dask-jobqueue cluster, configured
    by the site's Dask config, adapting with minimum = maximum so a lost worker job is
    replaced."""

    def __init__(self, system: BatchSystem, tls: TLSFiles, workers: int, job_name: str) -> None:
        self.system = system
        self.tls = tls
        self.count = workers
        self.job_name = job_name
        self.failures: list[str] = []
        self.cluster: Any = None

    @property
    def scheduler_address(self) -> str:
        """Where the scheduler listens."""
        return str(self.cluster.scheduler_address)

    def start(self, report: Callable[[str], None]) -> None:
        """Start the scheduler here and submit the worker jobs."""
        system = self.system
        cls = cluster_class(system)
        self.cluster = cls(
            **name_options(system, self.job_name),
            **worker_options(system),
            job_cls=recording_job_class(cls, self.failures),
            security=self.tls.security(),
            protocol="tls://",
            scheduler_options=scheduler_options(system),
        )
        jobs = math.ceil(self.count / worker_processes(self.cluster))
        report(
            f"scheduler at {self.scheduler_address}; waiting for {self.count} workers "
            f"in {jobs} {system.display_name} jobs named {self.job_name}"
        )
        self.cluster.adapt(minimum_jobs=jobs, maximum_jobs=jobs)

    def wait(self, timeout: float, report: Callable[[str], None]) -> None:
        """Wait for the workers, telling each change of a worker job's state."""
        with own_client(self.cluster) as client:
            wait_for_workers(
                client,
                self.count,
                timeout,
                self.system,
                self.job_name,
                failures=self.failures,
                report=report,
                log_directory=log_directory(self.cluster),
                cluster=self.cluster,
            )

    def close(self) -> None:
        """Close the cluster and cancel its worker jobs by name."""
        if self.cluster is not None:
            close_cluster(self.cluster, self.system, self.job_name)


def run(
    run_dir: Path,
    workers: int,
    timeout: float,
    command: list[str],
    nodes: int = 0,
    mpiexec: str | None = None,
) -> int:
    """Start the scheduler and ``workers`` worker jobs (with ``nodes``: the workers of that
    many nodes of this job, see :mod:`eoshared.scheduler.allocation`), wait for them, run
    ``command`` with Python; return its status."""
    system = batch_system()
    job_id = os.environ.get(system.job_id_variable, str(os.getpid()))
    code = 1
    source: JobWorkers | AllocationWorkers | None = None
    child = None
    try:
        clear_openssl_errors()  # see eoshared.scheduler.tls_errors
        tls = create_session_tls(run_dir / TLS_DIR)
        if nodes:
            source = AllocationWorkers(system, tls, nodes, run_dir / WORKER_LOGS_DIR, mpiexec)
        else:
            source = JobWorkers(system, tls, workers, f"eohpc-batch-{job_id}-workers")
        source.start(_say)
        source.wait(timeout, _say)
        print(f"eo-hpc: {source.count} workers ready; running {' '.join(command)}", flush=True)
        env = script_env(source.scheduler_address, tls, run_dir)
        child = subprocess.Popen([sys.executable, *command], cwd=run_dir, env=env)
        code = child.wait()
        write_private(run_dir / EXIT_STATUS_NAME, f"{code}\n")
        print(f"eo-hpc: script exited with status {code}", flush=True)
    except Stopped as stop:
        print(f"eo-hpc: {stop}: stopping the script and the workers", flush=True)
        code = 128 + stop.signum
    except Exception as exc:  # reported in the job output; the finally block cleans up
        print(f"eo-hpc: {type(exc).__name__}: {exc}", flush=True)
        if child is None:  # the script never ran: the launcher reports why
            write_private(run_dir / FAILURE_NAME, f"{exc}\n")
    finally:
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        _stop_child(child)
        if source is not None:
            source.close()
        print("eo-hpc: workers cancelled, cluster closed", flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    """Command line of the driver (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m eoshared.scheduler.driver")
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--nodes", type=int, default=0, help="the workers of this job's nodes")
    parser.add_argument("--mpiexec", help="with --nodes: start them as dask-mpi ranks with this")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    for signum in STOP_SIGNALS:
        signal.signal(signum, _on_signal)
    return run(args.run_dir, args.workers, args.timeout, command, args.nodes, args.mpiexec)


if __name__ == "__main__":
    sys.exit(main())
