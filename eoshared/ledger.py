"""The per-scene ledger of a staged pipeline (and of per-scene ``eotoolkit run`` recipes).

One JSON-lines file of events (``pending``, ``start``, ``done``, ``failed``), appended under an
exclusive POSIX record lock (``fcntl.lockf``: honoured by NFS and by Lustre/GPFS mounted with
locking, unlike SQLite's shared-memory WAL across nodes), one ``write`` per event on an
``O_APPEND`` descriptor, fsynced. Array tasks on several nodes append concurrently; a reader
folds the events into one :class:`SceneRecord` per scene. A torn last line (a writer killed
mid-write) is skipped, never fatal. The file is created 0600 and survives the jobs, so a re-run
skips the scenes already done.

Standard library only: imported on the cluster by the pipeline's array tasks, on the laptop by
the launcher's report, and by ``eotoolkit run`` for per-scene recipes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

LEDGER_NAME = "ledger.jsonl"
PENDING = "pending"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
#: The error of a scene whose task ended without recording a result.
INTERRUPTED = "the task ended without recording a result (killed, cancelled or out of time)"
#: How much of a failed command's output an error message keeps.
ERROR_CHARS = 600


@dataclass
class SceneRecord:
    """What the ledger knows about one scene."""

    scene: str
    state: str = PENDING
    attempts: int = 0
    error: str = ""
    output: str = ""
    started: float | None = None
    ended: float | None = None
    seconds: float | None = None
    run: str = ""
    run_attempts: int = 0
    task: str = ""
    #: The scene's extent in longitude/latitude (west, south, east, north), where its input
    #: is a raster with a CRS.
    footprint: list[float] | None = None


class Ledger:
    """The ledger file at ``path`` (created on first write)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    # ------------------------------------------------------------------ writing

    @contextlib.contextmanager
    def _locked(self) -> Iterator[int]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)  # closing releases the lock

    @staticmethod
    def _write(fd: int, event: dict[str, Any]) -> None:
        data = (json.dumps(event, separators=(",", ":")) + "\n").encode()
        # A torn line left by a killed writer must not swallow this event.
        size = os.fstat(fd).st_size
        if size:
            os.lseek(fd, size - 1, os.SEEK_SET)
            if os.read(fd, 1) != b"\n":
                data = b"\n" + data
        os.write(fd, data)
        os.fsync(fd)

    def add(self, scenes: Iterable[str], run: str = "") -> None:
        """Register scenes not in the ledger yet as pending."""
        with self._locked() as fd:
            known = fold(_read_fd(fd))
            now = time.time()
            for scene in scenes:
                if scene not in known:
                    self._write(fd, {"event": PENDING, "scene": scene, "run": run, "time": now})
                    known[scene] = SceneRecord(scene)

    def start(self, scene: str, run: str = "", task: str = "") -> int:
        """Record the start of an attempt; return its number (1 for the scene's first)."""
        with self._locked() as fd:
            record = fold(_read_fd(fd)).get(scene, SceneRecord(scene))
            attempt = record.attempts + 1
            self._write(
                fd,
                {
                    "event": "start",
                    "scene": scene,
                    "run": run,
                    "attempt": attempt,
                    "task": task or f"{socket.gethostname()}:{os.getpid()}",
                    "time": time.time(),
                },
            )
            return attempt

    def finish(
        self,
        scene: str,
        ok: bool,
        *,
        run: str = "",
        error: str = "",
        output: str = "",
        footprint: list[float] | None = None,
    ) -> None:
        """Record the end of the scene's current attempt: done (with its output) or failed;
        ``footprint``: the scene's lon/lat extent, where known."""
        event: dict[str, Any] = {"event": DONE if ok else FAILED, "scene": scene, "run": run}
        box = _footprint(footprint)
        if box is not None:  # a malformed one is left out: the scene's end is recorded anyway
            event["footprint"] = box
        if ok:
            event["output"] = output
        else:
            event["error"] = shorten_middle(error, ERROR_CHARS)
        event["time"] = time.time()
        with self._locked() as fd:
            self._write(fd, event)

    # ------------------------------------------------------------------ reading

    def events(self) -> list[dict[str, Any]]:
        """Every complete event in the file (none when there is no file)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        return parse_events(data)

    def records(self) -> dict[str, SceneRecord]:
        """One record per scene, in the order the scenes were first seen."""
        return fold(self.events())

    def todo(self, scenes: Iterable[str]) -> list[str]:
        """The scenes of ``scenes`` not done yet (a re-run processes only these)."""
        records = self.records()
        return [s for s in scenes if s not in records or records[s].state != DONE]


def _read_fd(fd: int) -> list[dict[str, Any]]:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return parse_events(b"".join(chunks))


def json_objects(data: bytes) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSON-lines file's bytes; torn or non-object lines skipped."""
    for line in data.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            yield value


def parse_events(data: bytes) -> list[dict[str, Any]]:
    """The events of a ledger file's bytes; torn or foreign lines are skipped."""
    return [event for event in json_objects(data) if isinstance(event.get("scene"), str)]


