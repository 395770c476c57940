"""Reading what a running launcher prints: its Jupyter URL, the lines up to a phrase."""

from __future__ import annotations

import queue
import re
import select
import subprocess
import threading
import time
import typing

import pytest

URL_RE = re.compile(r"http://127\.0\.0\.1:(\d+)/lab\?token=(\S+)")


def read_url(proc: subprocess.Popen[str], timeout: float = 240) -> tuple[str, int, str]:
    """Wait for the URL line of a foreground run; return (url, port, token)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if ready:
            line = proc.stdout.readline()
            match = URL_RE.search(line)
            if match:
                return match.group(0), int(match.group(1)), match.group(2)
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            pytest.fail(f"run exited ({proc.returncode}) before printing a URL:\n{err}")
    proc.kill()
    pytest.fail(f"no URL within {timeout}s")


def follow_until(proc: subprocess.Popen[str], text: str, timeout: float) -> list[str]:
    """Lines of ``proc``'s output up to the first containing ``text`` (read by a thread: the
    pipe's text buffer may hold lines that select() on its descriptor does not see)."""
    assert proc.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    stdout = proc.stdout
    threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            seen.append(lines.get(timeout=1.0))
        except queue.Empty:
            assert proc.poll() is None, "".join(seen)
            continue
        if text in seen[-1]:
            return seen
    pytest.fail(f"no {text!r} within {timeout}s:\n{''.join(seen)}")


def url_of(stdout: str) -> tuple[str, int, str]:
    match = URL_RE.search(stdout)
    assert match, stdout
    return match.group(0), int(match.group(1)), match.group(2)


def read_until(proc: subprocess.Popen[str], pattern: str, timeout: float) -> str:
    """Lines of ``proc``'s standard output up to one containing ``pattern``."""
    assert proc.stdout is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            seen += line
            if pattern in line:
                return seen
        if proc.poll() is not None:
            break
    raise AssertionError(f"no {pattern!r} within {timeout}s; output so far:\n{seen}")


class StreamLines:
    """The lines of one of a process's pipes, collected by a thread as they come (so that
    standard output and standard error can both be waited on)."""

    def __init__(self, pipe: typing.IO[str]) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: typing.IO[str]) -> None:
        for line in pipe:
            self.lines.append(line)

    def wait_for(self, pattern: str, timeout: float, after: int = 0) -> int:
        """The index of the first line from ``after`` on containing ``pattern``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for n in range(after, len(self.lines)):
                if pattern in self.lines[n]:
                    return n
            time.sleep(0.2)
        raise AssertionError(f"no {pattern!r} within {timeout}s:\n{''.join(self.lines)}")

    @property
    def text(self) -> str:
        return "".join(self.lines)
