"""Seams between overlapping tiles and tiles from two UTM zones, checked against numpy/GDAL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.warp import Resampling, reproject

import eotoolkit

from .helpers import item_dict, write_cog

TOP = 5_800_000.0


def _two_tiles(
    tmp_path: Path, serve: Callable[[Path], str]
) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """Tile A (values 1000+) and tile B (5000+) overlapping by 8 columns; A has a nodata strip."""
    a = (1000 + np.arange(40 * 40, dtype=np.uint16).reshape(40, 40) % 997).astype(np.uint16)
    b = (5000 + np.arange(40 * 40, dtype=np.uint16).reshape(40, 40) % 991).astype(np.uint16)
    a[:, 36:] = 0  # last 4 columns of A are nodata (inside the overlap)
    a[5, 33] = 0  # one more nodata pixel inside the overlap
    ta = Affine(10, 0, 300_000, 0, -10, TOP)
    tb = Affine(10, 0, 300_320, 0, -10, TOP)  # starts 8 columns before A ends
    write_cog(tmp_path / "a.tif", a, "EPSG:32631", ta)
    write_cog(tmp_path / "b.tif", b, "EPSG:32631", tb)
    url = serve(tmp_path)
    items = [
        item_dict("A", f"{url}/a.tif", "EPSG:32631", ta, (40, 40), "2024-05-01T10:30:00Z"),
        item_dict("B", f"{url}/b.tif", "EPSG:32631", tb, (40, 40), "2024-05-01T10:30:05Z"),
    ]
    return items, a, b


def test_seam_first_valid_wins(tmp_path: Path, serve: Callable[[Path], str]) -> None:
    items, a, b = _two_tiles(tmp_path, serve)
    ds = eotoolkit.load(items, bands=["B04"], chunks=16)
    got = ds.B04.isel(time=0).values
    assert ds.sizes["time"] == 1 and got.shape == (40, 72)
    expected = np.zeros((40, 72), np.uint16)
    expected[:, 32:72] = b
    expected[:, 0:40] = np.where(a != 0, a, expected[:, 0:40])
    np.testing.assert_array_equal(got, expected)
    # with B acquired earlier, B wins everywhere it has data
    items[1]["properties"]["datetime"] = "2024-05-01T10:29:00Z"
    rev = eotoolkit.load(items, bands=["B04"], chunks=16)
    expected_rev = np.zeros((40, 72), np.uint16)
    expected_rev[:, 0:40] = a
    expected_rev[:, 32:72] = np.where(b != 0, b, expected_rev[:, 32:72])
    np.testing.assert_array_equal(rev.B04.isel(time=0).values, expected_rev)


def test_groupby_time_keeps_items_apart(tmp_path: Path, serve: Callable[[Path], str]) -> None:
    items, a, _ = _two_tiles(tmp_path, serve)
    ds = eotoolkit.load(items, bands=["B04"], groupby="time", chunks=32)
    assert ds.sizes["time"] == 2
    np.testing.assert_array_equal(ds.B04.isel(time=0).values[:, :40], a)


def test_two_utm_zones_on_one_grid(tmp_path: Path, serve: Callable[[Path], str]) -> None:
    """Tiles either side of the 6E zone border, loaded onto the 31N grid at 20 m."""
    yy, xx = np.mgrid[0:60, 0:60]
    west = (100 + xx + 3 * yy).astype(np.uint16)
    east = (2000 + 2 * xx + yy).astype(np.uint16)
    tw = Affine(10, 0, 830_000, 0, -10, 5_500_000)  # EPSG:32631, just west of 6E
    te = Affine(10, 0, 264_000, 0, -10, 5_500_000)  # EPSG:32632, just east of 6E
    write_cog(tmp_path / "w.tif", west, "EPSG:32631", tw)
    write_cog(tmp_path / "e.tif", east, "EPSG:32632", te)
    url = serve(tmp_path)
    items = [
        item_dict("W", f"{url}/w.tif", "EPSG:32631", tw, (60, 60), "2024-05-01T10:30:00Z"),
        item_dict("E", f"{url}/e.tif", "EPSG:32632", te, (60, 60), "2024-05-01T10:30:05Z"),
    ]
    ds = eotoolkit.load(items, bands=["B04"], crs="EPSG:32631", resolution=20, chunks=32)
    assert ds.rio.crs.to_epsg() == 32631
    got = ds.B04.isel(time=0).values
    # independent computation: GDAL reproject of each file onto the same grid, west first
    transform = ds.rio.transform()
    expected = np.zeros(got.shape, np.uint16)
    for name in ("e.tif", "w.tif"):
        dst = np.zeros(got.shape, np.uint16)
        with rasterio.open(tmp_path / name) as src:
            reproject(
                rasterio.band(src, 1),
                dst,
                dst_transform=transform,
                dst_crs="EPSG:32631",
                resampling=Resampling.nearest,
                src_nodata=0,
                dst_nodata=0,
            )
        expected = np.where(dst != 0, dst, expected)
    valid = expected != 0
    assert valid.sum() > 1000 and (got != 0).sum() > 1000
    assert ((got == expected) | ~valid).mean() > 0.99
    # both zones contribute
    assert (got >= 2000).sum() > 300 and ((got > 0) & (got < 2000)).sum() > 300
    utm = eotoolkit.load(items, bands=["B04"], crs="utm", resolution=20)
    assert utm.rio.crs.to_epsg() in (32631, 32632)
