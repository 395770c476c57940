"""`eotoolkit run` with `per: scene`: a store per scene, a ledger, failures reported, resumable."""

from __future__ import annotations

import json
from pathlib import Path

import pystac
import yaml

import eotoolkit
from eoshared import ledger
from eotoolkit.cli import main


def test_per_scene_recipe_reports_failures_and_resumes(
    s2_url: str, s2_items: list[pystac.Item], tmp_path: Path
) -> None:
    ids = sorted(item.id for item in s2_items)[:3]
    recipe = {
        "per": "scene",
        "scenes": [*ids, "no-such-item"],
        "retries": 1,
        "source": f"{s2_url}/catalog.json",
        "search": {"ids": ["{scene}"]},
        "bands": ["red"],
        "chunks": {"x": 64, "y": 64},
        "output": "out/{scene}.zarr",
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    report = tmp_path / "report.json"
    # The missing item fails (twice: one retry) without stopping the others.
    assert main(["run", str(path), "--report", str(report)]) == 1
    rep = json.loads(report.read_text())
    assert (rep["done"], rep["failed"]) == (3, 1)
    bad = next(r for r in rep["scenes"] if r["state"] == "failed")
    assert bad["scene"] == "no-such-item" and bad["attempts"] == 2
    assert "no-such-item" in bad["error"] or "No items" in bad["error"], bad["error"]
    for scene in ids:
        assert eotoolkit.open_zarr(str(tmp_path / "out" / f"{scene}.zarr")).sizes["time"] == 1
    # A re-run skips the done scenes and tries only the failed one again.
    recipe["scenes"] = ids
    path.write_text(yaml.safe_dump(recipe))
    assert main(["run", str(path)]) == 0
    records = ledger.Ledger(tmp_path / "ledger.jsonl").records()
    assert {s: records[s].attempts for s in ids} == dict.fromkeys(ids, 1)
    assert records["no-such-item"].attempts == 2
