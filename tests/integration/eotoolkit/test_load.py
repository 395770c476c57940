"""load() over HTTP (GDAL /vsicurl/) checked against direct rasterio reads of the same files."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio

import eotoolkit
from tests.support.s2_collection import DATES, expected_mosaic, tile_dirs


def test_load_mosaics_tiles_over_http(s2_items: list[pystac.Item], s2_root: Path) -> None:
    assert all(it.assets["B04"].get_absolute_href().startswith("http") for it in s2_items)
    ds = eotoolkit.load(s2_items, bands=["red", "nir", "scl"], chunks={"x": 64, "y": 64})
    assert ds.sizes["time"] == DATES
    assert ds.red.dtype == np.float32 and ds.scl.dtype == np.uint8
    assert ds.rio.crs.to_epsg() == 32631 and "spatial_ref" in ds.coords
    assert ds.red.chunks[1][0] == 64
    for t in range(DATES):
        red = ds.red.isel(time=t).values
        np.testing.assert_allclose(red, expected_mosaic(s2_root, "B04", t, True), rtol=1e-6)
        nir = ds.nir.isel(time=t).values
        np.testing.assert_allclose(nir, expected_mosaic(s2_root, "B08", t, True), rtol=1e-6)
        np.testing.assert_array_equal(
            ds.scl.isel(time=t).values, expected_mosaic(s2_root, "SCL", t, False)
        )
    # date 1 has swath-edge nodata in the first tile's overlap: filled by the second tile
    assert not np.isnan(ds.red.isel(time=1).values).any()


def test_baseline_offset_and_raw_dtype(s2_items: list[pystac.Item], s2_root: Path) -> None:
    raw = eotoolkit.load(s2_items, bands=["B04"], dtype="uint16", chunks=64)
    assert raw.B04.dtype == np.uint16
    np.testing.assert_array_equal(
        raw.B04.isel(time=0).values, expected_mosaic(s2_root, "B04", 0, False)
    )
    for it in s2_items:
        it.properties["s2:processing_baseline"] = "03.00"
    old = eotoolkit.load(s2_items, bands=["B04"], chunks=64).B04.isel(time=0).values
    dn = expected_mosaic(s2_root, "B04", 0, False)
    expected = np.where(dn == 0, np.nan, dn.astype(np.float32) * np.float32(0.0001))
    np.testing.assert_allclose(old, expected, rtol=1e-6)


def test_bbox_subset_and_utm(s2_items: list[pystac.Item], s2_root: Path) -> None:
    full = eotoolkit.load(s2_items, bands=["red"], chunks=64)
    b = np.asarray([it.bbox for it in s2_items])
    x0, y0, x1, y1 = b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()
    dx, dy = (x1 - x0) / 4, (y1 - y0) / 4
    bbox = (x0 + dx, y0 + dy, x1 - dx, y1 - dy)
    part = eotoolkit.load(s2_items, bands=["red"], bbox=bbox, crs="utm", chunks=32)
    assert part.rio.crs.to_epsg() == 32631
    assert 0 < part.sizes["x"] < full.sizes["x"] and 0 < part.sizes["y"] < full.sizes["y"]
    same = full.sel(x=part.x, y=part.y)
    np.testing.assert_array_equal(part.red.values, same.red.values)


def test_downsampling_reads_overviews(s2_items: list[pystac.Item], s2_root: Path) -> None:
    one_date = [it for it in s2_items if it.datetime == min(i.datetime for i in s2_items)]
    ds = eotoolkit.load(one_date[:1], bands=["B04"], resolution=20, dtype="uint16", chunks=64)
    path = tile_dirs(s2_root, 0)[0] / "B04.tif"
    with rasterio.open(path, overview_level=0) as ovr:  # factor 2: 20 m
        expected = ovr.read(1)
    with rasterio.open(path) as src:
        decimated = src.read(1)[1::2, 1::2]
    got = ds.B04.isel(time=0).values
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    assert not np.array_equal(got, decimated)  # full-resolution nearest would give these


def test_load_on_distributed_cluster(s2_items: list[pystac.Item], tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    local = eotoolkit.load(s2_items, bands=["red", "nir", "scl"], chunks=64)
    ndvi_local = eotoolkit.index(eotoolkit.mask_clouds(local), "NDVI").compute()
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster),
    ):
        ds = eotoolkit.load(s2_items, bands=["red", "nir", "scl"], chunks=64)
        ndvi = eotoolkit.index(eotoolkit.mask_clouds(ds), "NDVI")
        eotoolkit.to_zarr(eotoolkit.composite(ndvi, stat="max"), str(tmp_path / "max.zarr"))
        ndvi = ndvi.compute()
    np.testing.assert_array_equal(ndvi.values, ndvi_local.values)
    assert np.isfinite(ndvi.values).mean() > 0.2
    stored = eotoolkit.open_zarr(str(tmp_path / "max.zarr"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.nanmax(ndvi_local.values, axis=0)
    np.testing.assert_array_equal(stored.NDVI.values[0], expected)
