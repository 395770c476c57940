"""Saved sessions: one JSON file per session in the user's state dir, mode 0600.

A site's interactive session is saved as `<uid>.json`; each batch job as
`<uid>.batch-<job id>.json`, so batch jobs never collide with the interactive session.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from launcher.config import APP_NAME

STATE_DIR_ENV = "EOHPC_STATE_DIR"
JUPYTER = "jupyter"
BATCH = "batch"


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
    remote_host: str = ""
    remote_port: int = 0
    pid: int = 0
    extra: dict[str, str] = field(default_factory=dict)
    kind: str = JUPYTER
    scheduler_remote: str = ""
    scheduler_port: int = 0
    scheduler_file: str = ""

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


def state_dir() -> Path:
    """Return the state directory ($EOHPC_STATE_DIR or the platform's user state dir), 0700."""
    path = Path(os.environ.get(STATE_DIR_ENV) or platformdirs.user_state_dir(APP_NAME))
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def _path(key: str) -> Path:
    return state_dir() / f"{key}.json"


def save(state: SessionState) -> None:
    """Write the state atomically with mode 0600."""
    path = _path(state.key)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(dataclasses.asdict(state), handle, indent=2)
    os.replace(tmp, path)


def load(key: str) -> SessionState | None:
    """Return a saved session: a site's interactive one by its uid, or any by its key."""
    path = _path(key)
    if not path.is_file():
        return None
    return SessionState(**json.loads(path.read_text(encoding="utf-8")))


def delete(key: str) -> None:
    """Forget a session (a site's interactive one by its uid)."""
    _path(key).unlink(missing_ok=True)


def find(uid: str, job_id: str) -> SessionState | None:
    """Return the site's saved session (interactive or batch) whose job is job_id."""
    return next((s for s in load_all() if s.uid == uid and s.job_id == job_id), None)


def load_all() -> list[SessionState]:
    """Return every saved session."""
    return [s for p in sorted(state_dir().glob("*.json")) if (s := load(p.stem)) is not None]
