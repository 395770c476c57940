"""A pipeline run's report page in headless Chromium: table, timeline and map drawn, nothing
fetched.

The run's ledger is written by the pipeline's own array-task code (``launcher.pipeline.task``)
processing real GeoTIFF scenes in two UTM zones (one corrupt, failing twice), the steps' events
as the job script writes them, and the page rendered as the launcher renders it after a run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from eoshared import ledger
from launcher.pipeline import html_report, task
from launcher.pipeline.run import step_events
from launcher.pipeline.spec import Pipeline

pytestmark = [pytest.mark.browser]

#: (scene, EPSG, west, north): 3 km tiles in UTM 32N and 33N.
SCENES = [
    ("T32-a.tif", 32632, 600_000, 5_300_000),
    ("T32-b.tif", 32632, 603_000, 5_300_000),
    ("T33-a.tif", 32633, 300_000, 5_300_000),
    ("T33-b.tif", 32633, 303_000, 5_297_000),
]
CORRUPT = "broken.tif"


def _write_scenes(input_dir: Path) -> None:
    input_dir.mkdir(parents=True)
    for name, epsg, west, north in SCENES:
        with rasterio.open(
            input_dir / name, "w", driver="GTiff", width=100, height=100, count=1,
            dtype="uint16", crs=f"EPSG:{epsg}", transform=from_origin(west, north, 30, 30),
        ) as dst:  # fmt: skip
            dst.write(np.full((1, 100, 100), 7, np.uint16))
    (input_dir / CORRUPT).write_bytes(b"not a tiff")


def _report(tmp_path: Path) -> dict[str, Any]:
    """Process the scenes with the pipeline's task code; the report the launcher makes."""
    workdir = tmp_path / "work"
    _write_scenes(workdir / "input")
    run_dir = tmp_path / "run-1"
    run_dir.mkdir()
    names = [s[0] for s in SCENES] + [CORRUPT]
    pipe = Pipeline(
        name="footprints",
        command='python -c "import rasterio, sys; rasterio.open(sys.argv[1])" {input}/{scene}',
        workdir=str(workdir),
        scenes=names,
        retries=1,
    )
    (run_dir / task.PIPELINE_JSON).write_text(json.dumps(pipe.to_json()))
    (run_dir / task.SCENES_TXT).write_text("\n".join(names) + "\n")
    started = time.time()
    steps = [
        {"step": "stage_in", "job": "11", "event": "start", "status": None, "time": started},
        {"step": "stage_in", "job": "11", "event": "end", "status": 0, "time": time.time()},
    ]
    assert task.process(run_dir, 0, tasks=1) == 0  # one task taking every scene in turn
    steps += [
        {"step": "stage_out", "job": "13", "event": "start", "status": None, "time": time.time()},
        {"step": "stage_out", "job": "13", "event": "end", "status": 0, "time": time.time()},
    ]
    events = ledger.Ledger(workdir / ledger.LEDGER_NAME).events()
    raw = b"\n".join(json.dumps(e).encode() for e in steps) + b"\n{torn"
    return ledger.report(
        ledger.fold(events), names, pipeline="footprints", run="run-1", site="rig",
        attempts=ledger.attempt_spans(events), steps=step_events(raw),
    )  # fmt: skip


def test_report_page_draws_table_timeline_and_map_offline(
    browser_context: Any, artifacts_dir: Path, tmp_path: Path
) -> None:
    rep = _report(tmp_path)
    assert rep["done"] == 4 and rep["failed"] == 1
    assert sum(1 for r in rep["scenes"] if r["footprint"]) == 4  # the corrupt one has none
    page_file = tmp_path / "report.html"
    page_file.write_text(html_report.render(rep))
    page = browser_context.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    try:
        page.goto(page_file.as_uri())
        assert page.locator("#scenes tr").count() == 1 + 5
        assert page.locator("#failures tr").count() == 1 + 1  # the corrupt scene and its cause
        assert "not recognized as being in a supported" in page.locator("#failures").inner_text()
        # stage-in, 4 + 2 attempts, stage-out
        bars = page.locator("#timeline-svg rect.bar")
        assert bars.count() == 8
        assert page.locator("#timeline-svg rect.bar.failed").count() == 2
        footprints = page.locator("#map-svg rect.footprint.done")
        assert footprints.count() == 4
        boxes = [footprints.nth(i).bounding_box() for i in range(4)]
        assert all(b and b["width"] > 5 and b["height"] > 5 for b in boxes), boxes
        # the two zones' tiles lie apart on the map: west and east groups
        xs = sorted(b["x"] for b in boxes if b)
        assert xs[2] - xs[1] > xs[1] - xs[0]
        shot = artifacts_dir / "pipeline-report.png"
        page.screenshot(path=str(shot), full_page=True)
    finally:
        page.close()
    assert requests == [page_file.as_uri()], requests
    pixels = _colours(shot)
    for colour in html_report.COLOURS[ledger.DONE], html_report.COLOURS[ledger.FAILED]:
        assert pixels.get(colour, 0) > 50, (colour, sorted(pixels.items())[:5])


def _colours(png: Path) -> dict[str, int]:
    """How many pixels of the screenshot have each exact colour (as #rrggbb)."""
    with rasterio.open(png) as src:
        rgb = src.read()[:3].reshape(3, -1).T
    values, counts = np.unique(rgb, axis=0, return_counts=True)
    return {
        "#" + "".join(f"{int(c):02x}" for c in v): int(n)
        for v, n in zip(values, counts, strict=True)
    }
