"""Item parsing, band resolution, grid choice and graph construction (no file access)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

import eotoolkit
from eotoolkit._grid import utm_crs
from eotoolkit._items import parse_items
from eotoolkit.errors import BandNotFoundError, MixedDtypeError, NoItemsError


def _item(
    i: int,
    *,
    epsg: int = 32631,
    baseline: str | None = "05.00",
    offset: float | None = None,
    dtype: str = "uint16",
) -> dict:
    left = 300_000 + (i % 100) * 1000.0
    top = 5_800_000 - (i // 100) * 1000.0
    band = {"data_type": dtype, "nodata": 0, "scale": 0.0001}
    if offset is not None:
        band["offset"] = offset
    props = {
        "datetime": f"2024-{1 + i % 12:02d}-0{1 + i % 9}T10:30:00Z",
        "proj:code": f"EPSG:{epsg}",
    }
    if baseline:
        props["s2:processing_baseline"] = baseline
    asset = {
        "href": f"https://example.invalid/{i}/B04.tif",
        "proj:shape": [100, 100],
        "proj:transform": [10.0, 0.0, left, 0.0, -10.0, top],
        "raster:bands": [band],
        "eo:bands": [{"name": "B04", "common_name": "red"}],
    }
    scl = {
        "href": f"https://example.invalid/{i}/SCL.tif",
        "raster:bands": [{"data_type": "uint8"}],
        "proj:transform": [20.0, 0.0, left, 0.0, -20.0, top],
        "proj:shape": [50, 50],
    }
    return {
        "type": "Feature",
        "id": f"item-{i}",
        "bbox": [3.0, 52.0, 3.01, 52.01],
        "properties": props,
        "assets": {"B04": asset, "SCL": scl},
    }


def test_common_names_and_baseline_offset() -> None:
    table, bands = parse_items(
        [_item(0), _item(1, baseline="03.01"), _item(2, offset=-0.1)], ["red", "scl"]
    )
    assert bands == ["red", "scl"]
    red = table.sources["red"]
    assert red[0] is not None and red[0].href.endswith("0/B04.tif")
    assert red[0].offset == pytest.approx(-0.1)  # baseline >= 04.00, offset added
    assert red[1] is not None and red[1].offset == 0.0  # old baseline
    assert red[2] is not None and red[2].offset == pytest.approx(-0.1)  # declared, not doubled
    scl = table.sources["scl"][0]
    assert scl is not None and scl.offset == 0.0  # not a reflectance band
    assert table.resolution == {"red": 10.0, "scl": 20.0}


def test_bad_items() -> None:
    with pytest.raises(NoItemsError):
        parse_items([], ["red"])
    with pytest.raises(BandNotFoundError, match=r"B04.*SCL.*red \(= B04\)"):
        parse_items([_item(0)], ["nir"])
    with pytest.raises(MixedDtypeError, match="dtype="):
        eotoolkit.load([_item(0), _item(1, dtype="int16")], bands=["red"])


def test_utm_zone_choice() -> None:
    assert utm_crs(3.0, 52.0) == "EPSG:32631"
    assert utm_crs(6.5, 52.0) == "EPSG:32632"
    assert utm_crs(-70.0, -33.0) == "EPSG:32719"
    ds = eotoolkit.load([_item(0)], bands=["red"], crs="utm")
    assert ds.rio.crs.to_epsg() == 32631


def test_grid_from_metadata_without_reading() -> None:
    items = [_item(0), _item(1)]
    ds = eotoolkit.load(items, bands=["red", "scl"], chunks=64, groupby="time")
    assert ds.rio.resolution() == (10.0, -10.0)
    assert ds.sizes == {"time": 2, "y": 100, "x": 200}
    assert ds.x.values[0] == 300_005.0 and ds.y.values[0] == 5_799_995.0
    assert ds.red.dtype == np.float32 and ds.scl.dtype == np.uint8
    assert ds.red.data.numblocks == (2, 2, 4)


def test_graph_for_10000_items_builds_fast() -> None:
    items = [_item(i) for i in range(10_000)]
    start = time.perf_counter()
    ds = eotoolkit.load(items, bands=["red"], resolution=20, chunks=1024)
    elapsed = time.perf_counter() - start
    assert ds.sizes["x"] == 5000 and ds.sizes["y"] == 5000
    n_tasks = len(ds.red.data.__dask_graph__())
    assert n_tasks == ds.sizes["time"] * 25
    assert elapsed < 4.0, f"graph construction took {elapsed:.2f} s"


def test_geometry_sets_the_extent() -> None:
    from shapely.geometry import box

    items = [_item(i) for i in range(3)]
    whole = eotoolkit.load(items, bands=["red"], groupby="time")
    bounds = whole.rio.bounds()
    from pyproj import Transformer

    to_ll = Transformer.from_crs("EPSG:32631", "EPSG:4326", always_xy=True)
    x0, y0 = to_ll.transform(bounds[0] + 200, bounds[1] + 200)
    x1, y1 = to_ll.transform(bounds[0] + 700, bounds[1] + 600)
    part = eotoolkit.load(items, bands=["red"], geometry=box(x0, y0, x1, y1), groupby="time")
    assert 40 <= part.sizes["x"] <= 60 and 30 <= part.sizes["y"] <= 50
    assert part.rio.bounds()[0] >= bounds[0] and part.rio.bounds()[2] <= bounds[2]


def _naive_chunk_members(
    groups: list[np.ndarray], ranges: tuple[np.ndarray, ...]
) -> dict[tuple[int, int, int], list[int]]:
    y0, y1, x0, x1 = ranges
    out: dict[tuple[int, int, int], list[int]] = {}
    for ti, rows in enumerate(groups):
        for row in rows.tolist():
            for iy in range(y0[row], y1[row]):
                for ix in range(x0[row], x1[row]):
                    out.setdefault((ti, iy, ix), []).append(row)
    return out


def test_chunk_index_matches_a_loop_over_items() -> None:
    from eotoolkit.loader import chunk_index

    rng = np.random.default_rng(5)
    n = 60
    y0 = rng.integers(0, 4, n)
    x0 = rng.integers(0, 5, n)
    ranges = (y0, y0 + rng.integers(0, 3, n), x0, x0 + rng.integers(0, 3, n))
    order = rng.permutation(n)
    groups = [order[:7], order[7:8], order[8:30], order[30:]]
    index = chunk_index(groups, ranges)
    expected = _naive_chunk_members(groups, ranges)
    assert dict(zip(index.keys, index.rows, strict=True)) == expected
    assert index.keys == sorted(index.keys)


def test_graph_tasks_mosaic_order_and_names() -> None:
    from eotoolkit._reader import fill_chunk, read_sources

    items = [_item(i) for i in range(4)] + [_item(0) | {"id": "again"}]
    ds = eotoolkit.load(items, bands=["red", "scl"], chunks=64, groupby="solar_day")
    again = eotoolkit.load(items, bands=["red", "scl"], chunks=64, groupby="solar_day")
    assert ds.red.data.name == again.red.data.name and ds.red.data.name != ds.scl.data.name
    other = eotoolkit.load(items[:4], bands=["red", "scl"], chunks=64, groupby="solar_day")
    assert other.red.data.name != ds.red.data.name
    graph = dict(ds.red.data.__dask_graph__())
    assert len(graph) == ds.red.data.npartitions
    kinds = {task[0] for task in graph.values()}
    assert kinds <= {read_sources, fill_chunk} and read_sources in kinds
    doubled = [t for t in graph.values() if t[0] is read_sources and len(t[2]) == 2]
    assert doubled and all(t[2][0].href == t[2][1].href for t in doubled)


def test_load_restores_the_garbage_collector() -> None:
    import gc

    assert gc.isenabled()
    eotoolkit.load([_item(0)], bands=["red"], chunks=64)
    assert gc.isenabled()
    gc.disable()
    try:
        eotoolkit.load([_item(0)], bands=["red"], chunks=64)
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(BandNotFoundError):
        eotoolkit.load([_item(0)], bands=["nope"])
    assert gc.isenabled()


def test_read_tasks_are_a_mapping_made_on_demand() -> None:
    from eotoolkit._reader import read_sources

    items = [_item(i) for i in range(6)]
    ds = eotoolkit.load(items, bands=["red"], chunks=64, groupby="solar_day")
    arr = ds.red.data
    layer = arr.__dask_graph__().layers[arr.name]
    keys = set(layer)
    assert len(layer) == len(keys) == arr.npartitions
    assert keys == set(_flat_keys(arr))
    assert (arr.name, 0, 0, 0) in layer and (arr.name, arr.numblocks[0], 0, 0) not in layer
    with pytest.raises(KeyError):
        layer[("other", 0, 0, 0)]
    task = next(t for t in layer.values() if t[0] is read_sources)
    assert task[2] and all(s.href.endswith("B04.tif") for s in task[2])
    sub = ds.red.isel(time=0, y=slice(0, 64), x=slice(0, 64))
    culled = sub.data.__dask_optimize__(sub.data.__dask_graph__(), sub.data.__dask_keys__())
    assert len(dict(culled)) <= 2  # the one read task (and a getitem), not the whole layer


def _flat_keys(arr: Any) -> list:
    import dask.core

    return list(dask.core.flatten(arr.__dask_keys__()))


@pytest.mark.parametrize(
    ("crs", "period", "cylindrical"),
    [
        ("EPSG:3857", 2 * 20037508.342789244, True),
        ("EPSG:6933", 2 * 17367530.445161372, True),
        ("EPSG:4087", 2 * 20037508.342789244, True),
        ("ESRI:54008", 2 * 20037508.342789244, False),  # sinusoidal
        ("EPSG:32660", None, None),
        ("EPSG:3413", None, None),
        ("EPSG:3035", None, None),
        ("EPSG:4326", None, None),
    ],
)
def test_x_wrap_found_from_the_crs(crs: str, period: float | None, cylindrical: bool) -> None:
    from eotoolkit._grid import x_wrap

    wrap = x_wrap(crs)
    if period is None:
        assert wrap is None
        return
    assert wrap is not None
    assert wrap.period == pytest.approx(period, rel=1e-9)
    assert wrap.west == pytest.approx(-period / 2, rel=1e-9)
    assert wrap.cylindrical is cylindrical


def test_x_wrap_of_a_pacific_mercator() -> None:
    from eotoolkit._grid import x_wrap

    wrap = x_wrap("+proj=merc +lon_0=150 +datum=WGS84 +units=m +type=crs")
    assert wrap is not None and wrap.centre == 150.0


def _straddling_items() -> list[dict[str, Any]]:
    """Two 3 km UTM 60N items at 52 N, one each side of 180 degrees."""
    from pyproj import Transformer

    x, y = Transformer.from_crs("EPSG:4326", "EPSG:32660", always_xy=True).transform(179.98, 52.0)
    out = []
    for k, x0 in enumerate((x - 2000, x + 1000)):
        x0 = round(x0, -1)
        y0 = round(y, -1)
        out.append(
            {
                "type": "Feature", "stac_version": "1.1.0", "id": f"i{k}",
                "geometry": None, "bbox": None, "links": [],
                "properties": {"datetime": "2024-05-01T10:00:00Z", "proj:code": "EPSG:32660"},
                "assets": {"B04": {"href": f"file:///nope/{k}.tif",
                                   "proj:shape": [300, 300],
                                   "proj:transform": [10, 0, x0, 0, -10, y0]}},
            }
        )  # fmt: skip
    return out


@pytest.mark.parametrize("crs", ["EPSG:3857", "EPSG:6933"])
def test_items_across_180_get_a_narrow_grid_past_the_world_edge(crs: str) -> None:
    """Onto a CRS whose x wraps, items across 180 degrees load onto a grid that continues past
    the world's east edge (a few kilometres wide), not one around the world."""
    from eotoolkit._grid import x_wrap

    wrap = x_wrap(crs)
    assert wrap is not None
    ds = eotoolkit.load(_straddling_items(), crs=crs, resolution=100)
    x = ds["x"].values
    edge = wrap.west + wrap.period
    assert ds.sizes["x"] < 200  # around the world: 400,000 columns
    assert x.min() < edge < x.max()
    # a lon/lat bbox on either side of 180 selects the same columns
    east = eotoolkit.subset(ds, bbox=(179.99, 51.9, 180.01, 52.1))
    west = eotoolkit.subset(ds, bbox=(-180.01, 51.9, -179.99, 52.1))
    assert east.sizes == west.sizes and 0 < east.sizes["x"] < ds.sizes["x"]
    np.testing.assert_array_equal(east["x"].values, west["x"].values)
    assert east["x"].values.min() < edge < east["x"].values.max()
    # and so does a load with that bbox
    part = eotoolkit.load(
        _straddling_items(), crs=crs, resolution=100, bbox=(-180.01, 51.9, -179.99, 52.1)
    )
    assert part["x"].values.min() < edge < part["x"].values.max()


def test_items_across_180_in_utm_stay_in_utm() -> None:
    ds = eotoolkit.load(_straddling_items(), crs="EPSG:32601", resolution=100)
    assert ds.sizes["x"] < 100
