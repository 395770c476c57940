"""Nearest onto a grid in another CRS takes, for every output pixel, the source pixel GDAL's
warper with an exact coordinate transformation takes: real COGs in UTM zones, LAEA Europe, polar
stereographic and geographic coordinates (the antimeridian among them), read onto grids of
another CRS at finer and coarser pixels than the source's, in chunks of up to 700 pixels (where
the positions are interpolated from a lattice), compared pixel by pixel and mask by mask with
``_warp._warp_exact`` on the same file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyproj
import pytest
import rasterio
from affine import Affine
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from rasterio.enums import Resampling

from eotoolkit import _nearest, _warp
from eotoolkit._plan import ChunkRead

from .helpers import write_cog

#: Source CRS, a point inside it (lon, lat), target CRSs there.
PLACES = [
    ("EPSG:32633", (15.2, 48.1), ["EPSG:3035", "EPSG:4326", "EPSG:32634", "EPSG:3857"]),
    ("EPSG:3035", (10.0, 52.0), ["EPSG:32632", "EPSG:4326"]),
    ("EPSG:32634", (21.0, 78.6), ["EPSG:3413", "EPSG:4326", "EPSG:32635"]),
    ("EPSG:3031", (-62.0, -74.5), ["EPSG:32720", "EPSG:4326"]),
    ("EPSG:32660", (179.6, 52.0), ["EPSG:32601", "EPSG:4326"]),
    ("EPSG:4326", (15.2, 48.1), ["EPSG:32633", "EPSG:3035"]),
]


@st.composite
def reads(draw: Any) -> dict[str, Any]:
    src_crs, lonlat, targets = draw(st.sampled_from(PLACES))
    geographic = src_crs == "EPSG:4326"
    return {
        "src_crs": src_crs,
        "lonlat": lonlat,
        "dst_crs": draw(st.sampled_from(targets)),
        "src_res": draw(st.sampled_from([0.0001, 0.0002] if geographic else [10.0, 20.0])),
        "size": draw(st.integers(300, 700)),
        "scale": draw(st.sampled_from([0.4, 1.0, 1.7, 3.0])),  # output pixel / source pixel
        "chunk": draw(st.integers(60, 700)),
        "offset": (draw(st.floats(0.0, 0.5)), draw(st.floats(0.0, 0.5))),
        "nodata": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**16)),
    }


def _source(case: dict[str, Any], root: Path) -> tuple[Path, Affine]:
    x, y = pyproj.Transformer.from_crs("EPSG:4326", case["src_crs"], always_xy=True).transform(
        *case["lonlat"]
    )
    n, res = case["size"], case["src_res"]
    t = Affine(res, 0, x - n * res / 2, 0, -res, y + n * res / 2)
    rng = np.random.default_rng(case["seed"])
    data = rng.integers(1, 60000, (n, n)).astype("uint16")
    data[rng.random((n, n)) < 0.05] = 0  # scattered nodata (or zeros without nodata)
    path = root / "src.tif"
    write_cog(path, data, case["src_crs"], t, 0 if case["nodata"] else None, overviews=False)
    return path, t


def _request(case: dict[str, Any], src: rasterio.DatasetReader) -> ChunkRead:
    """A chunk over part of the source, its pixels ``scale`` times the source's."""
    left, bottom, right, top = rasterio.warp.transform_bounds(
        src.crs, case["dst_crs"], *src.bounds, densify_pts=21
    )
    to_dst = pyproj.Transformer.from_crs(src.crs, case["dst_crs"], always_xy=True)
    cx, cy = src.width / 2, src.height / 2
    (x0, x1), (y0, y1) = to_dst.transform(
        [src.xy(cy, cx)[0], src.xy(cy, cx + 1)[0]], [src.xy(cy, cx)[1], src.xy(cy, cx + 1)[1]]
    )
    res = float(np.hypot(x1 - x0, y1 - y0)) * case["scale"]
    ox, oy = case["offset"]
    c = left + (right - left) * ox * 0.4
    f = top - (top - bottom) * oy * 0.4
    w = min(case["chunk"], int((right - c) / res) + 2)
    h = min(case["chunk"], int((f - bottom) / res) + 2)
    return ChunkRead(
        transform=(res, 0.0, c, 0.0, -res, f), shape=(h, w), crs=case["dst_crs"], sources=(),
        dtype="uint16", fill=0, scaled=False, resampling="nearest", fail_on_error=True,
    )  # fmt: skip


