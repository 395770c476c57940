"""The laptop's copy of a session scheduler's files, pointed at a forwarded port.

A Jupyter job started with ``run --scheduler`` runs :mod:`eoshared.scheduler.serve`, which
publishes ``<run dir>/scheduler/scheduler.json`` and its TLS files. The launcher copies them
into ``<state>/sessions/<uid>/`` (directory 0700, files 0600), forwards a port on 127.0.0.1 to
the scheduler through the login node, and writes the copy with the address
``tls://127.0.0.1:<port>`` (the original kept as ``remote_address``). That is where
:func:`eotoolkit.cluster.get_client` looks with ``EOHPC_SESSION=<uid>``.
"""

from __future__ import annotations

import dataclasses
import posixpath
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from eoshared.scheduler.contract import (
    FILE_NAME,
    SchedulerInfo,
    read_scheduler_file,
    session_dir,
    write_scheduler_file,
)
from eoshared.scheduler.files import make_private_dir, write_private
from eoshared.scheduler.tls import TLSFiles

REMOTE_DIR = "scheduler"
USAGE = "from eotoolkit.cluster import get_client; client = get_client()"

#: Reads a whole file of the cluster (the SSH link's ``read``).
ReadRemote = Callable[[str], bytes]


def remote_file(run_dir: str) -> str:
    """Where the job's scheduler publishes itself on the cluster."""
    return f"{run_dir}/{REMOTE_DIR}/{FILE_NAME}"


def local_file(uid: str) -> Path:
    """The local copy of a site's session scheduler file."""
    return session_dir(uid) / FILE_NAME


def copy_published(read: ReadRemote, run_dir: str, uid: str) -> SchedulerInfo:
    """Copy the job's scheduler file and TLS files into the site's session directory.

    The published file is parsed with the same reader every client uses, so a file of another
    format version is refused here, before anything is forwarded.
    """
    dest = make_private_dir(session_dir(uid))
    remote_dir = posixpath.dirname(remote_file(run_dir))
    with tempfile.TemporaryDirectory(dir=dest) as scratch:
        published = Path(scratch) / FILE_NAME
        write_private(published, read(remote_file(run_dir)))
        info = read_scheduler_file(published)
    if info.tls is None:
        return info
    copies = []
    for path in (info.tls.ca_file, info.tls.cert, info.tls.key):
        remote = posixpath.join(remote_dir, path.name)
        write_private(dest / path.name, read(remote))
        copies.append(dest / path.name)
    return dataclasses.replace(info, tls=TLSFiles(*copies))


def point_at(uid: str, info: SchedulerInfo, port: int) -> Path:
    """Write the local copy with the forwarded address ``tls://127.0.0.1:<port>``."""
    path = local_file(uid)
    forwarded = dataclasses.replace(
        info,
        address=f"tls://127.0.0.1:{port}",
        remote_address=info.remote_address or info.address,
    )
    write_scheduler_file(path, forwarded)
    return path


def remove(uid: str) -> None:
    """Remove the local copy of a site's session scheduler files."""
    shutil.rmtree(session_dir(uid), ignore_errors=True)
