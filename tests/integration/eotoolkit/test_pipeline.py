"""End to end: open_stac, resample, subset, recipe CLI to Zarr, COG export, catalog tools."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pytest
import rasterio
import xarray as xr
import yaml
from dask.callbacks import Callback

import eotoolkit
from eotoolkit.cli import main
from eotoolkit.errors import RecipeError
from eotoolkit.recipe import read_recipe
from eotoolkit.stac.catalog import build_catalog, copy_assets, generate_subcatalogs
from tests.support.s2_collection import expected_mosaic


def _ndvi_median(ds: object) -> object:
    masked = eotoolkit.mask_clouds(ds)  # type: ignore[arg-type]
    return eotoolkit.composite(eotoolkit.index(masked, "NDVI"), freq="1MS", stat="median")


def test_open_stac_static_catalog_over_http(s2_url: str, s2_root: Path) -> None:
    ds = eotoolkit.open_stac(
        f"{s2_url}/catalog.json", datetime="2024-03-01/2024-03-10", bands=["red"], chunks=64
    )
    assert ds.sizes["time"] == 1
    np.testing.assert_allclose(
        ds.red.isel(time=0).values, expected_mosaic(s2_root, "B04", 0, True), rtol=1e-6
    )


def test_search_as_dicts_loads_the_same(s2_url: str, s2_root: Path) -> None:
    source = f"{s2_url}/catalog.json"
    dicts = eotoolkit.search(source, as_dicts=True)
    assert all(isinstance(d, dict) for d in dicts)
    assert all(a["href"].startswith(s2_url) for d in dicts for a in d["assets"].values())
    items = eotoolkit.search(source)
    got = eotoolkit.load(dicts, bands=["red", "scl"], chunks=64)
    ref = eotoolkit.load(items, bands=["red", "scl"], chunks=64)
    xr.testing.assert_identical(got.load(), ref.load())


def test_resample_to_20m_and_subset(s2_items: list[pystac.Item], s2_root: Path) -> None:
    ds = eotoolkit.load(s2_items, bands=["red", "scl"], chunks=64)
    r20 = eotoolkit.resample(ds, resolution=20, method="average")
    assert r20.rio.resolution() == (20.0, -20.0)
    full = ds.red.isel(time=0).values
    h, w = full.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.nanmean(full.reshape(h // 2, 2, w // 2, 2), axis=(1, 3))
    np.testing.assert_allclose(r20.red.isel(time=0).values, expected, rtol=1e-5)
    scl20 = eotoolkit.resample(ds.scl, resolution=20, method="nearest")
    assert scl20.dtype == np.uint8
    # a DataArray keeps its name (and so its variable name in a Zarr store) and attributes
    assert scl20.name == "scl" and scl20.attrs == ds.scl.attrs
    ndvi = eotoolkit.resample(ds.red.rename("NDVI"), resolution=20, method="average")
    assert ndvi.name == "NDVI"
    x0, y0 = float(ds.x[10]), float(ds.y[20])
    x1, y1 = float(ds.x[50]), float(ds.y[60])
    sub = eotoolkit.subset(
        ds,
        bbox=(x0, y1, x1, y0),
        bbox_crs="EPSG:32631",
        bands=["red"],
        time="2024-03-01/2024-03-20",
    )
    assert list(sub.data_vars) == ["red"] and sub.sizes["time"] == 2
    np.testing.assert_array_equal(
        sub.red.values, ds.red.isel(time=[0, 1], y=slice(20, 61), x=slice(10, 51)).values
    )
    with pytest.raises(eotoolkit.OutsideDataError):
        eotoolkit.subset(ds, bbox=(10.0, 40.0, 10.1, 40.1))


def test_recipe_cli_writes_the_same_as_the_api(
    s2_url: str, s2_items: list[pystac.Item], tmp_path: Path
) -> None:
    recipe = {
        "source": f"{s2_url}/catalog.json",
        "bands": ["red", "nir", "scl"],
        "chunks": {"x": 64, "y": 64},
        "mask": "s2_scl",
        "index": ["NDVI"],
        "composite": {"freq": "1MS", "stat": "median"},
        "output": {"zarr": "ndvi.zarr"},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["run", str(path)]) == 0
    got = eotoolkit.open_zarr(str(tmp_path / "ndvi.zarr"))
    expected = _ndvi_median(eotoolkit.load(s2_items, bands=["red", "nir", "scl"], chunks=64))
    np.testing.assert_array_equal(got.NDVI.values, expected.values)  # type: ignore[attr-defined]
    assert got.rio.crs.to_epsg() == 32631
    # the store exists: refused before anything is loaded or computed, with the YAML to change
    with pytest.raises(RecipeError, match=r"already holds a complete Zarr store.*'mode: w'"):
        read_recipe(path)
    assert main(["run", str(path)]) == 2
    recipe["output"] = {"zarr": "ndvi.zarr", "mode": "w"}
    path.write_text(yaml.safe_dump(recipe))
    assert read_recipe(path).output["mode"] == "w"


def test_recipe_output_max_tasks_writes_in_batches(
    s2_url: str, s2_items: list[pystac.Item], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    recipe = {
        "source": f"{s2_url}/catalog.json",
        "bands": ["red", "nir", "scl"],
        "chunks": {"x": 64, "y": 64},
        "mask": "s2_scl",
        "index": ["NDVI"],
        "output": {"zarr": "ndvi.zarr", "max_tasks": 40},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    graphs: list[int] = []

    class Sizes(Callback):
        def _start(self, dsk: Any) -> None:
            graphs.append(len(dsk))

    with Sizes():
        assert main(["run", str(path)]) == 0
    assert len(graphs) > 1 and max(graphs) <= 40
    assert "batches" in capsys.readouterr().err
    got = eotoolkit.open_zarr(str(tmp_path / "ndvi.zarr"))
    ds = eotoolkit.load(s2_items, bands=["red", "nir", "scl"], chunks=64)
    expected = eotoolkit.index(eotoolkit.mask_clouds(ds), "NDVI")
    np.testing.assert_array_equal(got.NDVI.values, expected.values)


def test_recipe_search_ids_picks_the_items(
    s2_url: str, s2_items: list[pystac.Item], tmp_path: Path
) -> None:
    first = min(item.datetime for item in s2_items if item.datetime is not None)
    chosen = sorted(item.id for item in s2_items if item.datetime == first)
    assert 0 < len(chosen) < len(s2_items)
    recipe = {
        "source": f"{s2_url}/catalog.json",
        "search": {"ids": chosen},
        "bands": ["red"],
        "chunks": {"x": 64, "y": 64},
        "output": "red.zarr",
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["run", str(path)]) == 0
    got = eotoolkit.open_zarr(str(tmp_path / "red.zarr"))
    expected = eotoolkit.load(
        [item for item in s2_items if item.id in chosen], bands=["red"], chunks=64
    )
    assert got.sizes["time"] == 1
    np.testing.assert_array_equal(got.red.values, expected.red.values)


def test_to_cog_roundtrip(s2_items: list[pystac.Item], tmp_path: Path) -> None:
    ds = eotoolkit.load(s2_items, bands=["red", "nir", "scl"], chunks=64)
    ndvi = _ndvi_median(ds).isel(time=0)  # type: ignore[attr-defined]
    path = eotoolkit.to_cog(ndvi, tmp_path / "ndvi.tif", blocksize=64)
    with rasterio.open(path) as src:
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert src.block_shapes[0] == (64, 64) and src.overviews(1)
        assert src.crs.to_epsg() == 32631
        assert src.transform == ndvi.rio.transform()
        np.testing.assert_array_equal(src.read(1), ndvi.values)


def test_catalog_from_geotiffs_and_copy_assets(s2_root: Path, s2_url: str, tmp_path: Path) -> None:
    files = sorted((s2_root / "sentinel-2-l2a-synthetic").glob("*/B0[48].tif"))
    cat = build_catalog(
        files,
        tmp_path / "cat",
        grouping=lambda p: (p.parent.name, p.stem),
        properties=lambda p: {"tile": p.parent.name.split("_")[-1]},
    )
    items = list(cat.get_items(recursive=True))
    assert len(items) == len(files) // 2
    asset = items[0].assets["B04"]
    with rasterio.open(files[0]) as src:
        assert asset.extra_fields["proj:code"] == "EPSG:32631"
        assert asset.extra_fields["proj:shape"] == [src.height, src.width]
        assert asset.extra_fields["proj:transform"] == list(src.transform)[:6]
        assert asset.extra_fields["raster:bands"][0]["nodata"] == 0
        assert asset.extra_fields["raster:bands"][0]["data_type"] == "uint16"
    generate_subcatalogs(cat, "${tile}")
    reread = pystac.Catalog.from_file(str(tmp_path / "cat" / "catalog.json"))
    assert len(list(reread.get_children())) == 2
    assert len(list(reread.get_items(recursive=True))) == len(items)
    # copy the red band of the HTTP-served synthetic catalog, relink, and load from the copies
    remote = pystac.Catalog.from_file(f"{s2_url}/catalog.json").full_copy()
    remote.normalize_hrefs(str(tmp_path / "local_catalog"))
    copied = copy_assets(remote, "B04", tmp_path / "assets", max_workers=2)
    assert len(copied) == len(list(remote.get_items(recursive=True)))
    assert all(h.startswith("http") and p.exists() for h, p in copied.items())
    hrefs = [it.assets["B04"].href for it in remote.get_items(recursive=True)]
    assert all(h.startswith(str(tmp_path / "assets")) for h in hrefs)
    local = eotoolkit.load(remote, bands=["B04"], chunks=64)
    via_http = eotoolkit.load(
        pystac.Catalog.from_file(f"{s2_url}/catalog.json"), bands=["B04"], chunks=64
    )
    np.testing.assert_array_equal(local.B04.values, via_http.B04.values)