@example(  # PROJ 9.5 and GDAL's PROJ 9.7 put this pixel's centre either side of a row edge
    case={"src_crs": "EPSG:4326", "lonlat": (15.2, 48.1), "dst_crs": "EPSG:3035",
          "src_res": 0.0001, "size": 300, "scale": 0.4, "chunk": 299, "offset": (0.0, 0.0),
          "nodata": False, "seed": 0}
)  # fmt: skip
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=reads())
def test_nearest_is_the_exact_warps(case: dict[str, Any], tmp_path_factory: Any) -> None:
    root = tmp_path_factory.mktemp("nearest")
    path, _ = _source(case, root)
    nodata = 0 if case["nodata"] else None
    with rasterio.open(path) as src:
        req = _request(case, src)
        exact = _warp._gdal_transform(_warp._target_crs(req), _warp._wrapped_crs(src, req.crs))
        pixels = _nearest.source_pixels(Affine(*req.transform), req.shape, exact, src)
        assume(pixels is not None)  # left to GDAL's warper
        got = _nearest.read_pixels(src, req.shape, pixels, nodata)
        want, want_valid = _warp._warp_exact(src, req, Resampling.nearest, nodata)
    if want_valid is None:
        want_valid = want != nodata
    if got is None:
        assert not want_valid.any(), f"GDAL finds source pixels, the read none ({case})"
        return
    values, valid = got
    if valid is None:
        valid = values != nodata
    flips = valid != want_valid
    assert not flips.any(), f"{int(flips.sum())} of {valid.size} pixels differ in validity ({case})"
    bad = values[valid] != want[valid]
    assert not bad.any(), f"{int(bad.sum())} of {int(valid.sum())} pixels differ ({case})"


@pytest.mark.parametrize(
    ("dst_crs", "src_crs", "dst", "src"),
    [
        # 10 m UTM under 0.0001 degree pixels: the first lattice is too coarse, a finer one does
        ("EPSG:4326", "EPSG:32633", Affine(1e-4, 0, 15.0, 0, -1e-4, 48.5),
         Affine(10, 0, 500000, 0, -10, 5400000)),
        # 100 m LAEA pixels over 10 m UTM: 7 pixels between lattice points
        ("EPSG:3035", "EPSG:32633", Affine(100, 0, 4.6e6, 0, -100, 2.85e6),
         Affine(10, 0, 400000, 0, -10, 5400000)),
        # polar stereographic 30 m over UTM 34 in the Arctic
        ("EPSG:3413", "EPSG:32634", Affine(30, 0, 1.0e6, 0, -30, -1.0e6),
         Affine(30, 0, 400000, 0, -30, 8700000)),
    ],
)  # fmt: skip
def test_positions_fall_in_the_exact_positions_pixels(
    dst_crs: str, src_crs: str, dst: Affine, src: Affine
) -> None:
    exact = _warp._gdal_transform(_warp._rio_crs(dst_crs), _warp._rio_crs(src_crs))
    shape = (700, 600)
    got = _nearest.source_positions(dst, shape, exact, src)
    assert got is not None
    x, y = got
    ex, ey = _nearest._Positions(dst, exact, src).exact(
        *(a.ravel().astype(float) for a in np.indices(shape))
    )
    assert np.array_equal(np.floor(x + 1e-10), np.floor(ex + 1e-10))
    assert np.array_equal(np.floor(y + 1e-10), np.floor(ey + 1e-10))
    # away from pixel edges a position is interpolated, within the error the lattice accepts
    assert np.abs(x - ex).max() <= _nearest.EDGE_MARGIN
    assert np.abs(y - ey).max() <= _nearest.EDGE_MARGIN
    assert (x != ex).mean() > 0.9


def test_too_curved_for_any_lattice_is_left_to_gdal() -> None:
    """0.001 degree pixels near the antimeridian over 10 m UTM zone 60 pixels: no lattice down
    to the finest keeps the error within the margin's share."""
    exact = _warp._gdal_transform(_warp._rio_crs("EPSG:4326"), _warp._rio_crs("EPSG:32660"))
    dst = Affine(1e-3, 0, 179.5, 0, -1e-3, 52.5)
    src = Affine(10, 0, 600000, 0, -10, 5800000)
    assert _nearest.source_positions(dst, (300, 300), exact, src) is None
