# ruff: noqa: E501  (one case per line reads as a table)
"""A table of bad or unusual inputs across the Python API, recipes and the CLI.

Every case must fail with an :class:`~eotoolkit.errors.EOToolkitError` subclass (or exit
status 2 and one line on stderr for the CLI) whose message names the cause; a generic error
raised from inside numpy, pandas, pyproj or rasterio fails the case.
"""

from __future__ import annotations

import copy
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pytest
import xarray as xr
import yaml
from affine import Affine

import eotoolkit as eo
from eotoolkit.cli import main
from eotoolkit.errors import (
    AssetMetadataError,
    AssetReadError,
    BandNotFoundError,
    EOToolkitError,
    InvalidParameterError,
    OutsideDataError,
    RecipeError,
    SearchParameterError,
    SpectralIndexError,
    StacSourceError,
)
from eotoolkit.recipe import read_recipe

from .helpers import item_dict, write_cog

T = Affine(10, 0, 500_000, 0, -10, 5_000_000)
SHAPE = (64, 64)


class Env:
    """Shared inputs of the cases: a COG, its item, a loaded dataset and a catalog."""

    def __init__(self, root: Path) -> None:
        self.root = root
        data = (np.arange(64 * 64).reshape(SHAPE) % 500 + 1).astype("uint16")
        write_cog(root / "a.tif", data, "EPSG:32633", T)
        self.item = item_dict("a", str(root / "a.tif"), "EPSG:32633", T, SHAPE, "2024-05-01T10Z")
        self.items = [self.item]
        ds = eo.load(self.items, bands="B04", dtype="float32", chunks=32)
        self.ds = ds.rename({"B04": "red"})
        self.ds["nir"] = self.ds["red"] * 2
        self.ds["scl"] = xr.full_like(self.ds["red"], 4).astype("uint8")
        self.da = self.ds["red"].isel(time=0)
        cat = pystac.Catalog("c", "c")
        cat.add_item(pystac.Item.from_dict(self.item))
        cat.normalize_hrefs(str(root / "cat"))
        cat.save(pystac.CatalogType.SELF_CONTAINED)
        self.catalog = str(root / "cat" / "catalog.json")
        t = xr.DataArray(np.zeros((365, 2, 2), "float32"), dims=("time", "y", "x"))
        self.t = t.assign_coords(time=np.arange("2023-01-01", "2024-01-01", dtype="M8[D]"))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    return Env(tmp_path_factory.mktemp("bad"))


E = InvalidParameterError


