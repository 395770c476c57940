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
``python -m eotoolkit.cluster serve`` (:func:`serve_scheduler`) runs a long-lived, adaptive
SLURMCluster whose scheduler, workers and clients authenticate each other with per-session TLS
certificates (see :mod:`eotoolkit._security`), publishes it in the scheduler file, and runs until
SIGTERM/SIGINT/SIGHUP, then cancels its worker jobs and removes the file and certificates.

Scheduler file location (the launcher writes nothing there; ``serve`` does)::

    $EOHPC_SCHEDULER_FILE                                   if set, else
    <state>/sessions/<session>/scheduler.json
        <state>   = $EOHPC_STATE_DIR or platformdirs.user_state_dir("eo-hpc")
                    (~/.local/state/eo-hpc on Linux)
        <session> = $EOHPC_SESSION or "default"

The file's directory (mode 0700) also holds ``ca.pem``, ``cert.pem`` and ``key.pem`` (mode 0600).
The file itself is JSON, mode 0600, replaced atomically::

    {
      "format": "eo-hpc-scheduler/1",
      "address": "tls://node042:40123",        # as workers and the login node reach it
      "dashboard": "http://127.0.0.1:39543/status",
      "tls": {"ca_file": "ca.pem", "cert": "cert.pem", "key": "key.pem"},
      "host": "node042", "pid": 12345, "slurm_job_id": "678",   # job id or null
      "worker_job_name": "eohpc-dask-1a2b3c4d",                 # sbatch -J of its workers
      "started": "2025-01-01T12:00:00+00:00"
    }

TLS paths may be absolute; relative ones are relative to the scheduler file's directory, so a
copy of the whole directory (e.g. over SFTP into a local 0700 directory) works unchanged. The
``address`` key also lets ``distributed.Client(scheduler_file=..., security=...)`` read it.

On the laptop, after forwarding the scheduler's port (``ssh -L PORT:node042:40123 login``) and
copying the directory, :func:`connect` with ``forwarded_address="tls://127.0.0.1:PORT"`` gives a
client. Dask's TLS verifies the certificate chain, not host names, so the forwarded address is
accepted. The dashboard listens on the scheduler node's loopback by default (it has no
authentication); reach it from a JupyterLab on that node (jupyter-server-proxy) or pass
``--dashboard-address``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dask
import platformdirs
from distributed import Client
from distributed.security import Security

from eotoolkit._security import (
    TLSFiles,
    check_private,
    create_session_tls,
    default_hosts,
    make_private_dir,
    write_private,
)

__all__ = [
    "SchedulerInfo",
    "connect",
    "get_client",
    "read_scheduler_file",
    "scheduler_file_path",
    "serve_scheduler",
    "slurm_available",
    "slurm_cluster",
    "slurm_configured",
]

log = logging.getLogger("eotoolkit.cluster")

APP_NAME = "eo-hpc"
FORMAT = "eo-hpc-scheduler/1"
SCHEDULER_FILE_ENV = "EOHPC_SCHEDULER_FILE"
STATE_DIR_ENV = "EOHPC_STATE_DIR"
SESSION_ENV = "EOHPC_SESSION"
DEFAULT_SESSION = "default"
DEFAULT_MAX_JOBS = 4
JOB_NAME_PREFIX = "eohpc-dask"


# --------------------------------------------------------------------------------------------
# the scheduler file


@dataclass(frozen=True)
class SchedulerInfo:
    """What a scheduler file says about a running session scheduler."""

    address: str
    dashboard: str | None = None
    tls: TLSFiles | None = None
    host: str | None = None
    pid: int | None = None
    slurm_job_id: str | None = None
    worker_job_name: str | None = None
    started: str | None = None

    def security(self) -> Security | None:
        """The Security of the session's TLS files (their key must be private), or None."""
        if self.tls is None:
            return None
        check_private(self.tls.key)
        return self.tls.security()


def scheduler_file_path() -> Path:
    """Where this user's session scheduler file is (see the module docstring)."""
    explicit = os.environ.get(SCHEDULER_FILE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    state = os.environ.get(STATE_DIR_ENV) or platformdirs.user_state_dir(APP_NAME)
    session = os.environ.get(SESSION_ENV) or DEFAULT_SESSION
    return Path(state).expanduser() / "sessions" / session / "scheduler.json"


def read_scheduler_file(path: str | os.PathLike[str]) -> SchedulerInfo:
    """Read a scheduler file; relative TLS paths are resolved against its directory."""
    path = Path(path)
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("address"), str):
        raise ValueError(f"{path} is not a scheduler file (no 'address')")
    tls = None
    if data.get("tls"):
        files = {k: path.parent / Path(data["tls"][k]) for k in ("ca_file", "cert", "key")}
        tls = TLSFiles(**files)
    pid = data.get("pid")
    return SchedulerInfo(
        address=data["address"],
        dashboard=data.get("dashboard"),
        tls=tls,
        host=data.get("host"),
        pid=int(pid) if pid is not None else None,
        slurm_job_id=data.get("slurm_job_id"),
        worker_job_name=data.get("worker_job_name"),
        started=data.get("started"),
    )


