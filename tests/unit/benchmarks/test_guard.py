"""The speed guard's command line and its summary arithmetic (it times nothing here)."""

from __future__ import annotations

import pytest

from benchmarks import guard


def test_defaults_and_refusals() -> None:
    a = guard.parse_args([])
    assert (a.base, a.rounds, a.items) == (None, 3, 20000)
    a = guard.parse_args(["--base", "1ed9693", "--rounds", "5", "--items", "100000"])
    assert (a.base, a.rounds, a.items) == ("1ed9693", 5, 100000)
    for bad in (["--rounds", "0"], ["--items", "-3"], ["--rounds", "two"]):
        with pytest.raises(SystemExit):
            guard.parse_args(bad)


def test_medians_ratio_and_flag() -> None:
    runs = {
        ("w", "base"): [4.0, 6.0, 5.0],
        ("w", "tree"): [2.0, 3.0, 2.5],
        ("items", "base"): [1.0, 1.0],
        ("items", "tree"): [1.2, 1.3],
        ("lonely", "base"): [1.0],
    }
    rows = guard.summarise(runs, {"w": "CPU s"})
    assert [r.figure for r in rows] == ["w", "items"]
    w, items = rows
    assert (w.base, w.tree, w.ratio, w.unit) == (5.0, 2.5, 0.5, "CPU s")
    assert w.base_runs == (4.0, 6.0, 5.0)
    assert items.ratio == pytest.approx(1.25)
    text = guard.format_rows(rows)
    assert "0.50x" in text and "<- slower" in text.splitlines()[2]
    assert "<- slower" not in text.splitlines()[1]
