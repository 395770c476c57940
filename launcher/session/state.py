"""Saved sessions: one JSON file per session in the user's state dir, mode 0600.

A site's interactive session is saved as `<uid>.json`; each batch job as
`<uid>.batch-<job id>.json`, so batch jobs never collide with the interactive session. A
session that ended in a fault (or, for batch jobs, at all) is recorded once more under
`ended/<key>.json` with what happened (``outcome``), so that `status` can still tell.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from eoshared.scheduler.files import make_private_dir, state_dir, write_private

JUPYTER = "jupyter"
BATCH = "batch"
#: A staged pipeline: ``jobs`` holds its step=job pairs, ``run_dir`` names its pipeline id.
PIPELINE = "pipeline"


@dataclass
class SessionState:
    """What `attach`, `status`, `logs` and `stop` need to find a session again."""

    uid: str
    platform: str
    job_id: str
    run_dir: str
    token: str
    local_port: int
    node: str = ""
    #: When the job's run that Jupyter answers from started, as the batch system says it (a
    #: later start means it was put back in the queue and started again).
    started: str = ""
    remote_host: str = ""
    remote_port: int = 0
    pid: int = 0
    kind: str = JUPYTER
    with_scheduler: bool = False
    scheduler_remote: str = ""
    scheduler_port: int = 0
    scheduler_file: str = ""
    jobs: str = ""
    #: How the session ended, once it has: the batch system's final state or reason, and the
    #: launcher's message about it ("" while it lives).
    ended_state: str = ""
    outcome: str = ""

    @property
    def key(self) -> str:
        """The name the session is saved under."""
        return self.uid if self.kind == JUPYTER else f"{self.uid}.{self.kind}-{self.job_id}"

    @property
    def scheduler_address(self) -> str:
        """The session scheduler's address on this machine (the forwarded port), or ""."""
        return f"tls://127.0.0.1:{self.scheduler_port}" if self.scheduler_port else ""

    @property
    def url(self) -> str:
        """The JupyterLab URL on this machine (with the token)."""
        return f"http://127.0.0.1:{self.local_port}/lab?token={self.token}"

    @property
    def ready(self) -> bool:
        """True once the job reported where Jupyter listens."""
        return bool(self.remote_host and self.remote_port)


ENDED_DIR = "ended"


def _path(key: str) -> Path:
    return state_dir() / f"{key}.json"


def record_end(state: SessionState) -> None:
    """Keep what is known about a session that ended (its ``ended_state`` and ``outcome``)."""
    write_private(
        make_private_dir(state_dir() / ENDED_DIR) / f"{state.key}.json",
        json.dumps(dataclasses.asdict(state), indent=2),
    )


def load_ended(key: str) -> SessionState | None:
    """The record of a session that ended, saved under ``key``; None if there is none."""
    return load(f"{ENDED_DIR}/{key}")


def save(state: SessionState) -> None:
    """Write the state atomically with mode 0600."""
    write_private(_path(state.key), json.dumps(dataclasses.asdict(state), indent=2))


def load(key: str) -> SessionState | None:
    """Return a saved session: a site's interactive one by its uid, or any by its key."""
    path = _path(key)
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    known = {f.name for f in dataclasses.fields(SessionState)}
    return SessionState(**{k: v for k, v in data.items() if k in known})


def delete(key: str) -> None:
    """Forget a session (a site's interactive one by its uid)."""
    _path(key).unlink(missing_ok=True)


def find(uid: str, job_id: str) -> SessionState | None:
    """Return the site's saved session (interactive, batch or pipeline) whose job is job_id;
    a pipeline is also found by any of its jobs and by its id (its run directory's name)."""
    return next((s for s in load_all() if s.uid == uid and _names(s, job_id)), None)


def _names(state: SessionState, name: str) -> bool:
    if state.job_id == name:
        return True
    return state.kind == PIPELINE and (
        name in {item.partition("=")[2] for item in state.jobs.split(",")}
        or Path(state.run_dir).name == name
    )


def load_all() -> list[SessionState]:
    """Return every saved session."""
    return [s for p in sorted(state_dir().glob("*.json")) if (s := load(p.stem)) is not None]