def write_scheduler_file(path: Path, info: SchedulerInfo) -> None:
    """Write ``info`` to ``path`` atomically with mode 0600 (TLS paths relative if possible)."""

    def rel(p: Path) -> str:
        return p.name if p.parent == path.parent else str(p)

    data: dict[str, Any] = {
        "format": FORMAT,
        "address": info.address,
        "dashboard": info.dashboard,
        "tls": None,
        "host": info.host,
        "pid": info.pid,
        "slurm_job_id": info.slurm_job_id,
        "worker_job_name": info.worker_job_name,
        "started": info.started,
    }
    if info.tls is not None:
        data["tls"] = {
            "ca_file": rel(info.tls.ca_file),
            "cert": rel(info.tls.cert),
            "key": rel(info.tls.key),
        }
    write_private(path, (json.dumps(data, indent=2) + "\n").encode())


def _answers(address: str, timeout: float = 2.0) -> bool:
    """Whether something accepts TCP connections at a Dask address (no handshake)."""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.hostname is None or parts.port is None:
        return False
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=timeout):
            return True
    except OSError:
        return False


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
    return Client(address, security=security, timeout=timeout)


def _jobqueue() -> Any:
    """Import ``dask_jobqueue`` (adding its defaults to the Dask config), keeping SIGINT as is.

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


def slurm_configured() -> bool:
    """Whether the ``jobqueue.slurm`` Dask config sets ``cores`` and ``memory``."""
    _jobqueue()
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
            if _answers(info.address):
                return connect(path, security=security, timeout=timeout)
            reason = f"nothing answers at {info.address}"
        except (OSError, ValueError) as exc:
            reason = str(exc)
        warnings.warn(
            f"ignoring the session scheduler file {path}: {reason}", RuntimeWarning, stacklevel=2
        )
    if slurm_available():
        if slurm_configured():
            cluster = _jobqueue().SLURMCluster(security=security)
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


def _user() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


def cancel_jobs(job_name: str, timeout: float = 30) -> None:
    """Cancel every SLURM job of this user named ``job_name`` (errors are logged, not raised)."""
    scancel = shutil.which("scancel")
    if scancel is None:
        return
    cmd = [scancel, f"--name={job_name}", f"--user={_user()}"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("%s failed: %s", " ".join(cmd), exc)
        return
    if proc.returncode != 0:
        log.warning("%s failed: %s", " ".join(cmd), proc.stderr.strip())


def new_job_name() -> str:
    """A SLURM job name unique to one cluster, so its jobs can be cancelled by name."""
    return f"{JOB_NAME_PREFIX}-{secrets.token_hex(4)}"


def _close_cluster(cluster: Any, job_name: str, timeout: float = 30) -> None:
    try:
        cluster.close(timeout=timeout)
    finally:
        # Also catches jobs whose submission raced with close() or an interrupted close().
        cancel_jobs(job_name)


@contextlib.contextmanager
def slurm_cluster(
    jobs: int = 1,
    *,
    adapt: tuple[int, int] | None = None,
    timeout: float = 120,
    **kwargs: Any,
) -> Iterator[Client]:
    """A client of a SLURMCluster with ``jobs`` worker jobs (or adaptive ``(min, max)`` jobs).

    Waits up to ``timeout`` seconds for the workers of ``jobs`` (or ``min``) jobs, yields the
    client (``client.cluster`` is the SLURMCluster) and, however the block ends, closes the
    cluster and cancels every job it submitted. ``kwargs`` go to ``SLURMCluster``.
    """
    job_name = kwargs.pop("job_name", None) or new_job_name()
    cluster = _jobqueue().SLURMCluster(job_name=job_name, **kwargs)
    try:
        processes = int(getattr(getattr(cluster, "_dummy_job", None), "worker_processes", 1))
        with Client(cluster, timeout=timeout) as client:
            if adapt is not None:
                cluster.adapt(minimum_jobs=adapt[0], maximum_jobs=adapt[1])
                wanted = adapt[0]
            else:
                cluster.scale(jobs=jobs)
                wanted = jobs
            if wanted > 0:
                client.wait_for_workers(wanted * processes, timeout=timeout)
            yield client
    finally:
        _close_cluster(cluster, job_name)


# --------------------------------------------------------------------------------------------
# the long-lived session scheduler


def serve_scheduler(
    scheduler_file: str | os.PathLike[str] | None = None,
    *,
    adapt_min: int = 0,
    adapt_max: int = DEFAULT_MAX_JOBS,
    host: str | None = None,
    interface: str | None = None,
    dashboard_address: str = "127.0.0.1:0",
    stop: threading.Event | None = None,
    **cluster_kwargs: Any,
) -> None:
    """Run an adaptive, TLS-protected SLURMCluster and publish it in ``scheduler_file``.

    The scheduler listens on ``interface`` if given, else on ``host`` (default: this node's
    host name, which workers and login nodes resolve). Blocks until SIGTERM, SIGINT or SIGHUP
    (or until ``stop`` is set), then removes the scheduler file, cancels the worker jobs,
    closes the cluster and removes the TLS files. ``cluster_kwargs`` go to ``SLURMCluster``.
    """
    SLURMCluster = _jobqueue().SLURMCluster

    path = Path(scheduler_file).expanduser() if scheduler_file else scheduler_file_path()
    path = path.absolute()
    make_private_dir(path.parent)
    if path.exists():
        with contextlib.suppress(OSError, ValueError):
            running = read_scheduler_file(path)
            if _answers(running.address):
                raise RuntimeError(f"a session scheduler already runs at {running.address}")

    stop = stop or threading.Event()
    node = host or socket.gethostname()
    job_name = cluster_kwargs.pop("job_name", None) or new_job_name()
    options: dict[str, Any] = dict(dask.config.get("jobqueue.slurm.scheduler-options", {}) or {})
    options.update(cluster_kwargs.pop("scheduler_options", {}) or {})
    options["dashboard_address"] = dashboard_address
    if interface:
        options.pop("host", None)
        options["interface"] = interface
    elif "interface" not in options:
        options["host"] = node
    restore = _install_stop_handlers(stop)
    tls: TLSFiles | None = None
    cluster = None
    try:
        tls = create_session_tls(path.parent, hosts=[*default_hosts(), node])
        cluster = SLURMCluster(
            security=tls.security(),
            protocol="tls://",
            job_name=job_name,
            scheduler_options=options,
            **cluster_kwargs,
        )
        cluster.adapt(minimum_jobs=adapt_min, maximum_jobs=adapt_max)
        info = SchedulerInfo(
            address=cluster.scheduler_address,
            dashboard=_dashboard_url(cluster.dashboard_link, dashboard_address, node),
            tls=tls,
            host=node,
            pid=os.getpid(),
            slurm_job_id=os.environ.get("SLURM_JOB_ID"),
            worker_job_name=job_name,
            started=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        )
        write_scheduler_file(path, info)
        log.info("session scheduler at %s, scheduler file %s", info.address, path)
        print(f"eo-hpc: scheduler ready at {info.address} ({path})", flush=True)
        while not stop.wait(1.0):
            pass
        log.info("stopping the session scheduler")
    finally:
        path.unlink(missing_ok=True)
        cancel_jobs(job_name)
        try:
            if cluster is not None:
                cluster.close(timeout=20)
        finally:
            for p in (tls.key, tls.cert, tls.ca_file) if tls is not None else ():
                p.unlink(missing_ok=True)
            restore()
            print("eo-hpc: scheduler stopped", flush=True)


def _dashboard_url(link: str | None, dashboard_address: str, node: str) -> str | None:
    """The dashboard's URL with the host it listens on (Dask's link names the scheduler host)."""
    if not link:
        return None
    parts = urlsplit(link)
    listen = dashboard_address.rpartition(":")[0].strip("[]")
    host = listen if listen not in ("", "0.0.0.0", "::") else node
    if ":" in host:
        host = f"[{host}]"
    return parts._replace(netloc=f"{host}:{parts.port}").geturl()


def _install_stop_handlers(stop: threading.Event) -> Any:
    """Make SIGTERM, SIGINT and SIGHUP set ``stop``; return a function restoring the old ones."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    signals = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    old = {s: signal.getsignal(s) for s in signals}
    for s in signals:
        signal.signal(s, lambda *_: stop.set())

    def restore() -> None:
        for s, handler in old.items():
            signal.signal(s, handler)

    return restore


# --------------------------------------------------------------------------------------------
# command line


def main(argv: list[str] | None = None) -> int:
    """``python -m eotoolkit.cluster serve``: run the session scheduler until SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m eotoolkit.cluster",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run a TLS session scheduler with SLURM workers")
    serve.add_argument(
        "--scheduler-file",
        type=Path,
        default=None,
        help=f"where to publish it (default: {scheduler_file_path()})",
    )
    serve.add_argument("--adapt-min", type=int, default=0, help="minimum worker jobs")
    serve.add_argument(
        "--adapt-max", type=int, default=DEFAULT_MAX_JOBS, help="maximum worker jobs"
    )
    serve.add_argument("--host", default=None, help="scheduler host (default: this host name)")
    serve.add_argument("--interface", default=None, help="scheduler network interface")
    serve.add_argument("--dashboard-address", default="127.0.0.1:0")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    serve_scheduler(
        args.scheduler_file,
        adapt_min=args.adapt_min,
        adapt_max=args.adapt_max,
        host=args.host,
        interface=args.interface,
        dashboard_address=args.dashboard_address,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
