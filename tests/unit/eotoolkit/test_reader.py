"""The chunk reader: GDAL cache bounds and the first-valid mosaic in the sources' dtype."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.env import get_gdal_config
from rasterio.transform import from_origin

from eotoolkit import _reader
from eotoolkit._items import Source
from eotoolkit._reader import ChunkRead, gdal_cache_bytes, read_chunk

CRS = "EPSG:32631"
RES = 10.0


def _tif(path: Path, data: np.ndarray, left: float, top: float, nodata: float | None) -> str:
    """A single-band GeoTIFF of ``data`` with its top-left corner at (left, top)."""
    profile = {
        "driver": "GTiff",
        "height": data.shape[0],
        "width": data.shape[1],
        "count": 1,
        "dtype": data.dtype.name,
        "crs": CRS,
        "transform": from_origin(left, top, RES, RES),
        "nodata": nodata,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    return str(path)


def _request(sources: tuple[Source, ...], dtype: str, fill: float, scaled: bool) -> ChunkRead:
    """A 4 x 6 chunk at 10 m with its top-left corner at (0, 40)."""
    return ChunkRead(
        transform=(RES, 0.0, 0.0, 0.0, -RES, 40.0),
        shape=(4, 6),
        crs=CRS,
        sources=sources,
        dtype=dtype,
        fill=fill,
        scaled=scaled,
        resampling="nearest",
        fail_on_error=True,
    )


@pytest.fixture()
def two_tiles(tmp_path: Path) -> tuple[str, str]:
    """A west tile (columns 0-3, a nodata hole) and an east tile (columns 2-5), uint16."""
    west = np.arange(1, 17, dtype=np.uint16).reshape(4, 4) * 100
    west[1, 2] = 0
    east = np.full((4, 4), 7, np.uint16)
    east[3, 3] = 0
    return (
        _tif(tmp_path / "west.tif", west, 0.0, 40.0, 0),
        _tif(tmp_path / "east.tif", east, 20.0, 40.0, 0),
    )


def _expected_raw(two_tiles: tuple[str, str]) -> np.ndarray:
    with rasterio.open(two_tiles[0]) as w, rasterio.open(two_tiles[1]) as e:
        west, east = w.read(1), e.read(1)
    out = np.zeros((4, 6), np.uint16)
    out[:, 2:] = east
    first = west != 0
    out[:, :4][first] = west[first]
    return out


def test_gdal_cache_bytes_bounds() -> None:
    assert gdal_cache_bytes(None) == _reader.GDAL_CACHE_MAX
    assert gdal_cache_bytes(2**40) == _reader.GDAL_CACHE_MAX
    assert gdal_cache_bytes(10**9) == int(10**9 * _reader.GDAL_CACHE_FRACTION)
    assert gdal_cache_bytes(10**6) == _reader.GDAL_CACHE_MIN


def test_configure_gdal_bounds_the_block_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GDAL_CACHEMAX", raising=False)
    monkeypatch.setattr(_reader, "_configured_pid", None)
    _reader.configure_gdal()
    assert int(get_gdal_config("GDAL_CACHEMAX")) <= _reader.GDAL_CACHE_MAX


def test_configure_gdal_leaves_an_explicit_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GDAL_CACHEMAX", "64")
    monkeypatch.setattr(_reader, "_configured_pid", None)
    called: list[object] = []
    monkeypatch.setattr(_reader, "set_gdal_config", lambda *a: called.append(a))
    _reader.configure_gdal()
    assert called == []


def test_worker_memory_limit_inside_a_dask_worker() -> None:
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, memory_limit="512MiB",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):  # fmt: skip
        limit = client.submit(_reader._worker_memory_limit).result()
    assert limit == 512 * 2**20
    assert _reader._worker_memory_limit() is None


def test_remote_sources_get_a_small_vsi_cache() -> None:
    local = (Source("/data/a.tif", 0, 1.0, 0.0),)
    remote = (Source("https://example.com/a.tif", 0, 1.0, 0.0),)
    assert _reader.gdal_options(local)["VSI_CACHE"] == "FALSE"
    assert _reader.gdal_options(remote)["VSI_CACHE"] == "TRUE"
    assert int(_reader.gdal_options(remote)["VSI_CACHE_SIZE"]) <= 4 * 2**20


def test_mosaic_raw_first_valid_wins(two_tiles: tuple[str, str]) -> None:
    sources = tuple(Source(h, 0, 1.0, 0.0) for h in two_tiles)
    got = read_chunk(_request(sources, "uint16", 0.0, False))
    assert got.shape == (1, 4, 6) and got.dtype == np.uint16
    np.testing.assert_array_equal(got[0], _expected_raw(two_tiles))


def test_mosaic_scaled_once_with_nan_for_nodata(two_tiles: tuple[str, str]) -> None:
    sources = tuple(Source(h, 0, 0.0001, -0.1) for h in two_tiles)
    got = read_chunk(_request(sources, "float32", float("nan"), True))[0]
    raw = _expected_raw(two_tiles)
    expected = raw.astype(np.float32) * np.float32(0.0001) + np.float32(-0.1)
    expected[raw == 0] = np.nan
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)
    assert np.isnan(got[3, 5]) and not np.isnan(got[1, 2])


def test_mosaic_with_differing_scales(two_tiles: tuple[str, str]) -> None:
    west, east = two_tiles
    sources = (Source(west, 0, 0.0001, -0.1), Source(east, 0, 0.001, 0.0))
    got = read_chunk(_request(sources, "float32", float("nan"), True))[0]
    raw = _expected_raw(two_tiles)
    with rasterio.open(west) as w:
        from_west = np.zeros((4, 6), bool)
        from_west[:, :4] = w.read(1) != 0
    expected = np.where(
        from_west,
        raw.astype(np.float32) * np.float32(0.0001) + np.float32(-0.1),
        raw.astype(np.float32) * np.float32(0.001),
    )
    expected[raw == 0] = np.nan
    np.testing.assert_array_equal(got, expected)


def test_mosaic_without_valid_source_is_fill(tmp_path: Path) -> None:
    empty = _tif(tmp_path / "empty.tif", np.zeros((4, 6), np.uint8), 0.0, 40.0, 0)
    got = read_chunk(_request((Source(empty, 0, 1.0, 0.0),), "uint8", 0.0, False))
    np.testing.assert_array_equal(got, np.zeros((1, 4, 6), np.uint8))
    scaled = read_chunk(_request((Source(empty, 0, 2.0, 1.0),), "float32", float("nan"), True))
    assert np.isnan(scaled).all()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int32, np.float64])
def test_scale_matches_astype_then_arithmetic(dtype: type) -> None:
    raw = np.random.default_rng(2).integers(0, 30000, (33, 17)).astype(dtype)
    expected = raw.astype(np.float32) * np.float32(0.0001) + np.float32(-0.1)
    np.testing.assert_array_equal(_reader._scale(raw, 0.0001, -0.1), expected)
    np.testing.assert_array_equal(_reader._scale(raw, 1.0, 0.0), raw.astype(np.float32))
