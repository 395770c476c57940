"""The scheduler file: how a session's Dask scheduler tells clients where it is.

Written by the scheduler's side (:mod:`eoshared.scheduler.serve`) and read by every client
(:func:`eotoolkit.cluster.get_client`, the launcher's local copy). Its location::

    $EOHPC_SCHEDULER_FILE                                   if set, else
    <state>/sessions/<session>/scheduler.json
        <state>   = $EOHPC_STATE_DIR or platformdirs.user_state_dir("eo-hpc")
        <session> = $EOHPC_SESSION or "default"

The file's directory (0700) also holds the session's TLS files (0600). The file is JSON, 0600,
replaced atomically::

    {
      "format": "eo-hpc-scheduler/2",
      "address": "tls://node042:40123",        # as workers and the login node reach it
      "dashboard": "http://127.0.0.1:39543/status",
      "tls": {"ca_file": "ca.pem", "cert": "cert.pem", "key": "key.pem"},
      "host": "node042", "pid": 12345,
      "batch_system": "slurm", "job_id": "678",                 # the job it runs in, or null
      "worker_job_name": "eohpc-dask-1a2b3c4d",                 # the name of its worker jobs
      "started": "2025-01-01T12:00:00+00:00",
      "remote_address": "tls://node042:40123"   # only in a forwarded copy: the original address
    }

TLS paths relative to the file's directory let a copy of the whole directory work unchanged.
A reader refuses a file of another format version with a message naming both versions.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from eoshared.scheduler.files import STATE_DIR_ENV, state_dir, write_private
from eoshared.scheduler.tls import TLS_KEYS, TLSFiles

FORMAT = "eo-hpc-scheduler/2"
FILE_NAME = "scheduler.json"
#: The scheduler file to use (overrides the session's default location).
SCHEDULER_FILE_ENV = "EOHPC_SCHEDULER_FILE"
#: The session (a site uid) whose scheduler file to use.
SESSION_ENV = "EOHPC_SESSION"
DEFAULT_SESSION = "default"
#: The run directory of a batch job, exported to its script.
RUN_DIR_ENV = "EOHPC_RUN_DIR"
#: The batch system whose worker jobs a session starts (exported by every job script).
BATCH_SYSTEM_ENV = "EOHPC_BATCH_SYSTEM"

# A batch job's run directory: the driver writes these next to the uploaded script.
#: The script's exit status.
EXIT_STATUS_NAME = "exit_status"
#: Why the script did not run (the workers did not arrive, the cluster did not start): one line.
FAILURE_NAME = "failure"
#: The run's TLS files.
TLS_DIR = "tls"
#: The output of the workers of a job that runs them on its own nodes (one file per node).
WORKER_LOGS_DIR = "workers"

__all__ = [
    "BATCH_SYSTEM_ENV",
    "DEFAULT_SESSION",
    "EXIT_STATUS_NAME",
    "FAILURE_NAME",
    "FILE_NAME",
    "FORMAT",
    "RUN_DIR_ENV",
    "SCHEDULER_FILE_ENV",
    "SESSION_ENV",
    "STATE_DIR_ENV",
    "TLS_DIR",
    "WORKER_LOGS_DIR",
    "SchedulerFileError",
    "SchedulerInfo",
    "parse_address",
    "read_scheduler_file",
    "scheduler_file_path",
    "session_dir",
    "write_scheduler_file",
]


class SchedulerFileError(ValueError):
    """A scheduler file that cannot be used (not JSON, no address, another format)."""


@dataclass(frozen=True)
class SchedulerInfo:
    """What a scheduler file says about a running session scheduler."""

    address: str
    dashboard: str | None = None
    tls: TLSFiles | None = None
    host: str | None = None
    pid: int | None = None
    batch_system: str | None = None
    job_id: str | None = None
    worker_job_name: str | None = None
    started: str | None = None
    remote_address: str | None = None

    def security(self) -> Any:
        """The ``distributed.Security`` of the session's TLS files (key private), or None."""
        return None if self.tls is None else self.tls.security()


def session_dir(session: str) -> Path:
    """<state>/sessions/<session>: where a session's scheduler file and TLS files live."""
    return state_dir() / "sessions" / session


def scheduler_file_path() -> Path:
    """Where this process's session scheduler file is (see the module docstring)."""
    explicit = os.environ.get(SCHEDULER_FILE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    return session_dir(os.environ.get(SESSION_ENV) or DEFAULT_SESSION) / FILE_NAME


def parse_address(address: str) -> tuple[str, int]:
    """Split ``tls://host:port`` (or ``host:port``) into host and port."""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.hostname is None or parts.port is None:
        raise SchedulerFileError(f"not a scheduler address: {address!r}")
    return parts.hostname, parts.port


def read_scheduler_file(path: str | os.PathLike[str]) -> SchedulerInfo:
    """Read a scheduler file; relative TLS paths are resolved against its directory."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SchedulerFileError(f"{path} is not a scheduler file ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("address"), str):
        raise SchedulerFileError(f"{path} is not a scheduler file (no 'address')")
    if data.get("format") != FORMAT:
        raise SchedulerFileError(
            f"{path} has format {data.get('format')!r}; this version reads {FORMAT!r}. "
            "Use the same eo-hpc version on both sides (--mode install updates the cluster)."
        )
    tls = None
    if data.get("tls"):
        tls = TLSFiles(**{k: path.parent / Path(data["tls"][k]) for k in TLS_KEYS})
    fields = {f.name for f in dataclasses.fields(SchedulerInfo)} - {"address", "tls", "pid"}
    pid = data.get("pid")
    return SchedulerInfo(
        address=data["address"],
        tls=tls,
        pid=int(pid) if pid is not None else None,
        **{k: data.get(k) for k in fields},
    )


def write_scheduler_file(path: Path, info: SchedulerInfo) -> None:
    """Write ``info`` to ``path`` atomically with mode 0600 (TLS paths relative if possible)."""
    data: dict[str, Any] = {"format": FORMAT, **dataclasses.asdict(info)}
    if info.tls is not None:
        files = (info.tls.ca_file, info.tls.cert, info.tls.key)
        data["tls"] = {
            key: (p.name if p.parent == path.parent else str(p))
            for key, p in zip(TLS_KEYS, files, strict=True)
        }
    if data["remote_address"] is None:
        del data["remote_address"]
    write_private(path, json.dumps(data, indent=2) + "\n")
