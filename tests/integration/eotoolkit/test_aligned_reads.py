"""A grid in the tiles' CRS whose pixels are whole multiples of theirs, edges on theirs, is read
as a window of the tiles' pixels (nearest: every k-th pixel; average: an overview's own pixels)
instead of warped: the pixels and the valid mask are the warp's, bit for bit, in any chunking.

Each case writes real COGs (with or without overviews, several types, with and without nodata,
coordinates from a UTM zone, LAEA Europe and polar stereographic, pixels from 0.5 m to 20 m),
loads them once as ``load`` does and once with the aligned read switched off, and compares.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from affine import Affine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rasterio.io import MemoryFile

import eotoolkit as eo
from eotoolkit import _reader, _warp

from .helpers import item_dict

#: A projected CRS (x does not wrap) and a point far from its origin, so that the rounding of
#: large coordinates is part of every case.
ORIGINS = {"EPSG:32631": (400020.0, 5800020.0), "EPSG:3035": (4321000.0, 3210000.0),
           "EPSG:3413": (-2000040.0, 600000.0)}  # fmt: skip
NODATA = {"uint8": 255, "uint16": 0, "int16": -9999, "int32": -9999, "float32": -9999.0}


def _write(path: Path, data: np.ndarray, crs: str, t: Affine, nodata: Any, ovr: bool) -> None:
    profile = {
        "driver": "GTiff", "width": data.shape[1], "height": data.shape[0], "count": 1,
        "dtype": data.dtype.name, "crs": crs, "transform": t, "nodata": nodata,
    }  # fmt: skip
    with MemoryFile() as mem, mem.open(**profile) as tmp:
        tmp.write(data, 1)
        extra = {} if ovr else {"overviews": "NONE"}
        rasterio.shutil.copy(tmp, path, driver="COG", blocksize=128, compress="DEFLATE", **extra)


@st.composite
def aligned_cases(draw: Any) -> dict[str, Any]:
    crs = draw(st.sampled_from(sorted(ORIGINS)))
    res = draw(st.sampled_from([0.5, 10.0, 20.0]))
    method = draw(st.sampled_from(["nearest", "average"]))
    factor = draw(st.sampled_from([1, 2, 3, 4] if method == "nearest" else [2, 4]))
    overviews = draw(st.booleans()) if method == "nearest" else True
    sizes = st.integers(129, 260) if overviews else st.integers(9, 70)  # COG overviews: >128 px
    return {
        "crs": crs, "res": res, "method": method, "factor": factor,
        "shape": (draw(sizes), draw(sizes)),
        "dtype": draw(st.sampled_from(sorted(NODATA))), "nodata": draw(st.booleans()),
        "overviews": overviews,
        "tiles": draw(st.integers(1, 2)),
        # the tiles' edges from the grid's, in the tiles' pixels (0: on the grid's own edges)
        "offset": (draw(st.integers(-3, 3)), draw(st.integers(-3, 3))),
        "chunks": draw(st.sampled_from([None, 7, 16])), "seed": draw(st.integers(0, 2**16)),
    }  # fmt: skip


def _items(case: dict[str, Any], root: Path) -> list[dict]:
    rng = np.random.default_rng(case["seed"])
    x0, y0 = ORIGINS[case["crs"]]
    res, k = case["res"], case["factor"]
    h, w = case["shape"]
    nd = NODATA[case["dtype"]] if case["nodata"] else None
    items = []
    for n in range(case["tiles"]):
        left = x0 + case["offset"][0] * res + n * (w // 2) * res
        top = y0 - case["offset"][1] * res - n * (h // 3) * res
        t = Affine(res, 0, left - left % (k * res), 0, -res, top - top % (k * res))
        t = Affine(res, 0, t.c + case["offset"][0] * res, 0, -res, t.f - case["offset"][1] * res)
        if case["dtype"] == "float32":
            data = rng.uniform(-50, 400, (h, w)).astype("float32")
        else:
            lo = -500 if case["dtype"].startswith("int") else 1
            hi = 250 if case["dtype"] == "uint8" else 3000
            data = rng.integers(lo, hi, (h, w)).astype(case["dtype"])
        if nd is not None:
            data[h // 4 : h // 2, w // 3 : w // 2] = nd
        path = root / f"t{n}.tif"
        _write(path, data, case["crs"], t, nd, case["overviews"])
        items.append(
            item_dict(f"t{n}", str(path), case["crs"], t, (h, w), "2024-05-01T10:00:00Z",
                      dtype=case["dtype"], nodata=nd)
        )  # fmt: skip
    return items


def _load(items: list[dict], case: dict[str, Any]) -> np.ndarray:
    ds = eo.load(
        items, bands=["B04"], resolution=case["res"] * case["factor"], crs=case["crs"],
        resampling=case["method"], chunks=case["chunks"], dtype=case["dtype"],
    )  # fmt: skip
    return ds["B04"].values


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(aligned_cases())
def test_aligned_read_is_the_warp(tmp_path_factory: Any, case: dict[str, Any]) -> None:
    root = tmp_path_factory.mktemp("aligned")
    items = _items(case, root)
    taken: list[Any] = []
    real = _warp._read_aligned

    def counted(*args: Any, **kwargs: Any) -> Any:
        taken.append(args[2])
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_warp, "_read_aligned", counted)
        got = _load(items, case)
    _reader.clear_cache()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_warp, "_aligned_steps", lambda *a, **k: None)
        want = _load(items, case)
    _reader.clear_cache()
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want, err_msg=str(case))
    short = case["dtype"] in ("uint8", "uint16", "int16")
    if case["method"] == "nearest" and not case["overviews"] and case["factor"] > 1:
        assert taken, f"no aligned read: {case}"
    h, w = case["shape"]
    with rasterio.open(items[0]["assets"]["B04"]["href"]) as src:
        level = case["factor"] in src.overviews(1) and h % case["factor"] == w % case["factor"] == 0
    if case["method"] == "average" and short and case["offset"] == (0, 0) and level:
        assert taken, f"no aligned read: {case}"
    if case["method"] == "average" and not short:
        assert not taken


def test_a_grid_off_the_pixels_is_warped(tmp_path: Path) -> None:
    """Half a pixel off, or not a whole multiple: warped, never read as a window."""
    case = {
        "crs": "EPSG:32631", "res": 10.0, "method": "nearest", "factor": 2, "shape": (40, 40),
        "dtype": "uint16", "nodata": True, "overviews": False, "tiles": 1, "offset": (0, 0),
        "chunks": None, "seed": 1,
    }  # fmt: skip
    items = _items(case, tmp_path)
    t = items[0]["assets"]["B04"]["proj:transform"]
    with rasterio.open(items[0]["assets"]["B04"]["href"]) as src:
        grid = (20.0, 0.0, t[2], 0.0, -20.0, t[5])
        shift = _warp.TIE_SHIFT * 10
        assert _warp._aligned_steps(src, grid, (20, 20), _warp.Resampling.nearest, shift)
        half = (20.0, 0.0, t[2] + 5.0, 0.0, -20.0, t[5])
        assert not _warp._aligned_steps(src, half, (20, 20), _warp.Resampling.nearest, shift)
        odd = (15.0, 0.0, t[2], 0.0, -15.0, t[5])
        assert not _warp._aligned_steps(src, odd, (20, 20), _warp.Resampling.nearest, shift)
        tiny = (20.0, 0.0, t[2] + 1e-5, 0.0, -20.0, t[5])  # a tie shift's size off
        assert not _warp._aligned_steps(src, tiny, (20, 20), _warp.Resampling.nearest, shift)
        assert not _warp._aligned_steps(src, grid, (20, 20), _warp.Resampling.bilinear, shift)
        assert not _warp._aligned_steps(src, grid, (20, 20), _warp.Resampling.average, shift)
