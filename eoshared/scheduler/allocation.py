"""One allocation: a batch job's Dask workers started on the job's own nodes.

With ``--nodes N`` a batch-mode job is one allocation of N nodes (the model of dask-jobqueue's
runners and of dask-mpi: scheduler, script and workers in one job). The driver
(:mod:`eoshared.scheduler.driver`) keeps the scheduler in its own process on the job's first
node and starts the workers with the batch system's own tool for running a command on each
node of a job (:meth:`BatchSystem.on_each_node`: SLURM's ``srun``, PBS's ``pbsdsh``). Each
node runs what one worker job of the site's dask-jobqueue config would run: ``processes``
workers of ``cores / processes`` threads and ``memory / processes`` memory each, sizes read
from that config by dask-jobqueue's own job class.

Where the site's MPI is the way in (``batch_mpiexec``), that launcher starts the workers as
dask-mpi ranks (``--no-scheduler``), one a node with the node's threads and memory.

Every argument of the workers is on their command line (paths and sizes, no secret): a
launcher such as ``pbsdsh`` starts them without the job script's environment.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eoshared.batchsystem import BatchSystem
from eoshared.scheduler.tls import TLSFiles
from eoshared.scheduler.tls_errors import PRELOAD_MODULE
from eoshared.scheduler.workers import WorkersNotReady, cluster_class, jobqueue_config

#: How often the wait for the workers looks at the scheduler and the launcher.
POLL_SECONDS = 1.0
#: Seconds a worker keeps trying to reach a scheduler that went away before it ends.
DEATH_TIMEOUT = 60
#: Seconds the workers, then their launcher, are given to end when the run closes.
CLOSE_SECONDS = 20


@dataclass(frozen=True)
class NodeWorkers:
    """What each node of the allocation runs: ``processes`` workers of ``threads`` threads and
    ``memory`` each (a Dask size), their scratch space in ``local_directory`` (None: the
    default), listening on ``interface`` (None: the one of the node's name)."""

    processes: int
    threads: int
    memory: str
    local_directory: str | None = None
    interface: str | None = None


def node_workers(system: BatchSystem, one_process: bool = False) -> NodeWorkers:
    """The workers of one node, sized as one worker job of the batch system's jobqueue config
    (dask-jobqueue's job class reads and splits it; ValueError names what is missing); with
    ``one_process``, one worker of all the job's threads and memory."""
    job = cluster_class(system).job_cls(scheduler="tls://0.0.0.0:0", name="eohpc-sizes")
    if one_process:
        processes, threads, memory = 1, job.worker_cores, int(job.worker_memory)
    else:
        processes, threads = job.worker_processes, job.worker_process_threads
        memory = job.worker_process_memory
    return NodeWorkers(
        processes=int(processes),
        threads=int(threads),
        memory=str(memory),
        local_directory=jobqueue_config(system, "local-directory"),
        interface=jobqueue_config(system, "interface"),
    )


def _placement(sizes: NodeWorkers) -> list[str]:
    """The workers' interface and scratch directory options (where configured)."""
    options = ["--interface", sizes.interface] if sizes.interface else []
    if sizes.local_directory:
        options += ["--local-directory", os.path.expanduser(sizes.local_directory)]
    return options


def dask_mpi_command(address: str, tls: TLSFiles, sizes: NodeWorkers, log_dir: Path) -> list[str]:
    """The command each MPI rank runs: one dask-mpi worker (``--no-scheduler``: the driver's
    scheduler at ``address``), its TLS files given to :func:`main`, which puts them in the
    worker's Dask config, its output in a file of ``log_dir``."""
    options = {"preload": [PRELOAD_MODULE], "death_timeout": DEATH_TIMEOUT}
    return [
        sys.executable,
        "-m",
        __name__,
        "--log-dir",
        str(log_dir),
        "--tls-ca-file",
        str(tls.ca_file),
        "--tls-cert",
        str(tls.cert),
        "--tls-key",
        str(tls.key),
        "--dask-mpi",
        "--",
        address,
        "--no-scheduler",
        "--nthreads",
        str(sizes.threads),
        "--memory-limit",
        sizes.memory,
        "--no-dashboard",
        "--name",
        "eohpc-rank",
        "--worker-options",
        json.dumps(options),
        *_placement(sizes),
    ]


def worker_command(address: str, tls: TLSFiles, sizes: NodeWorkers, log_dir: Path) -> list[str]:
    """The command that starts one node's workers, connected to ``address``, their output in a
    file of ``log_dir`` (see :func:`main`)."""
    return [
        sys.executable,
        "-m",
        __name__,
        "--log-dir",
        str(log_dir),
        "--",
        address,
        "--tls-ca-file",
        str(tls.ca_file),
        "--tls-cert",
        str(tls.cert),
        "--tls-key",
        str(tls.key),
        "--nworkers",
        str(sizes.processes),
        "--nthreads",
        str(sizes.threads),
        "--memory-limit",
        sizes.memory,
        "--death-timeout",
        str(DEATH_TIMEOUT),
        "--no-dashboard",
        "--preload",
        PRELOAD_MODULE,
        *_placement(sizes),
    ]


class AllocationWorkers:
    """The workers of a multi-node job: an in-process scheduler on this node, one launcher
    process (``srun``/``pbsdsh``, or the site's MPI launcher running dask-mpi, one worker per
    rank) that starts each node's workers, and their shutdown."""

    def __init__(
        self,
        system: BatchSystem,
        tls: TLSFiles,
        nodes: int,
        log_dir: Path,
        mpiexec: str | None = None,
    ) -> None:
        self.system = system
        self.tls = tls
        self.nodes = nodes
        self.log_dir = log_dir
        self.mpiexec = mpiexec
        self.sizes = node_workers(system, one_process=bool(mpiexec))
        self.cluster: Any = None
        self.launcher: subprocess.Popen[bytes] | None = None
        self.launcher_name = "the workers' launcher"

    @property
    def count(self) -> int:
        """The workers the allocation runs."""
        return self.nodes * self.sizes.processes

    @property
    def scheduler_address(self) -> str:
        """Where the scheduler listens."""
        return str(self.cluster.scheduler_address)

    def start(self, report: Callable[[str], None]) -> None:
        """Start the scheduler here and the workers on every node of the job."""
        from distributed import LocalCluster

        options = scheduler_host(self.system)
        self.cluster = LocalCluster(
            n_workers=0,
            protocol="tls://",
            security=self.tls.security(),
            dashboard_address="127.0.0.1:0",
            **options,
        )
        self.log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        address = self.scheduler_address
        if self.mpiexec:
            ranks = dask_mpi_command(address, self.tls, self.sizes, self.log_dir)
            # through the shell: the batch system's host options name the job's variables
            # ("$PBS_NODEFILE")
            launch = self.system.mpi_launcher(self.mpiexec)
            command = ["/bin/sh", "-c", f'exec {launch} "$@"', "sh", *ranks]
            tool = shlex.split(self.mpiexec)[0]
        else:
            worker = worker_command(address, self.tls, self.sizes, self.log_dir)
            command = self.system.on_each_node(worker, os.environ)
            tool = command[0]
        report(
            f"scheduler at {self.scheduler_address}; starting {self.sizes.processes} worker "
            f"process(es) of {self.sizes.threads} thread(s) on each of {self.nodes} nodes "
            f"with {tool} (their output: {self.log_dir})"
        )
        self.launcher_name = tool
        self.launcher = subprocess.Popen(command, stdin=subprocess.DEVNULL)

    def wait(self, timeout: float, report: Callable[[str], None]) -> None:
        """Wait until every node's workers joined; raise WorkersNotReady when the launcher
        ended first or ``timeout`` seconds passed."""
        from distributed import Client

        deadline = time.monotonic() + timeout
        with Client(self.scheduler_address, security=self.tls.security()) as client:
            while True:
                workers = client.scheduler_info(n_workers=-1)["workers"]
                if len(workers) >= self.count:
                    hosts = sorted({w["host"] for w in workers.values()})
                    report(f"{len(workers)} workers on {len(hosts)} host(s): {', '.join(hosts)}")
                    return
                code = self.launcher.poll() if self.launcher is not None else None
                if code is not None:
                    raise WorkersNotReady(
                        f"{self.launcher_name} ended with status {code} when {len(workers)}/"
                        f"{self.count} workers had joined.{log_tails(self.log_dir)} Fix: check "
                        "that the job's nodes run the environment's Python and reach this node."
                    )
                if time.monotonic() >= deadline:
                    raise WorkersNotReady(
                        f"only {len(workers)}/{self.count} workers joined within "
                        f"{timeout:.0f}s.{log_tails(self.log_dir)} Fix: raise --timeout, or "
                        "read the workers' output."
                    )
                time.sleep(POLL_SECONDS)

    def close(self) -> None:
        """Close the scheduler, which closes every worker (and its nanny), then wait for the
        launcher to end with them; stop it when it does not."""
        if self.cluster is not None:
            try:
                self.cluster.close(timeout=CLOSE_SECONDS)
            except Exception as exc:  # the launcher is stopped below whatever happened here
                print(f"eo-hpc: closing the scheduler: {exc}", flush=True)
        launcher = self.launcher
        if launcher is None or launcher.poll() is not None:
            return
        try:
            launcher.wait(timeout=CLOSE_SECONDS)
        except subprocess.TimeoutExpired:
            launcher.terminate()
            try:
                launcher.wait(timeout=CLOSE_SECONDS)
            except subprocess.TimeoutExpired:
                launcher.kill()
                launcher.wait()


def scheduler_host(system: BatchSystem) -> dict[str, str]:
    """Where the scheduler listens: the configured interface or host of the jobqueue section's
    scheduler options, else this node's name (which the other nodes resolve)."""
    configured = dict(jobqueue_config(system, "scheduler-options", {}) or {})
    interface = configured.get("interface") or jobqueue_config(system, "interface")
    if interface:
        return {"interface": str(interface)}
    return {"host": str(configured.get("host") or socket.gethostname())}


def log_tails(log_dir: Path, lines: int = 6) -> str:
    """The last lines of each worker log of ``log_dir`` ("" when there is none)."""
    parts = []
    for path in sorted(log_dir.glob("*.log")):
        try:
            tail = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
        except OSError:
            continue
        if tail:
            parts.append(f" Last lines of {path}:\n" + "\n".join(tail) + "\n")
    return "".join(parts)


def main(argv: list[str] | None = None) -> None:
    """``python -m eoshared.scheduler.allocation --log-dir DIR -- ARGS``: run ``dask worker
    ARGS`` on this node with its output in ``DIR/<host>-<pid>.log`` (0600), as a worker job's
    output is in its own file; the job's output keeps the script's. With ``--dask-mpi`` (and
    the ``--tls-*`` files, which dask-mpi takes from the Dask config only) it runs dask-mpi's
    command instead."""
    parser = argparse.ArgumentParser(prog=f"python -m {__name__}")
    parser.add_argument("--log-dir", type=Path, required=True)
    parser.add_argument("--dask-mpi", action="store_true")
    for name in ("ca-file", "cert", "key"):
        parser.add_argument(f"--tls-{name}")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    options = parser.parse_args(argv)
    args = options.args[1:] if options.args[:1] == ["--"] else options.args
    module = "distributed.cli.dask_worker"
    if options.dask_mpi:
        module = "dask_mpi.cli"
        os.environ.update(
            {
                "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True",
                "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(options.tls_ca_file),
                "DASK_DISTRIBUTED__COMM__TLS__WORKER__CERT": str(options.tls_cert),
                "DASK_DISTRIBUTED__COMM__TLS__WORKER__KEY": str(options.tls_key),
            }
        )
    path = options.log_dir / f"{socket.gethostname()}-{os.getpid()}.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    for target in (1, 2):
        os.dup2(fd, target)
    os.close(fd)
    os.execv(sys.executable, [sys.executable, "-m", module, *args])


if __name__ == "__main__":
    main()
