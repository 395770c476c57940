"""Saved sessions: one JSON file per site in the user's state dir, mode 0600."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from launcher.config import APP_NAME

STATE_DIR_ENV = "EOHPC_STATE_DIR"


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


def _path(uid: str) -> Path:
    return state_dir() / f"{uid}.json"


def save(state: SessionState) -> None:
    """Write the state atomically with mode 0600."""
    path = _path(state.uid)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(dataclasses.asdict(state), handle, indent=2)
    os.replace(tmp, path)


def load(uid: str) -> SessionState | None:
    """Return the saved session of a site, if any."""
    path = _path(uid)
    if not path.is_file():
        return None
    return SessionState(**json.loads(path.read_text(encoding="utf-8")))


def delete(uid: str) -> None:
    """Forget a site's session."""
    _path(uid).unlink(missing_ok=True)


def load_all() -> list[SessionState]:
    """Return every saved session."""
    return [s for p in sorted(state_dir().glob("*.json")) if (s := load(p.stem)) is not None]
