"""Session parts run by real tools: the wait for the connection file, the upload archive."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

from launcher.session import RemoteSession
from launcher.state import SessionState


class LocalShell:
    """Runs scheduler commands in a local shell, as the login node's shell would."""

    def run(self, command: str, stdin: str | None = None) -> tuple[int, str, str]:
        done = subprocess.run(command, shell=True, capture_output=True, text=True, input=stdin)
        return done.returncode, done.stdout, done.stderr


def _session() -> RemoteSession:
    session = RemoteSession.__new__(RemoteSession)
    session.scheduler = LocalShell()  # type: ignore[assignment]
    return session


def _state(run_dir: Path) -> SessionState:
    return SessionState("site", "generic", "1", str(run_dir), "t", 8888)


def test_connection_file_found_soon_after_it_appears(tmp_path: Path) -> None:
    run_dir = tmp_path / "run dir"  # a space: the path must be quoted
    run_dir.mkdir()

    def write_later() -> None:
        time.sleep(0.4)
        (run_dir / "connection.json").write_text(json.dumps({"host": "node7", "port": 8765}))

    writer = threading.Thread(target=write_later)
    start = time.monotonic()
    writer.start()
    found = _session()._connection_file(_state(run_dir), wait=3.0)
    elapsed = time.monotonic() - start
    writer.join()
    assert found == ("node7", 8765)
    assert 0.4 <= elapsed < 1.5


def test_connection_file_absent_waits_at_most_the_given_time(tmp_path: Path) -> None:
    start = time.monotonic()
    assert _session()._connection_file(_state(tmp_path), wait=0.5) is None
    assert 0.4 <= time.monotonic() - start < 2.0
    start = time.monotonic()
    assert _session()._connection_file(_state(tmp_path)) is None  # no wait: one look
    assert time.monotonic() - start < 0.5


def test_private_tar_extracts_private_files_with_tar(tmp_path: Path) -> None:
    from launcher.session import private_tar

    files = {"dask/eohpc.yaml": "jobqueue: {}\n", "jupyter.json": '{"token": "s3cr\u00e9t"}'}
    dest = tmp_path / "run"
    dest.mkdir(mode=0o700)
    subprocess.run(
        f"umask 077 && tar -x -o -f - -C '{dest}'", shell=True, check=True, input=private_tar(files)
    )
    for name, text in files.items():
        path = dest / name
        assert path.read_text(encoding="utf-8") == text
        assert path.stat().st_mode & 0o777 == 0o600
    assert (dest / "dask").stat().st_mode & 0o777 == 0o700
