"""Remote-site parts run by real tools: the wait for a job's file, the upload archive."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

from launcher.sites.remote import CONNECTION_FILE, RemoteSite, private_tar


class LocalShell:
    """Runs commands in a local shell, as the login node's shell would (the SSH link's run)."""

    def run(self, command: str, stdin: str | None = None) -> tuple[int, str, str]:
        done = subprocess.run(command, shell=True, capture_output=True, text=True, input=stdin)
        return done.returncode, done.stdout, done.stderr


def _site() -> RemoteSite:
    site = RemoteSite.__new__(RemoteSite)
    site.link = LocalShell()  # type: ignore[assignment]
    return site


def test_connection_file_found_soon_after_it_appears(tmp_path: Path) -> None:
    run_dir = tmp_path / "run dir"  # a space: the path must be quoted
    run_dir.mkdir()

    def write_later() -> None:
        time.sleep(0.4)
        (run_dir / "connection.json").write_text(json.dumps({"host": "node7", "port": 8765}))

    writer = threading.Thread(target=write_later)
    start = time.monotonic()
    writer.start()
    found = _site().wait_for_file(str(run_dir / CONNECTION_FILE), wait=3.0)
    elapsed = time.monotonic() - start
    writer.join()
    assert json.loads(found) == {"host": "node7", "port": 8765}
    assert 0.4 <= elapsed < 1.5


def test_connection_file_absent_waits_at_most_the_given_time(tmp_path: Path) -> None:
    start = time.monotonic()
    assert _site().wait_for_file(str(tmp_path / CONNECTION_FILE), wait=0.5) == ""
    assert 0.4 <= time.monotonic() - start < 2.0
    start = time.monotonic()
    assert _site().wait_for_file(str(tmp_path / CONNECTION_FILE), wait=0) == ""  # one look
    assert time.monotonic() - start < 0.5


def test_private_tar_extracts_private_files_with_tar(tmp_path: Path) -> None:
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
