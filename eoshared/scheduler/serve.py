"""The session scheduler: a long-lived, adaptive, TLS-protected Dask cluster of worker jobs.

``python -m eoshared.scheduler.serve`` (also ``python -m eotoolkit.cluster serve``) runs the
batch system's dask-jobqueue cluster, whose scheduler, workers and clients authenticate each
other with per-session TLS certificates (:mod:`eoshared.scheduler.tls`), publishes it in the
scheduler file (:mod:`eoshared.scheduler.contract`), and runs until SIGTERM, SIGINT or SIGHUP;
then it removes the file, cancels its worker jobs, closes the cluster and removes the TLS files.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from eoshared.scheduler.contract import (
    SchedulerFileError,
    SchedulerInfo,
    parse_address,
    read_scheduler_file,
    scheduler_file_path,
    write_scheduler_file,
)
from eoshared.scheduler.files import make_private_dir
from eoshared.scheduler.tls import TLSFiles, create_session_tls, default_hosts
from eoshared.scheduler.tls_errors import install as clear_openssl_errors
from eoshared.scheduler.workers import (
    batch_system,
    cancel_worker_jobs,
    cluster_class,
    name_options,
    new_job_name,
    scheduler_options,
    worker_options,
)

log = logging.getLogger("eoshared.scheduler")
DEFAULT_MAX_JOBS = 4


def answers(address: str, timeout: float = 2.0) -> bool:
    """Whether something accepts TCP connections at a Dask address (no handshake)."""
    try:
        host, port = parse_address(address)
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except (OSError, SchedulerFileError):
        return False


def serve_scheduler(
    scheduler_file: str | os.PathLike[str] | None = None,
    *,
    adapt_min: int = 0,
    adapt_max: int = DEFAULT_MAX_JOBS,
    host: str | None = None,
    interface: str | None = None,
    dashboard_address: str = "127.0.0.1:0",
    batch_system_name: str | None = None,
    stop: threading.Event | None = None,
    **cluster_kwargs: Any,
) -> None:
    """Run an adaptive, TLS-protected jobqueue cluster and publish it in ``scheduler_file``.

    The scheduler listens on ``interface`` if given, else on ``host`` (default: this node's
    host name). Blocks until SIGTERM, SIGINT or SIGHUP (or until ``stop`` is set).
    ``cluster_kwargs`` go to the dask-jobqueue cluster class.

    The scheduler serves all its TLS connections from one thread, so this process and the
    workers clear OpenSSL's error queue before each TLS operation
    (:mod:`eoshared.scheduler.tls_errors`): otherwise, on OpenSSL 3.4+ with Python 3.13, the
    first connection that closes (a joining worker's registration) makes the next reads on
    the others fail, the workers are removed and adaptive scaling stops.
    """
    system = batch_system(batch_system_name)
    path = Path(scheduler_file).expanduser() if scheduler_file else scheduler_file_path()
    path = path.absolute()
    make_private_dir(path.parent)
    if path.exists():
        with contextlib.suppress(OSError, SchedulerFileError):
            running = read_scheduler_file(path)
            if answers(running.address):
                raise RuntimeError(f"a session scheduler already runs at {running.address}")

    stop = stop or threading.Event()
    node = host or socket.gethostname()
    job_name = cluster_kwargs.pop("job_name", None) or new_job_name()
    options = scheduler_options(
        system, dashboard_address=dashboard_address, host=host, interface=interface
    )
    options.update(cluster_kwargs.pop("scheduler_options", {}) or {})
    naming = name_options(system, job_name)
    if "job_extra_directives" in naming and "job_extra_directives" in cluster_kwargs:
        extra = cluster_kwargs.pop("job_extra_directives") or {}
        naming["job_extra_directives"] = {**extra, "batch_name": job_name}
    workers = worker_options(system, cluster_kwargs.pop("worker_extra_args", None))
    clear_openssl_errors()
    restore = _install_stop_handlers(stop)
    tls: TLSFiles | None = None
    cluster = None
    try:
        tls = create_session_tls(path.parent, hosts=[*default_hosts(), node])
        cluster = cluster_class(system)(
            security=tls.security(),
            protocol="tls://",
            **naming,
            **workers,
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
            batch_system=system.name,
            job_id=os.environ.get(system.job_id_variable),
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
        cancel_worker_jobs(system, job_name)
        try:
            if cluster is not None:
                cluster.close(timeout=20)
        finally:
            for p in (tls.key, tls.cert, tls.ca_file) if tls is not None else ():
                p.unlink(missing_ok=True)
            restore()
            print("eo-hpc: scheduler stopped", flush=True)


def _dashboard_url(link: str | None, dashboard_address: str, node: str) -> str | None:
    """The dashboard's URL with the host it listens on (Dask's link names the scheduler host);
    a link through Jupyter's proxy (``<prefix>proxy/<port>/status``, no host) is kept as is."""
    if not link:
        return None
    parts = urlsplit(link)
    if parts.port is None:
        return link
    listen = dashboard_address.rpartition(":")[0].strip("[]")
    host = listen if listen not in ("", "0.0.0.0", "::") else node
    if ":" in host:
        host = f"[{host}]"
    return parts._replace(netloc=f"{host}:{parts.port}").geturl()


def _install_stop_handlers(stop: threading.Event) -> Callable[[], None]:
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


def build_parser(prog: str = "python -m eoshared.scheduler.serve") -> argparse.ArgumentParser:
    """Options of the session scheduler's command line."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument(
        "--scheduler-file",
        type=Path,
        default=None,
        help="where to publish it (default: $EOHPC_SCHEDULER_FILE or the session's file)",
    )
    parser.add_argument("--adapt-min", type=int, default=0, help="minimum worker jobs")
    parser.add_argument(
        "--adapt-max", type=int, default=DEFAULT_MAX_JOBS, help="maximum worker jobs"
    )
    parser.add_argument("--host", default=None, help="scheduler host (default: this host name)")
    parser.add_argument("--interface", default=None, help="scheduler network interface")
    parser.add_argument("--dashboard-address", default="127.0.0.1:0")
    parser.add_argument(
        "--batch-system", default=None, help="of the worker jobs (default: $EOHPC_BATCH_SYSTEM)"
    )
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Run the session scheduler until SIGTERM."""
    parser = build_parser(prog) if prog else build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    serve_scheduler(
        args.scheduler_file,
        adapt_min=args.adapt_min,
        adapt_max=args.adapt_max,
        host=args.host,
        interface=args.interface,
        dashboard_address=args.dashboard_address,
        batch_system_name=args.batch_system,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
