"""Pixel-by-pixel comparison of the workload's Zarr outputs."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

#: Differences up to this many float32 ulps of the value are counted as rounding.
ULPS = 4


def _load(store: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    import xarray as xr

    with xr.open_zarr(store) as ds:
        name = next(iter(ds.data_vars))
        var = ds[name]
        coords = {k: np.asarray(var[k].values) for k in ("time", "y", "x")}
        return np.asarray(var.transpose("time", "y", "x").values, np.float32), coords


def pair(a: np.ndarray, b: np.ndarray, seam_cols: np.ndarray | None = None) -> dict[str, Any]:
    """Counts and sizes of the differences between two equally shaped arrays (NaN == NaN)."""
    both_nan = np.isnan(a) & np.isnan(b)
    one_nan = np.isnan(a) ^ np.isnan(b)
    with np.errstate(invalid="ignore"):
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    diff[both_nan | one_nan] = 0.0
    differ = (diff > 0) | one_nan
    ulp = np.spacing(np.maximum(np.abs(np.nan_to_num(a)), np.abs(np.nan_to_num(b))))
    rounding = (diff > 0) & (diff <= ULPS * ulp)
    out: dict[str, Any] = {
        "pixels": int(a.size),
        "differing": int(differ.sum()),
        "nan_mismatch": int(one_nan.sum()),
        "rounding_only": int(rounding.sum()),
        "max_abs_diff": float(diff.max()) if diff.size else 0.0,
    }
    if seam_cols is not None and differ.any():
        cols = np.nonzero(differ)[2]
        out["in_tile_overlap"] = int(np.isin(cols, seam_cols).sum())
    return out


def compare(stores: dict[str, Path], overlap_x: tuple[float, float] | None = None) -> dict:
    """Compare every pair of stores; ``overlap_x`` is the x range where the tiles overlap."""
    data, coords = {}, {}
    for name, store in stores.items():
        if store.exists():
            data[name], coords[name] = _load(store)
    results: dict[str, Any] = {}
    for x, y in combinations(data, 2):
        key = f"{x}~{y}"
        if data[x].shape != data[y].shape or any(
            not np.array_equal(coords[x][c], coords[y][c]) for c in ("time", "y", "x")
        ):
            results[key] = {"error": f"grids differ: {data[x].shape} vs {data[y].shape}"}
            continue
        seam = None
        if overlap_x is not None:
            xs = coords[x]["x"]
            seam = np.nonzero((xs >= overlap_x[0] - 40) & (xs <= overlap_x[1] + 40))[0]
        results[key] = pair(data[x], data[y], seam)
    return results