def _variant(
    env: Env, props: dict[str, Any] | None = None, asset: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A copy of the Env's item with properties and asset fields changed."""
    item = copy.deepcopy(env.item)
    item["properties"].update(props or {})
    item["assets"]["B04"].update(asset or {})
    return item


# (case id, call on the Env, expected type, message fragment)
API: list[tuple[str, Callable[[Env], Any], type[Exception], str]] = [
    # load: grid
    ("load-res-negative", lambda e: eo.load(e.items, resolution=-20), E, "pass 20 instead"),
    ("load-res-zero", lambda e: eo.load(e.items, resolution=0), E, "resolution=0"),
    ("load-res-nan", lambda e: eo.load(e.items, resolution=float("nan")), E, "resolution=nan"),
    ("load-res-inf", lambda e: eo.load(e.items, resolution=float("inf")), E, "resolution=inf"),
    ("load-res-str", lambda e: eo.load(e.items, resolution="20m"), E, "resolution='20m'"),
    ("load-res-bool", lambda e: eo.load(e.items, resolution=True), E, "resolution=True"),
    ("load-res-triple", lambda e: eo.load(e.items, resolution=(1, 2, 3)), E, "pair (x, y)"),
    ("load-res-pair-neg", lambda e: eo.load(e.items, resolution=(10, -10)), E, "north-up"),
    ("load-res-metres-4326", lambda e: eo.load(e.items, crs=4326, resolution=20), E, "Metres"),
    ("load-native-res-4326", lambda e: eo.load(e.items, crs="EPSG:4326"), E, "in degrees"),
    ("load-res-degrees-utm", lambda e: eo.load(e.items, resolution=1e-7), E, "Degrees asked"),
    ("load-res-too-big", lambda e: eo.load(e.items, resolution=1e6), E, "larger than the whole"),
    ("load-crs-garbage", lambda e: eo.load(e.items, crs="garbage"), E, "crs='garbage'"),
    ("load-crs-bad-epsg", lambda e: eo.load(e.items, crs=999999), E, "epsg.io"),
    ("load-crs-float", lambda e: eo.load(e.items, crs=4326.0), E, "crs=4326.0"),
    ("load-crs-list", lambda e: eo.load(e.items, crs=[4326]), E, "crs=[4326]"),
    ("load-crs-bool", lambda e: eo.load(e.items, crs=True), E, "crs=True"),
    # load: extent
    ("load-bbox-swapped", lambda e: eo.load(e.items, bbox=(16, 45, 15, 44)), E, "min x"),
    ("load-bbox-lat-swapped", lambda e: eo.load(e.items, bbox=(14, 45, 15, 44)), E, "min y"),
    ("load-bbox-3", lambda e: eo.load(e.items, bbox=(1, 2, 3)), E, "bbox="),
    ("load-bbox-str", lambda e: eo.load(e.items, bbox="1,2,3,4"), E, "bbox='1,2,3,4'"),
    ("load-bbox-lat-range", lambda e: eo.load(e.items, bbox=(14, -95, 15, 45)), E, "[-90, 90]"),
    ("load-bbox-nan", lambda e: eo.load(e.items, bbox=(14, np.nan, 15, 45)), E, "finite"),
    ("load-bbox-antimeridian", lambda e: eo.load(e.items, bbox=(179, 0, -179, 1)), E, "181"),
    ("load-bbox-outside", lambda e: eo.load(e.items, bbox=(0, 0, 1, 1)), OutsideDataError, "does not intersect"),
    ("load-bbox-and-geometry", lambda e: eo.load(e.items, bbox=(14, 44, 16, 46), geometry={"type": "Point", "coordinates": [15, 45]}), E, "not both"),
    ("load-geometry-point", lambda e: eo.load(e.items, geometry={"type": "Point", "coordinates": [15, 45]}), E, "no area"),
    ("load-geometry-bad", lambda e: eo.load(e.items, geometry={"type": "Blob"}), E, "geometry="),
    ("load-geometry-str", lambda e: eo.load(e.items, geometry="POLYGON"), E, "geometry="),
    # load: other parameters
    ("load-chunks-zero", lambda e: eo.load(e.items, chunks=0), E, "chunks=0"),
    ("load-chunks-negative", lambda e: eo.load(e.items, chunks=-5), E, "chunks=-5"),
    ("load-chunks-float", lambda e: eo.load(e.items, chunks=1.5), E, "chunks=1.5"),
    ("load-chunks-dim", lambda e: eo.load(e.items, chunks={"lat": 5}), E, "Unknown dimension"),
    ("load-chunks-map-zero", lambda e: eo.load(e.items, chunks={"x": 0}), E, "chunks="),
    ("load-dtype-foo", lambda e: eo.load(e.items, dtype="foo"), E, "dtype='foo'"),
    ("load-dtype-str", lambda e: eo.load(e.items, dtype=str), E, "numeric dtype"),
    ("load-dtype-map", lambda e: eo.load(e.items, dtype={"B04": "nope"}), E, "dtype['B04']"),
    ("load-groupby-bogus", lambda e: eo.load(e.items, groupby="bogus"), E, "groupby='bogus'"),
    ("load-groupby-int", lambda e: eo.load(e.items, groupby=3), E, "solar_day"),
    ("load-resampling", lambda e: eo.load(e.items, resampling="fancy"), E, "resampling='fancy'"),
    ("load-resampling-map", lambda e: eo.load(e.items, resampling={"B04": "x"}), E, "resampling['B04']"),
    ("load-fail-on-error", lambda e: eo.load(e.items, fail_on_error="yes"), E, "True or False"),
    ("load-bands-empty", lambda e: eo.load(e.items, bands=[]), E, "non-empty list"),
    ("load-bands-int", lambda e: eo.load(e.items, bands=[4]), E, "band name"),
    ("load-bands-dup", lambda e: eo.load(e.items, bands=["B04", "B04"]), E, "once"),
    ("load-band-missing", lambda e: eo.load(e.items, bands="B99"), BandNotFoundError, "B99"),
    # load: items
    ("load-items-dicts", lambda e: eo.load([{"a": 1}]), E, "not STAC items"),
    ("load-items-str", lambda e: eo.load("catalog.json"), E, "not STAC items"),
    ("load-items-int", lambda e: eo.load(5), E, "not STAC items"),
    ("load-items-none", lambda e: eo.load([None]), E, "not STAC items"),
    ("load-items-no-href", lambda e: eo.load([{"type": "Feature", "assets": {"a": {}}}]), E, "no 'href'"),
    ("load-items-empty", lambda e: eo.load([]), EOToolkitError, "No items"),
    # load: real-world item metadata that cannot be loaded as it says, or disagrees with the file
    ("load-item-no-datetime", lambda e: eo.load([_variant(e, props={"datetime": None})]), E, "no usable time"),
    ("load-item-bad-datetime", lambda e: eo.load([_variant(e, props={"datetime": "yesterday"})]), E, "datetime='yesterday'"),
    ("load-item-epsg-garbage", lambda e: eo.load([_variant(e, props={"proj:code": None, "proj:epsg": "utm33"})]), E, "proj:epsg='utm33'"),
    ("load-item-relative-href", lambda e: eo.load([_variant(e, asset={"href": "a.tif"})]), E, "relative href 'a.tif'"),
    ("load-multiband-asset", lambda e: eo.load([_variant(e, asset={"eo:bands": [{"name": n} for n in ("B04", "B03", "B02")]})], bands="B04"), E, "holds 3 bands"),
    ("load-multiband-only", lambda e: eo.load([_variant(e, asset={"eo:bands": [{"name": n} for n in ("B04", "B03", "B02")]})]), BandNotFoundError, "no single-band raster asset"),
    ("load-asset-crs-mismatch", lambda e: eo.load([_variant(e, props={"proj:code": "EPSG:32634"})]).compute(), AssetMetadataError, "is in EPSG:32633 but its item says EPSG:32634"),
    ("load-asset-shape-mismatch", lambda e: eo.load([_variant(e, asset={"proj:shape": [32, 32]})]).compute(), AssetMetadataError, "proj:shape"),
    ("load-asset-dtype-mismatch", lambda e: eo.load([_variant(e, asset={"raster:bands": [{"data_type": "int16", "nodata": 0}]})]).compute(), AssetMetadataError, "data_type 'int16'"),
    ("load-asset-nodata-mismatch", lambda e: eo.load([_variant(e, asset={"raster:bands": [{"data_type": "uint16", "nodata": 65535}]})]).compute(), AssetMetadataError, "nodata 0.0 in the file"),
    ("load-items-mixed-scaling", lambda e: eo.load([e.item, _variant(e, asset={"raster:bands": [{"data_type": "uint16", "nodata": 0, "scale": 0.0001}]})]), E, "mix scaled values with raw counts"),
    ("load-asset-missing", lambda e: eo.load([_variant(e, asset={"href": str(e.root / "nope.tif")})]).compute(), AssetReadError, "nope.tif"),
    # subset
    ("subset-not-dataset", lambda e: eo.subset([1, 2], bbox=(14, 44, 16, 46)), E, "xarray Dataset"),
    ("subset-bbox-swapped", lambda e: eo.subset(e.ds, bbox=(16, 44, 14, 46)), E, "min x"),
    ("subset-bbox-crs", lambda e: eo.subset(e.ds, bbox=(0, 0, 1, 1), bbox_crs="nope"), E, "bbox_crs='nope'"),
    ("subset-bbox-outside", lambda e: eo.subset(e.ds, bbox=(0, 0, 1, 1)), OutsideDataError, "does not intersect"),
    ("subset-time-bad", lambda e: eo.subset(e.ds, time="not-a-date"), E, "time='not-a-date'"),
    ("subset-time-order", lambda e: eo.subset(e.ds, time="2024-06/2024-01"), E, "after the stop"),
    ("subset-time-triple", lambda e: eo.subset(e.ds, time=("2024", "2024", "2025")), E, "pair"),
    ("subset-bands-missing", lambda e: eo.subset(e.ds, bands=["zz"]), BandNotFoundError, "zz"),
    ("subset-bands-str-list", lambda e: eo.subset(e.ds, bands=[1]), E, "band name"),
    ("subset-both", lambda e: eo.subset(e.ds, bbox=(14, 44, 16, 46), geometry={"type": "Point", "coordinates": [15, 45]}), E, "not both"),
    ("subset-no-crs", lambda e: eo.subset(xr.Dataset({"a": (("y", "x"), np.zeros((2, 2)))}), bbox=(0, 0, 1, 1)), E, "write_crs"),
    # resample
    ("resample-res-zero", lambda e: eo.resample(e.ds, resolution=0), E, "resolution=0"),
    ("resample-res-neg", lambda e: eo.resample(e.ds, resolution=-20), E, "pass 20 instead"),
    ("resample-res-none", lambda e: eo.resample(e.ds, resolution=None), E, "resolution=None"),
    ("resample-method", lambda e: eo.resample(e.ds, resolution=20, method="fancy"), E, "method='fancy'"),
    ("resample-crs", lambda e: eo.resample(e.ds, resolution=20, crs="nope"), E, "crs='nope'"),
    ("resample-metres-4326", lambda e: eo.resample(e.ds, resolution=20, crs=4326), E, "Metres"),
    ("resample-not-data", lambda e: eo.resample(np.zeros(3), resolution=20), E, "xarray Dataset"),
    ("resample-no-yx", lambda e: eo.resample(xr.Dataset({"a": (("a", "b"), np.zeros((2, 2)))}), resolution=1), E, "'y' and 'x'"),
    # composite
    ("composite-freq-bogus", lambda e: eo.composite(e.ds, freq="bogus"), E, "freq='bogus'"),
    ("composite-freq-int", lambda e: eo.composite(e.ds, freq=3), E, "freq=3"),
    ("composite-stat", lambda e: eo.composite(e.ds, stat="mode"), E, "stat='mode'"),
    ("composite-stat-q", lambda e: eo.composite(e.ds, stat="q2"), E, "q0.9"),
    ("composite-stat-empty", lambda e: eo.composite(e.ds, stat=[]), E, "stat=[]"),
    ("composite-no-time", lambda e: eo.composite(e.da.drop_vars("time")), E, "'time' dimension"),
    ("composite-not-data", lambda e: eo.composite({"a": 1}), E, "xarray Dataset"),
    # masks and indices
    ("mask-scl-missing", lambda e: eo.mask_clouds(e.ds, scl="SCL_X"), BandNotFoundError, "SCL_X"),
    ("mask-classes", lambda e: eo.mask_clouds(e.ds, classes=["cloud"]), E, "classes="),
    ("mask-classes-range", lambda e: eo.mask_clouds(e.ds, classes=[300]), E, "classes="),
    ("mask-keep-scl", lambda e: eo.mask_clouds(e.ds, keep_scl="no"), E, "keep_scl"),
    ("mask-dataarray", lambda e: eo.mask_clouds(e.da), E, "xarray Dataset"),
    ("mask-landsat-bool", lambda e: eo.mask_landsat(e.ds, qa="scl", cloud="yes"), E, "cloud="),
    ("mask-landsat-qa", lambda e: eo.mask_landsat(e.ds, qa=7), E, "qa=7"),
    ("index-unknown", lambda e: eo.index(e.ds, "NDXX"), SpectralIndexError, "NDXX"),
    ("index-name-int", lambda e: eo.index(e.ds, 5), SpectralIndexError, "name=5"),
    ("index-not-data", lambda e: eo.index([1], "NDVI"), E, "xarray Dataset"),
    # writers
    ("zarr-mode", lambda e: eo.to_zarr(e.ds, str(e.root / "x.zarr"), mode="append"), E, "mode='append'"),
    ("zarr-store", lambda e: eo.to_zarr(e.ds, 5), E, "store=5"),
    ("zarr-obj", lambda e: eo.to_zarr([1], str(e.root / "y.zarr")), E, "xarray Dataset"),
    ("zarr-group", lambda e: eo.to_zarr(e.ds, str(e.root / "z.zarr"), group=3), E, "group=3"),
    ("cog-dataset", lambda e: eo.to_cog(e.ds, str(e.root / "a1.tif")), E, "DataArray"),
    ("cog-3d-time", lambda e: eo.to_cog(e.ds["red"].expand_dims(b=2), str(e.root / "a2.tif")), E, "(band, y, x)"),
    ("cog-compress", lambda e: eo.to_cog(e.da, str(e.root / "a3.tif"), compress="zip"), E, "compress='zip'"),
    ("cog-blocksize", lambda e: eo.to_cog(e.da, str(e.root / "a4.tif"), blocksize=100), E, "multiple of 16"),
    ("cog-resampling", lambda e: eo.to_cog(e.da, str(e.root / "a5.tif"), overview_resampling="x"), E, "overview_resampling"),
    ("cog-nodata", lambda e: eo.to_cog(e.da, str(e.root / "a6.tif"), nodata="zero"), E, "nodata='zero'"),
    ("cog-dir-missing", lambda e: eo.to_cog(e.da, str(e.root / "no" / "a.tif")), E, "existing directory"),
    ("cog-no-crs", lambda e: eo.to_cog(xr.DataArray(np.zeros((2, 2)), dims=("y", "x")), str(e.root / "a7.tif")), E, "write_crs"),
    # phenology
    ("spring-plants", lambda e: eo.spring_index(e.t, e.t, e.t, plants=["oak"]), E, "oak"),
    ("spring-plants-str", lambda e: eo.spring_index(e.t, e.t, e.t, plants="lilac"), E, "plants='lilac'"),
    ("spring-doy-order", lambda e: eo.spring_index(e.t, e.t, e.t, start_doy=200, end_doy=100), E, "Swap"),
    ("spring-doy-range", lambda e: eo.spring_index(e.t, e.t, e.t, end_doy=400), E, "end_doy=400"),
    ("spring-short", lambda e: eo.spring_index(e.t[:100], e.t[:100], e.t[:100]), E, "fewer than end_doy"),
    ("spring-not-array", lambda e: eo.spring_index(np.zeros(3), e.t, e.t), E, "tmin="),
    # search
    ("search-missing", lambda e: eo.search(str(e.root / "nope.json")), StacSourceError, "does not exist"),
    ("search-source-int", lambda e: eo.search(5), E, "source=5"),
    ("search-bbox", lambda e: eo.search(e.catalog, bbox=(16, 45, 15, 44)), SearchParameterError, "bbox"),
    ("search-datetime", lambda e: eo.search(e.catalog, datetime="yesterday"), SearchParameterError, "datetime"),
    ("search-max-items", lambda e: eo.search(e.catalog, max_items="3"), E, "max_items='3'"),
    ("search-limit", lambda e: eo.search(e.catalog, limit=0), E, "limit"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "call", "kind", "fragment"), API, ids=[c[0] for c in API])
def test_api_refuses(env: Env, case: str, call: Callable, kind: type, fragment: str) -> None:
    with pytest.raises(EOToolkitError) as info:
        call(env)
    assert isinstance(info.value, kind), f"{case}: {type(info.value).__name__}: {info.value}"
    assert fragment in str(info.value), f"{case}: {info.value}"


def test_parameter_errors_are_value_errors() -> None:
    assert issubclass(InvalidParameterError, ValueError)
    assert issubclass(RecipeError, InvalidParameterError)
    assert issubclass(SearchParameterError, InvalidParameterError)


GOOD = {"bands": ["B04"], "output": "out.zarr"}

RECIPES: list[tuple[str, dict[str, Any], str]] = [
    ("recipe-freq", {"composite": {"freq": "bogus"}}, "composite.freq"),
    ("recipe-crs", {"crs": "garbage"}, "crs='garbage'"),
    ("recipe-res-zero", {"resolution": 0}, "'resolution'"),
    ("recipe-res-neg", {"resolution": -20}, "pass 20 instead"),
    ("recipe-chunks", {"chunks": 0}, "chunks=0"),
    ("recipe-groupby", {"groupby": "bogus"}, "groupby='bogus'"),
    ("recipe-dtype", {"dtype": "foo"}, "dtype='foo'"),
    ("recipe-resampling", {"resampling": "fancy"}, "resampling='fancy'"),
    ("recipe-bbox-swapped", {"bbox": [16, 45, 15, 44]}, "min x"),
    ("recipe-fail-on-error", {"fail_on_error": "yes"}, "True or False"),
    ("recipe-missing-source", {"source": "nope/catalog.json"}, "does not exist"),
    ("recipe-source-dir", {"source": "."}, "directory without catalog.json"),
    ("recipe-output-unwritable", {"output": "/proc/x/out.zarr"}, "writable directory"),
    ("recipe-output-file", {"output": "recipe.yaml"}, "not a directory"),
    ("recipe-output-mode", {"output": {"zarr": "o.zarr", "mode": "x"}}, "mode='x'"),
    ("recipe-index", {"index": ["NDXX"]}, "NDXX"),
    ("recipe-mask-option", {"mask": {"type": "s2_scl", "clouds": 1}}, "clouds"),
    ("recipe-mask-bool", {"mask": {"type": "landsat", "cirrus": "no"}}, "mask.cirrus"),
    ("recipe-search-bbox", {"search": {"bbox": [1, 2, 3]}}, "'search'"),
    ("recipe-search-datetime", {"search": {"datetime": "soon"}}, "datetime"),
    ("recipe-search-max-items", {"search": {"max_items": 0}}, "max_items"),
]


def _recipe(env: Env, tmp_path: Path, change: dict[str, Any]) -> Path:
    raw = {"source": env.catalog, **GOOD, **change}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(("case", "change", "fragment"), RECIPES, ids=[c[0] for c in RECIPES])
def test_recipe_refuses_when_read(
    env: Env, tmp_path: Path, case: str, change: dict, fragment: str
) -> None:
    path = _recipe(env, tmp_path, change)
    with pytest.raises(RecipeError) as info:
        read_recipe(path)
    assert fragment in str(info.value), f"{case}: {info.value}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CLI: list[tuple[str, Callable[[Env, Path], list[str]], str]] = [
    ("cli-recipe-missing", lambda e, d: ["run", str(d / "none.yaml")], "not found"),
    ("cli-recipe-dir", lambda e, d: ["run", str(d)], "is a directory"),
    ("cli-recipe-yaml", lambda e, d: ["run", str(_write(d / "r.yaml", "a: [1"))], "not valid YAML"),
    ("cli-recipe-list", lambda e, d: ["run", str(_write(d / "r.yaml", "- 1\n"))], "mapping"),
    ("cli-freq", lambda e, d: ["run", str(_recipe(e, d, {"composite": {"freq": "bogus"}}))], "freq"),
    ("cli-crs", lambda e, d: ["run", str(_recipe(e, d, {"crs": "garbage"}))], "garbage"),
    ("cli-catalog-missing", lambda e, d: ["run", str(_recipe(e, d, {"source": "x.json"}))], "does not exist"),
    ("cli-output-unwritable", lambda e, d: ["run", str(_recipe(e, d, {"output": "/proc/1/x/o.zarr"}))], "writable"),
    ("cli-scheduler-silent", lambda e, d: ["run", str(_recipe(e, d, {})), "--scheduler", f"tcp://127.0.0.1:{_free_port()}"], "nothing answers"),
    ("cli-unknown-key", lambda e, d: ["run", str(_recipe(e, d, {"bandz": 1}))], "bandz"),
]  # fmt: skip


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(("case", "argv", "fragment"), CLI, ids=[c[0] for c in CLI])
def test_cli_one_line_exit_2(
    env: Env,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    case: str,
    argv: Callable,
    fragment: str,
) -> None:
    code = main(argv(env, tmp_path))
    err = capsys.readouterr().err
    assert code == 2, f"{case}: exit {code}: {err}"
    assert "Traceback" not in err
    assert fragment in " ".join(err.split()), f"{case}: {err}"


def test_cli_verbose_shows_the_traceback(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    code = main(["run", str(_recipe(env, tmp_path, {"crs": "garbage"})), "-v"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" in err and "garbage" in err


def test_case_count() -> None:
    assert len(API) + len(RECIPES) + len(CLI) >= 80