def fold(events: Iterable[dict[str, Any]]) -> dict[str, SceneRecord]:
    """Fold events (in file order) into one record per scene."""
    records: dict[str, SceneRecord] = {}
    for event in events:
        scene = event["scene"]
        record = records.setdefault(scene, SceneRecord(scene))
        kind = event.get("event")
        when = event.get("time")
        if kind == "start":
            run = str(event.get("run", ""))
            record.run_attempts = record.run_attempts + 1 if run == record.run else 1
            record.run = run
            record.attempts = int(event.get("attempt", record.attempts + 1))
            record.state, record.started, record.ended, record.seconds = RUNNING, when, None, None
            record.task = str(event.get("task", ""))
            record.error = ""
        elif kind in (DONE, FAILED):
            record.state = str(kind)
            record.ended = when
            if record.started is not None and when is not None:
                record.seconds = round(float(when) - float(record.started), 3)
            if kind == DONE:
                record.output, record.error = str(event.get("output", "")), ""
            else:
                record.error = str(event.get("error", ""))
            record.footprint = _footprint(event.get("footprint")) or record.footprint
    return records


def _footprint(value: Any) -> list[float] | None:
    """A footprint as four numbers (west, south, east, north) in degrees, else None."""
    if not isinstance(value, list | tuple) or len(value) != 4:
        return None
    try:
        box = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    if not all(abs(v) <= 360 for v in box) or box[1] > box[3]:  # NaN fails too
        return None
    return box


def attempt_spans(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every attempt of every scene, in the order they started: scene, run, attempt, task,
    start, end (None while it runs or when its task died) and state."""
    spans: list[dict[str, Any]] = []
    open_span: dict[str, dict[str, Any]] = {}
    for event in events:
        kind, scene, when = event.get("event"), event["scene"], event.get("time")
        if kind == "start":
            span = {
                "scene": scene,
                "run": str(event.get("run", "")),
                "attempt": int(event.get("attempt", 0) or 0),
                "task": str(event.get("task", "")),
                "start": when,
                "end": None,
                "state": RUNNING,
            }
            spans.append(span)
            open_span[scene] = span
        elif kind in (DONE, FAILED) and scene in open_span:
            span = open_span.pop(scene)
            span["end"], span["state"] = when, str(kind)
    return spans


# ---------------------------------------------------------------------- the report


def report(
    records: dict[str, SceneRecord],
    scenes: Iterable[str] | None = None,
    *,
    finished: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    """The report of ``scenes`` (default: every scene of the ledger) as a JSON-able mapping.

    With ``finished`` (every job has ended) a scene still marked running is reported failed:
    its task was killed before it could record a result. ``extra`` keys are added as they are
    (pipeline name, jobs, a failed step); ``ok`` is true only when every scene is done and no
    ``error`` was given."""
    names = list(records) if scenes is None else list(scenes)
    rows = []
    for name in names:
        record = records.get(name, SceneRecord(name))
        row = asdict(record)
        if finished and record.state == RUNNING:
            row["state"], row["error"] = FAILED, INTERRUPTED
        rows.append(row)
    counts = {
        state: sum(r["state"] == state for r in rows) for state in (DONE, FAILED, RUNNING, PENDING)
    }
    return {
        **extra,
        "ok": counts[DONE] == len(rows) and not extra.get("error"),
        "total": len(rows),
        **counts,
        "scenes": rows,
    }


def shorten_middle(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters: its start (an error's exit status and cause)
    and its end (the last message) kept, the middle replaced by " ... "."""
    if len(text) <= width:
        return text
    marker = " ... "
    head = (width - len(marker) + 1) // 2
    tail = width - len(marker) - head
    return text[:head] + marker + (text[-tail:] if tail > 0 else "")


def _when(stamp: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(stamp)) if stamp else "-"


def table(rep: dict[str, Any], width: int = 80) -> str:
    """The report as a plain-text table and a summary line."""
    header = ("scene", "state", "attempts", "started", "seconds", "output / error")
    rows = [
        (
            r["scene"],
            r["state"],
            str(r["attempts"]),
            _when(r["started"]),
            "-" if r["seconds"] is None else f"{r['seconds']:.1f}",
            shorten_middle(
                (r["output"] if r["state"] == DONE else r["error"]).replace("\n", " | "), width
            ),
        )
        for r in rep["scenes"]
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )
    summary = f"{rep['done']} of {rep['total']} scenes done, {rep['failed']} failed"
    if rep["pending"]:
        summary += f", {rep['pending']} not processed"
    if rep.get("error"):
        summary += f"; {rep['error']}"
    lines.append(summary)
    return "\n".join(lines)


# ---------------------------------------------------------------------- on_failure


def notify(
    rep: dict[str, Any], command: str = "", webhook: str = "", timeout: float = 30
) -> list[str]:
    """Hand a report to ``command`` (its JSON on standard input, run by the shell) and/or POST
    it to ``webhook`` (``Content-Type: application/json``). Returns one line per problem."""
    payload = json.dumps(rep).encode()
    problems = []
    if command:
        try:
            proc = subprocess.run(
                ["/bin/sh", "-c", command], input=payload, capture_output=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            problems.append(f"on_failure command {shlex.quote(command)} ran over {timeout:.0f}s")
        else:
            if proc.returncode != 0:
                problems.append(
                    f"on_failure command exited {proc.returncode}: "
                    f"{proc.stderr.decode(errors='replace').strip()[-200:]}"
                )
    if webhook:
        request = urllib.request.Request(
            webhook, data=payload, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read()
        except OSError as exc:
            problems.append(f"on_failure webhook {webhook} failed: {exc}")
    return problems
