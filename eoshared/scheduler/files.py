"""Private files and the state directory, shared by the laptop and the cluster side.

Everything that holds a secret (tokens, TLS keys, scheduler files, saved sessions) is written
through these helpers: directories 0700, files 0600 from their first byte, replaced atomically.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

import platformdirs

APP_NAME = "eo-hpc"
#: Overrides the state directory (saved sessions, local copies of scheduler files).
STATE_DIR_ENV = "EOHPC_STATE_DIR"


def make_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and make it mode 0700; it must belong to this user."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = path.stat()
    if info.st_uid != os.getuid():
        raise PermissionError(f"{path} belongs to uid {info.st_uid}, not to this user")
    if stat.S_IMODE(info.st_mode) != 0o700:
        path.chmod(0o700)
    return path


def write_private(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` atomically, mode 0600 from the first byte on."""
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def check_private(path: Path) -> None:
    """Raise :class:`PermissionError` if ``path`` is readable or writable by group or others."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise PermissionError(f"{path} has mode {mode:04o}; it must be private (chmod 600)")


def state_dir() -> Path:
    """The state directory ($EOHPC_STATE_DIR or the platform's user state dir), made 0700."""
    path = Path(os.environ.get(STATE_DIR_ENV) or platformdirs.user_state_dir(APP_NAME))
    return make_private_dir(path.expanduser())
