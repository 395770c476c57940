"""The session's Dask scheduler on this machine: a private copy of its files, a forwarded port.

A Jupyter job started with `--scheduler` also runs `python -m eotoolkit.cluster serve`, which
publishes `<run dir>/scheduler/scheduler.json` and its TLS files (format: eotoolkit.cluster).
The launcher copies them over SFTP into `<state>/sessions/<uid>/` (directory 0700, files 0600),
forwards a port on 127.0.0.1 to the scheduler through the login node, and writes the copy with
the address `tls://127.0.0.1:<port>`. That is where `eotoolkit.cluster.get_client()` looks with
`EOHPC_SESSION=<uid>` (or `EOHPC_SCHEDULER_FILE=<copy>`); the port answers while a launcher
process (`run` or `attach` in the foreground) holds the tunnel.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paramiko

from launcher import state as saved

REMOTE_DIR = "scheduler"
FILE_NAME = "scheduler.json"
TLS_KEYS = ("ca_file", "cert", "key")
USAGE = "from eotoolkit.cluster import get_client; client = get_client()"


def remote_file(run_dir: str) -> str:
    """Where the job's scheduler publishes itself on the cluster."""
    return f"{run_dir}/{REMOTE_DIR}/{FILE_NAME}"


def local_dir(uid: str) -> Path:
    """The local copy's directory: <state>/sessions/<uid>."""
    return saved.state_dir() / "sessions" / uid


def parse_address(address: str) -> tuple[str, int]:
    """Split `tls://host:port` into host and port."""
    parts = urlsplit(address)
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"not a scheduler address: {address!r}")
    return parts.hostname, parts.port


def _private_file(path: Path) -> int:
    path.unlink(missing_ok=True)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)


def copy_files(sftp: paramiko.SFTPClient, run_dir: str, dest: Path) -> dict[str, Any]:
    """Copy the published scheduler file's TLS files into dest (0700); return the file's data.

    The returned data names the TLS files relative to dest.
    """
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    dest.chmod(0o700)
    remote_dir = posixpath.dirname(remote_file(run_dir))
    with sftp.open(remote_file(run_dir), "r") as handle:
        data: dict[str, Any] = json.loads(handle.read())
    tls = data.get("tls") or {}
    local_tls = {}
    for key in TLS_KEYS:
        remote = posixpath.join(remote_dir, tls[key])  # an absolute tls[key] stays as it is
        name = posixpath.basename(remote)
        with os.fdopen(_private_file(dest / name), "wb") as out:
            sftp.getfo(remote, out)
        local_tls[key] = name
    data["tls"] = local_tls
    return data


def write_local_file(dest: Path, published: dict[str, Any], port: int) -> Path:
    """Write dest/scheduler.json (0600) with the forwarded address; return its path."""
    data = dict(published)
    data["remote_address"] = published.get("remote_address") or published["address"]
    data["address"] = f"tls://127.0.0.1:{port}"
    path = dest / FILE_NAME
    tmp = dest / f".{FILE_NAME}.tmp"
    with os.fdopen(_private_file(tmp), "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
    os.replace(tmp, path)
    return path


def read_local_file(path: Path) -> dict[str, Any]:
    """Read the local copy of the scheduler file."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def remove_local(uid: str) -> None:
    """Remove the local copy of a site's session scheduler files."""
    shutil.rmtree(local_dir(uid), ignore_errors=True)
