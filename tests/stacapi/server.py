"""A real STAC API (PostgreSQL + pgstac + stac-fastapi-pgstac) on loopback, managed by pid files.

Usage: ``python -m tests.stacapi.server up|down|status [--dir DIR]``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tests.stacapi.install import ensure_installed, is_root, pg_bindir

DEFAULT_DIR = Path(os.environ.get("EOTOOLKIT_STACAPI_DIR", "/tmp/eotoolkit-stacapi"))
DB_NAME = "stac"
DB_USER = "postgres"
DB_PASS = "postgres"
START_TIMEOUT = 120.0
STOP_TIMEOUT = 15.0

_children: dict[int, subprocess.Popen[bytes]] = {}


class ServerError(RuntimeError):
    """Raised when the STAC API server cannot be started."""


@dataclass(frozen=True)
class ServerInfo:
    """Where a running STAC API server lives."""

    state_dir: str
    pg_port: int
    api_port: int
    postgres_pid: int
    uvicorn_pid: int
    started_in: float

    @property
    def url(self) -> str:
        """Root URL of the STAC API."""
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def dsn(self) -> str:
        """libpq connection string of the pgstac database."""
        return f"postgresql://{DB_USER}:{DB_PASS}@127.0.0.1:{self.pg_port}/{DB_NAME}"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _state_file(state_dir: Path) -> Path:
    return state_dir / "state.json"


def read_state(state_dir: Path = DEFAULT_DIR) -> ServerInfo | None:
    """Return the recorded server of ``state_dir``, or None when there is none."""
    try:
        return ServerInfo(**json.loads(_state_file(state_dir).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _owned(pid: int, marker: str) -> bool:
    """True when ``pid`` is alive and its command line still contains ``marker``."""
    return pid > 0 and _alive(pid) and marker in _cmdline(pid)


def _stop_pid(pid: int, marker: str, sig: signal.Signals) -> None:
    if not _owned(pid, marker):
        _children.pop(pid, None)
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + STOP_TIMEOUT
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.05)
    _children.pop(pid, None)


def _read_pid(path: Path) -> int:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def stop(state_dir: Path = DEFAULT_DIR, *, remove: bool = True) -> None:
    """Stop the uvicorn and postgres processes recorded in ``state_dir`` and delete it."""
    _stop_pid(_read_pid(state_dir / "uvicorn.pid"), "uvicorn", signal.SIGTERM)
    _stop_pid(_read_pid(state_dir / "postgres.pid"), "postgres", signal.SIGINT)
    _stop_pid(_read_pid(state_dir / "pgdata" / "postmaster.pid"), "postgres", signal.SIGINT)
    if remove:
        shutil.rmtree(state_dir, ignore_errors=True)


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def _as_db_owner() -> dict[str, Any]:
    """Popen arguments that run a command as the ``postgres`` user when we are root."""
    if not is_root():
        return {}
    return {"user": "postgres", "group": "postgres", "extra_groups": []}


def _chown_db_owner(*paths: Path) -> None:
    if is_root():
        for path in paths:
            shutil.chown(path, "postgres", "postgres")


def _init_postgres(state_dir: Path, bindir: Path) -> tuple[Path, Path]:
    pgdata, sockdir, log = state_dir / "pgdata", state_dir / "sock", state_dir / "postgres.log"
    pgdata.mkdir(mode=0o700)
    sockdir.mkdir(mode=0o700)
    log.touch()
    _chown_db_owner(pgdata, sockdir, log)
    cmd = [str(bindir / "initdb"), "-D", str(pgdata), "-U", DB_USER, "--auth=trust"]
    cmd += ["-E", "UTF8", "--no-locale", "--no-sync"]
    result = subprocess.run(
        cmd, capture_output=True, text=True, check=False, cwd=state_dir, **_as_db_owner()
    )
    if result.returncode != 0:
        raise ServerError(f"initdb failed (exit {result.returncode}):\n{result.stderr[-2000:]}")
    return pgdata, sockdir


def _start_postgres(state_dir: Path, bindir: Path, port: int) -> int:
    pgdata, sockdir = _init_postgres(state_dir, bindir)
    log = state_dir / "postgres.log"
    cmd = [str(bindir / "postgres"), "-D", str(pgdata), "-p", str(port), "-k", str(sockdir)]
    for setting in (
        "listen_addresses=127.0.0.1",
        "fsync=off",
        "synchronous_commit=off",
        "full_page_writes=off",
        "max_connections=50",
        "shared_buffers=64MB",
    ):
        cmd += ["-c", setting]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=state_dir,
            start_new_session=True,
            **_as_db_owner(),
        )
    _children[proc.pid] = proc
    (state_dir / "postgres.pid").write_text(f"{proc.pid}\n")
    _wait_postgres(proc, port, log)
    return int(proc.pid)


def _wait_postgres(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    import psycopg

    dsn = f"postgresql://{DB_USER}:{DB_PASS}@127.0.0.1:{port}/postgres"
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise ServerError(f"postgres exited with {proc.returncode}:\n{_tail(log)}")
        try:
            with psycopg.connect(dsn, connect_timeout=2, autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {DB_NAME}")
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise ServerError(f"postgres not ready on port {port}:\n{_tail(log)}") from None
            time.sleep(0.1)


def _migrate(dsn: str) -> None:
    from pypgstac.db import PgstacDB
    from pypgstac.migrate import Migrate

    with PgstacDB(dsn=dsn) as db:
        Migrate(db).run_migration()


def _app_target() -> list[str]:
    spec = importlib.util.find_spec("stac_fastapi.pgstac.app")
    source = Path(spec.origin).read_text() if spec and spec.origin else ""
    if "def create_app" in source:
        return ["stac_fastapi.pgstac.app:create_app", "--factory"]
    return ["stac_fastapi.pgstac.app:app"]


def api_env(pg_port: int) -> dict[str, str]:
    """Environment for stac-fastapi-pgstac (current PG* names and the older POSTGRES_* ones)."""
    env = {**os.environ}
    db = {
        "PGUSER": DB_USER,
        "PGPASSWORD": DB_PASS,
        "PGHOST": "127.0.0.1",
        "PGPORT": str(pg_port),
        "PGDATABASE": DB_NAME,
        "POSTGRES_USER": DB_USER,
        "POSTGRES_PASS": DB_PASS,
        "POSTGRES_HOST_READER": "127.0.0.1",
        "POSTGRES_HOST_WRITER": "127.0.0.1",
        "POSTGRES_PORT": str(pg_port),
        "POSTGRES_DBNAME": DB_NAME,
        "DB_MIN_CONN_SIZE": "1",
        "DB_MAX_CONN_SIZE": "4",
        "STAC_FASTAPI_TITLE": "eotoolkit test STAC API",
        "STAC_FASTAPI_DESCRIPTION": "tests",
        "STAC_FASTAPI_LANDING_ID": "eotoolkit-test",
        "STAC_FASTAPI_VERSION": "0.0.0",
    }
    env.update(db)
    return env


def _spawn_api(state_dir: Path, pg_port: int, api_port: int) -> subprocess.Popen[bytes]:
    log = state_dir / "uvicorn.log"
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        *_app_target(),
        "--host",
        "127.0.0.1",
        "--port",
        str(api_port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=state_dir,
            env=api_env(pg_port),
            start_new_session=True,
        )
    _children[proc.pid] = proc
    (state_dir / "uvicorn.pid").write_text(f"{proc.pid}\n")
    return proc


def _wait_api(proc: subprocess.Popen[bytes], api_port: int, log: Path) -> int:
    """Poll the landing page until it answers with conformance classes (needs pgstac)."""
    url = f"http://127.0.0.1:{api_port}/"
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise ServerError(f"uvicorn exited with {proc.returncode}:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200 and "conformsTo" in json.loads(resp.read()):
                    return int(proc.pid)
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise ServerError(f"STAC API not ready at {url}:\n{_tail(log)}")
        time.sleep(0.1)


def start(state_dir: Path | None = None) -> ServerInfo:
    """Install what is missing, then start postgres + pgstac + the STAC API; return where."""
    ensure_installed()
    bindir = pg_bindir()
    if bindir is None:
        raise ServerError("PostgreSQL server binaries not found after install")
    began = time.monotonic()
    if state_dir is None:
        state_dir = Path(tempfile.mkdtemp(prefix="eotoolkit-stacapi-"))
    else:
        state_dir.mkdir(parents=True, exist_ok=True)
    state_dir.chmod(0o755)
    try:
        pg_port = free_port()
        pg_pid = _start_postgres(state_dir, bindir, pg_port)
        dsn = f"postgresql://{DB_USER}:{DB_PASS}@127.0.0.1:{pg_port}/{DB_NAME}"
        api_port = free_port()
        # uvicorn imports its app while pgstac migrates; it answers once pgstac is there.
        api = _spawn_api(state_dir, pg_port, api_port)
        _migrate(dsn)
        api_pid = _wait_api(api, api_port, state_dir / "uvicorn.log")
    except BaseException:
        stop(state_dir, remove=False)
        raise
    info = ServerInfo(
        str(state_dir), pg_port, api_port, pg_pid, api_pid, round(time.monotonic() - began, 2)
    )
    _state_file(state_dir).write_text(json.dumps(asdict(info), indent=2))
    return info


def running(state_dir: Path = DEFAULT_DIR) -> ServerInfo | None:
    """Return the server recorded in ``state_dir`` when both of its processes are alive."""
    info = read_state(state_dir)
    if info and _owned(info.uvicorn_pid, "uvicorn") and _owned(info.postgres_pid, "postgres"):
        return info
    return None


def main(argv: list[str] | None = None) -> int:
    """Command line: ``up`` starts, ``down`` stops, ``status`` reports."""
    parser = argparse.ArgumentParser(prog="python -m tests.stacapi.server")
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="state directory")
    args = parser.parse_args(argv)
    state_dir: Path = args.dir
    if args.action == "up":
        info = running(state_dir)
        if info is None:
            stop(state_dir)
            info = start(state_dir)
            _children.clear()
        print(f"STAC API {info.url}\ndsn {info.dsn}\nstate {info.state_dir}")
        return 0
    if args.action == "down":
        stop(state_dir)
        print(f"stopped; removed {state_dir}")
        return 0
    info = running(state_dir)
    if info is None:
        print(f"not running (state {state_dir})")
        return 1
    print(
        f"running: STAC API {info.url} (pid {info.uvicorn_pid}), "
        f"postgres pid {info.postgres_pid}\ndsn {info.dsn}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
