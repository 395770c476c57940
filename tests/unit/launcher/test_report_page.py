"""The report page's parts: footprints and attempts in the ledger, the page's text and its
refusal to load anything (the page in a browser: tests/browser/test_pipeline_report.py)."""

from __future__ import annotations

import re
from pathlib import Path

from eoshared import ledger
from launcher.pipeline import html_report, task
from launcher.pipeline.run import step_events


def _ledger(tmp_path: Path) -> ledger.Ledger:
    book = ledger.Ledger(tmp_path / "ledger.jsonl")
    book.add(["a", "b"], run="r1")
    book.start("a", run="r1", task="n1:1")
    book.finish("a", True, run="r1", output="/out/a", footprint=[10.0, 45.0, 10.5, 45.5])
    book.start("b", run="r1", task="n1:2")
    book.finish("b", False, run="r1", error="exit status 3: bad")
    book.start("b", run="r2", task="n2:1")
    book.finish("b", True, run="r2", output="/out/b", footprint=["x", 1, 2, 3])  # type: ignore[list-item]
    return book


def test_footprints_kept_and_bad_ones_dropped(tmp_path: Path) -> None:
    records = _ledger(tmp_path).records()
    assert records["a"].footprint == [10.0, 45.0, 10.5, 45.5]
    assert records["b"].footprint is None  # not four numbers: not drawn


def test_attempt_spans_name_their_run_and_end(tmp_path: Path) -> None:
    spans = ledger.attempt_spans(_ledger(tmp_path).events())
    assert [(s["scene"], s["run"], s["attempt"], s["state"]) for s in spans] == [
        ("a", "r1", 1, "done"), ("b", "r1", 1, "failed"), ("b", "r2", 2, "done"),
    ]  # fmt: skip
    assert all(s["end"] >= s["start"] for s in spans)


def test_a_task_that_died_leaves_an_open_attempt(tmp_path: Path) -> None:
    book = ledger.Ledger(tmp_path / "ledger.jsonl")
    book.start("c", run="r1")
    (span,) = ledger.attempt_spans(book.events())
    assert span["end"] is None and span["state"] == ledger.RUNNING


def test_step_events_skip_torn_and_foreign_lines() -> None:
    raw = b'{"step":"stage_in","event":"start","time":1.5}\n{torn\n["x"]\n{"step":"s","time":"x"}\n'
    assert step_events(raw) == [{"step": "stage_in", "event": "start", "time": 1.5}]


def test_page_escapes_what_it_shows_and_loads_nothing(tmp_path: Path) -> None:
    records = _ledger(tmp_path).records()
    records["<script>alert(1)</script>"] = ledger.SceneRecord(
        "<script>alert(1)</script>", state=ledger.FAILED, error="<img src=x onerror=y>"
    )
    rep = ledger.report(records, pipeline="p<b>", run="r2", site="s")
    page = html_report.render(rep)
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "default-src 'none'" in page
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)


def test_page_without_times_or_footprints_says_so() -> None:
    rep = ledger.report({"a": ledger.SceneRecord("a")}, finished=False, pipeline="p", run="r")
    page = html_report.render(rep)
    assert "no times recorded" in page and 'id="map"' not in page


def test_footprint_of_a_file_that_is_not_a_raster_is_none(tmp_path: Path) -> None:
    text = tmp_path / "scene.txt"
    text.write_text("DATA")
    assert task.footprint(text) is None
    assert task.footprint(tmp_path / "missing.tif") is None
    assert task.footprint(tmp_path) is None  # a directory scene
