"""Items written the way real providers publish them, on COGs that match their metadata.

Earth Search (sentinel-2-l2a with ``raster:bands``, sentinel-2-c1-l2a with STAC 1.1 ``bands``
and ``raster:scale``/``raster:offset``), Planetary Computer (landsat-c2-l2 with item-level
``proj:*`` and ``QA_PIXEL`` bits), ``proj:epsg: null`` with ``proj:wkt2``, ``datetime: null``
with a range, hrefs relative to the item file; and files that disagree with their metadata,
which must fail with one error naming both values, never load a silently wrong array.
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pytest
import rasterio
from affine import Affine
from pyproj import CRS, Transformer
from rasterio.io import MemoryFile

import eotoolkit as eo
from eotoolkit.errors import (
    AssetMetadataError,
    AssetReadError,
    AssetReadWarning,
    BandNotFoundError,
    InvalidParameterError,
)

from .helpers import write_cog

COG = "image/tiff; application=geotiff; profile=cloud-optimized"
T10 = Affine(10, 0, 500_000, 0, -10, 5_000_000)
T20 = Affine(20, 0, 500_000, 0, -20, 5_000_000)
T30 = Affine(30, 0, 500_010, 0, -30, 5_000_010)
RED = (np.arange(64 * 64).reshape(64, 64) % 1000 + 1000).astype("uint16")
RED[0, 0] = 0
SCL = np.full((32, 32), 4, "uint8")
SCL[:4] = 9
LRED = (np.arange(40 * 40).reshape(40, 40) % 3000 + 8000).astype("uint16")
LRED[5, 5] = 0
QA = np.full((40, 40), 21824, "uint16")  # clear
QA[:5] = 22280  # cloud (bit 3)


def _lonlat(crs: str, t: Affine, shape: tuple[int, int]) -> list[float]:
    h, w = shape
    left, top = t.c, t.f
    right, bottom = left + w * t.a, top + h * t.e
    xs, ys = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(
        [left, right, right, left], [bottom, bottom, top, top]
    )
    return [min(xs), min(ys), max(xs), max(ys)]


def _feature(iid: str, props: dict, assets: dict, bbox: list[float]) -> dict[str, Any]:
    x0, y0, x1, y1 = bbox
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": iid,
        "bbox": bbox,
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": props,
        "assets": assets,
        "links": [],
    }


def _proj(t: Affine, n: int) -> dict[str, Any]:
    return {"proj:shape": [n, n], "proj:transform": list(t)[:6]}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("real")
    write_cog(d / "red.tif", RED, "EPSG:32633", T10)
    write_cog(d / "scl.tif", SCL, "EPSG:32633", T20)
    write_cog(d / "lred.tif", LRED, "EPSG:32633", T30)
    write_cog(d / "lqa.tif", QA, "EPSG:32633", T30, nodata=1)
    write_cog(d / "red34.tif", RED, "EPSG:32634", T10)
    write_cog(d / "i16.tif", (RED.astype("int32") - 1500).astype("int16"), "EPSG:32633", T10)
    profile = {"driver": "GTiff", "width": 64, "height": 64, "count": 1, "dtype": "uint16"}
    profile.update(crs="EPSG:32633", transform=T10, nodata=0)
    with MemoryFile() as mem, mem.open(**profile) as tmp:
        tmp.write(RED, 1)
        tmp.scales, tmp.offsets = (0.0001,), (-0.1,)
        rasterio.shutil.copy(tmp, d / "tagged.tif", driver="COG", blocksize=64)
    profile.update(count=3, dtype="uint8")
    with MemoryFile() as mem, mem.open(**profile) as tmp:
        tmp.write(np.stack([RED // 10, RED // 20, RED // 30]).astype("uint8"))
        rasterio.shutil.copy(tmp, d / "visual.tif", driver="COG", blocksize=64)
    return d


BBOX = _lonlat("EPSG:32633", T10, (64, 64))


def _scaled(raw: np.ndarray, scale: float, offset: float) -> np.ndarray:
    out = raw.astype("float64") * scale + offset
    return np.where(raw == 0, np.nan, out)


def _earth_search_v1(root: Path) -> dict[str, Any]:
    props = {
        "datetime": "2024-05-01T10:06:14.123000Z",
        "proj:epsg": 32633,
        "eo:cloud_cover": 3.2,
        "s2:processing_baseline": "05.10",
    }
    red = {
        "href": str(root / "red.tif"),
        "type": COG,
        "roles": ["data", "reflectance"],
        "gsd": 10,
        "eo:bands": [{"name": "B04", "common_name": "red", "center_wavelength": 0.665}],
        **_proj(T10, 64),
        "raster:bands": [
            {
                "nodata": 0,
                "data_type": "uint16",
                "bits_per_sample": 15,
                "spatial_resolution": 10,
                "scale": 0.0001,
                "offset": -0.1,
            }
        ],
    }
    scl = {
        "href": str(root / "scl.tif"),
        "type": COG,
        "roles": ["data"],
        **_proj(T20, 32),
        "raster:bands": [{"nodata": 0, "data_type": "uint8", "spatial_resolution": 20}],
    }
    thumb = {"href": "https://example.com/thumb.jpg", "type": "image/jpeg", "roles": ["thumbnail"]}
    assets = {"red": red, "scl": scl, "thumbnail": thumb}
    return _feature("S2B_33TUN_20240501_0_L2A", props, assets, BBOX)


def test_earth_search_v1_scaled_and_mixed_resolutions_aligned(root: Path) -> None:
    ds = eo.load([_earth_search_v1(root)], bands=["red", "scl"], resolution=10).compute()
    assert ds.rio.crs.to_epsg() == 32633 and ds.rio.resolution() == (10.0, -10.0)
    np.testing.assert_allclose(ds.red.values[0], _scaled(RED, 0.0001, -0.1), atol=1e-6)
    assert ds.scl.dtype == np.uint8
    np.testing.assert_array_equal(ds.scl.values[0], np.kron(SCL, np.ones((2, 2), "uint8")))
    assert ds.time.values[0] == np.datetime64("2024-05-01T10:06:14.123")
    masked = eo.mask_clouds(ds)
    assert (
        np.isnan(masked.red.values[0, :8]).all() and np.isfinite(masked.red.values[0, 8:, 1:]).all()
    )


def test_earth_search_c1_stac_1_1_bands(root: Path) -> None:
    on_asset = {
        "href": str(root / "red.tif"),
        "type": COG,
        "bands": [{"name": "B04", "eo:common_name": "red"}],
        "nodata": 0,
        "data_type": "uint16",
        "raster:scale": 0.0001,
        "raster:offset": -0.1,
        "proj:code": "EPSG:32633",
        **_proj(T10, 64),
    }
    in_bands = copy.deepcopy(on_asset)
    for key in ("nodata", "data_type", "raster:scale", "raster:offset"):
        in_bands["bands"][0][key] = in_bands.pop(key)
    props = {"datetime": "2024-05-01T10:06:14Z", "s2:processing_baseline": "05.10"}
    for asset in (on_asset, in_bands):
        ds = eo.load([_feature("c1", props, {"red": asset}, BBOX)], bands=["red"])
        np.testing.assert_allclose(ds.red.values[0], _scaled(RED, 0.0001, -0.1), atol=1e-6)


def test_planetary_computer_landsat_item_level_proj_and_qa_pixel(root: Path) -> None:
    props = {
        "datetime": "2024-05-02T09:50:11.1234Z",
        "platform": "landsat-9",
        "proj:epsg": 32633,
        **_proj(T30, 40),
    }
    red = {
        "href": str(root / "lred.tif"),
        "type": COG,
        "roles": ["data"],
        "eo:bands": [{"name": "SR_B4", "common_name": "red"}],
        "raster:bands": [
            {"scale": 2.75e-05, "offset": -0.2, "nodata": 0, "data_type": "uint16"},
        ],
    }
    qa = {
        "href": str(root / "lqa.tif"),
        "type": COG,
        "roles": ["cloud", "cloud-shadow"],
        "raster:bands": [{"unit": "bit index", "nodata": 1, "data_type": "uint16"}],
    }
    item = _feature("LC09_L2SP_190028_20240502_02_T1", props, {"red": red, "qa_pixel": qa}, BBOX)
    ds = eo.load([item], bands=["red", "qa_pixel"]).compute()
    assert ds.rio.resolution() == (30.0, -30.0) and ds.qa_pixel.dtype == np.uint16
    np.testing.assert_allclose(ds.red.values[0], _scaled(LRED, 2.75e-5, -0.2), atol=1e-6)
    masked = eo.mask_landsat(ds).red.values[0]
    assert np.isnan(masked[:5]).all() and np.isfinite(masked[5:]).sum() == 35 * 40 - 1


def _plain(root: Path, href: str = "red.tif", **props: Any) -> dict[str, Any]:
    asset = {"href": str(root / href), "type": COG, **_proj(T10, 64)}
    asset["raster:bands"] = [{"nodata": 0, "data_type": "uint16"}]
    return _feature("plain", {"datetime": "2024-05-01T10:00:00Z", **props}, {"B04": asset}, BBOX)


def test_epsg_null_with_wkt2(root: Path) -> None:
    item = _plain(root, **{"proj:epsg": None, "proj:wkt2": CRS.from_epsg(32633).to_wkt()})
    ds = eo.load([item])
    assert ds.rio.crs.to_epsg() == 32633
    np.testing.assert_array_equal(ds.B04.values[0], RED)


def test_proj_epsg_as_a_string_code(root: Path) -> None:
    assert eo.load([_plain(root, **{"proj:epsg": "EPSG:32633"})]).rio.crs.to_epsg() == 32633


def test_datetime_null_uses_start_datetime(root: Path) -> None:
    item = _plain(root, **{"proj:epsg": 32633})
    item["properties"].update(
        datetime=None, start_datetime="2024-05-01T00:00:00Z", end_datetime="2024-05-31T23:59:59Z"
    )
    assert eo.load([item]).time.values[0] == np.datetime64("2024-05-01")


def test_item_without_any_time_is_refused(root: Path) -> None:
    item = _plain(root, **{"proj:epsg": 32633})
    item["properties"]["datetime"] = None
    with pytest.raises(InvalidParameterError, match="'plain' has no usable time"):
        eo.load([item])


def test_relative_href_of_an_item_dict_is_relative_to_its_self_link(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "red.tif").write_bytes((root / "red.tif").read_bytes())
    item = _plain(root, **{"proj:epsg": 32633})
    item["assets"]["B04"]["href"] = "./red.tif"
    item["links"] = [{"rel": "self", "href": str(tmp_path / "item.json")}]
    (tmp_path / "item.json").write_text(json.dumps(item))
    monkeypatch.chdir(root.parent)  # never the working directory
    np.testing.assert_array_equal(eo.load([item]).B04.values[0], RED)
    from_file = pystac.Item.from_file(str(tmp_path / "item.json"))
    np.testing.assert_array_equal(eo.load([from_file]).B04.values[0], RED)
    item["links"] = []
    with pytest.raises(InvalidParameterError, match=r"relative href '\./red\.tif'"):
        eo.load([item])


def test_crs_of_the_file_disagreeing_with_the_item(root: Path) -> None:
    item = _plain(root, "red34.tif", **{"proj:epsg": 32633})
    with pytest.raises(AssetMetadataError, match="is in EPSG:32634 but its item says EPSG:32633"):
        eo.load([item]).compute()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        values = eo.load([item], fail_on_error=False).B04.values
    assert (values == 0).all()  # uint16 with nodata 0: filled
    assert any(issubclass(w.category, AssetReadWarning) for w in caught)


@pytest.mark.parametrize(
    "spelling",
    [
        "+proj=utm +zone=33 +ellps=WGS84 +towgs84=0,0,0,0,0,0,0 +units=m +no_defs",
        'PROJCS["WGS_1984_UTM_Zone_33N",GEOGCS["GCS_WGS_1984",DATUM["D_WGS_1984",'
        'SPHEROID["WGS_1984",6378137.0,298.257223563]],PRIMEM["Greenwich",0.0],'
        'UNIT["Degree",0.0174532925199433]],PROJECTION["Transverse_Mercator"],'
        'PARAMETER["False_Easting",500000.0],PARAMETER["False_Northing",0.0],'
        'PARAMETER["Central_Meridian",15.0],PARAMETER["Scale_Factor",0.9996],'
        'PARAMETER["Latitude_Of_Origin",0.0],UNIT["Meter",1.0]]',
    ],
    ids=["proj-null-towgs84", "esri-wkt"],
)
def test_file_crs_spelled_otherwise_is_the_items_crs(
    root: Path, tmp_path: Path, spelling: str
) -> None:
    """A file whose CRS is another spelling of the item's EPSG code loads as the item says."""
    write_cog(tmp_path / "red.tif", RED, spelling, T10)
    item = _plain(tmp_path, **{"proj:epsg": 32633})
    np.testing.assert_array_equal(eo.load([item]).B04.values[0], RED)


@pytest.mark.parametrize(
    "change",
    [
        {"proj:shape": [32, 32]},
        {"proj:transform": [10, 0, 600_000, 0, -10, 5_000_000]},
    ],
    ids=["shape", "transform"],
)
def test_extent_of_the_file_disagreeing_with_the_item(root: Path, change: dict) -> None:
    item = _plain(root, **{"proj:epsg": 32633})
    item["assets"]["B04"].update(change)
    with pytest.raises(AssetMetadataError, match="64 x 64 pixels"):
        eo.load([item]).compute()


def test_scale_in_the_file_tags(root: Path) -> None:
    item = _plain(root, "tagged.tif", **{"proj:epsg": 32633})
    with pytest.raises(AssetMetadataError, match="would load unscaled"):
        eo.load([item]).compute()
    item["assets"]["B04"]["raster:bands"][0].update(scale=0.0001, offset=-0.1)
    got = eo.load([item]).B04.values[0]  # the same scaling in both: applied once
    np.testing.assert_allclose(got, _scaled(RED, 0.0001, -0.1), atol=1e-6)
    item["assets"]["B04"]["raster:bands"][0].update(scale=0.001, offset=0)
    with pytest.raises(AssetMetadataError, match="which is right is unknown"):
        eo.load([item]).compute()


def test_data_type_of_the_file_disagreeing_with_the_item(root: Path) -> None:
    item = _plain(root, "i16.tif", **{"proj:epsg": 32633})
    with pytest.raises(AssetMetadataError, match="is int16 but its item says data_type 'uint16'"):
        eo.load([item]).compute()


def test_multi_band_visual_asset(root: Path) -> None:
    item = _earth_search_v1(root)
    item["assets"]["visual"] = {
        "href": str(root / "visual.tif"),
        "type": COG,
        "roles": ["visual"],
        **_proj(T10, 64),
        "eo:bands": [{"name": b, "common_name": c} for b, c in (("B04", "red"), ("B03", "green"))],
    }
    with pytest.raises(InvalidParameterError, match="holds 2 bands"):
        eo.load([item], bands=["visual"])
    assert set(eo.load([item], resolution=10).data_vars) == {"red", "scl"}
    del item["assets"]["visual"]["eo:bands"]  # undeclared: the file tells
    with pytest.raises(AssetMetadataError, match="holds 3 bands"):
        eo.load([item], bands=["visual"]).compute()
    with pytest.raises(BandNotFoundError, match="no single-band raster asset"):
        only = copy.deepcopy(item)
        only["assets"] = {"visual": {**item["assets"]["visual"], "eo:bands": [{}, {}, {}]}}
        eo.load([only])


def test_three_dimensional_proj_bbox(root: Path) -> None:
    item = _plain(
        root, **{"proj:epsg": 32633, "proj:bbox": [500_000, 4_999_360, 0, 500_640, 5e6, 0]}
    )
    for key in ("proj:shape", "proj:transform"):
        del item["assets"]["B04"][key]
    ds = eo.load([item], resolution=10)
    assert ds.B04.shape == (1, 64, 64) and float(ds.x[0]) == 500_005.0
    np.testing.assert_array_equal(ds.B04.values[0], RED)


def test_truncated_cog_names_the_cause(root: Path, tmp_path: Path) -> None:
    data = (root / "red.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) // 2])
    item = _plain(tmp_path, "cut.tif", **{"proj:epsg": 32633})
    with pytest.raises(AssetReadError, match=r"cut\.tif.*truncated or corrupt"):
        eo.load([item]).compute()


def test_common_name_on_several_resolutions_picks_the_finest(root: Path, tmp_path: Path) -> None:
    """Copernicus Data Space: B04_60m, B04_20m and B04_10m all carry eo:common_name red."""
    t60 = Affine(60, 0, 500_000, 0, -60, 5_000_000)
    write_cog(tmp_path / "r60.tif", (RED[::6, ::6] + 7).astype("uint16"), "EPSG:32633", t60)
    write_cog(tmp_path / "r20.tif", (RED[::2, ::2] + 3).astype("uint16"), "EPSG:32633", T20)

    def asset(href: Path, t: Affine, n: int) -> dict[str, Any]:
        band = {"name": "B04", "eo:common_name": "red", "raster:scale": 0.0001}
        band.update({"raster:offset": -0.1, "nodata": 0, "data_type": "uint16"})
        out = {"href": str(href), "type": "image/jp2", "proj:code": "EPSG:32633", **_proj(t, n)}
        return {**out, "bands": [band]}

    assets = {
        "B04_60m": asset(tmp_path / "r60.tif", t60, 11),
        "B04_20m": asset(tmp_path / "r20.tif", T20, 32),
        "B04_10m": asset(root / "red.tif", T10, 64),
    }
    item = _feature(
        "S2A_MSIL2A_20240501T100031_N0510", {"datetime": "2024-05-01T10Z"}, assets, BBOX
    )
    ds = eo.load([item], bands=["red"])
    assert ds.rio.resolution() == (10.0, -10.0)
    np.testing.assert_allclose(ds.red.values[0], _scaled(RED, 0.0001, -0.1), atol=1e-6)


def test_landsat_grid_edges_at_15_modulo_30_load_on_their_own_pixels(tmp_path: Path) -> None:
    """USGS Landsat C2 pixel edges are odd multiples of 15 m: a native load keeps them, instead
    of a grid on multiples of 30 m half a pixel off every source pixel (and one pixel larger)."""
    t = Affine(30, 0, 304_185, 0, -30, 5_090_415)
    data = (np.arange(40 * 40).reshape(40, 40) + 8000).astype("uint16")
    write_cog(tmp_path / "sr_b4.tif", data, "EPSG:32633", t)
    props = {"datetime": "2024-05-02T09:50:11Z", "proj:epsg": 32633, **_proj(t, 40)}
    band = {"scale": 2.75e-05, "offset": -0.2, "nodata": 0, "data_type": "uint16"}
    asset = {"href": str(tmp_path / "sr_b4.tif"), "type": COG, "raster:bands": [band]}
    item = _feature("LC09_L2SP", props, {"red": asset}, _lonlat("EPSG:32633", t, (40, 40)))
    ds = eo.load([item], bands=["red"])
    assert ds.red.shape == (1, 40, 40)
    assert float(ds.x[0]) == 304_200.0 and float(ds.y[0]) == 5_090_400.0
    np.testing.assert_allclose(ds.red.values[0], data * 2.75e-5 - 0.2, atol=1e-6)
    coarse = eo.load([item], bands=["red"], resolution=60)  # other sizes: multiples of 60 m
    assert float(coarse.x[0]) % 60 == 30.0 and float(coarse.y[0]) % 60 == 30.0


def test_nodata_of_the_file_disagreeing_with_the_item(root: Path) -> None:
    item = _plain(root, **{"proj:epsg": 32633})
    item["assets"]["B04"]["raster:bands"][0]["nodata"] = 65535  # the file says 0
    with pytest.raises(AssetMetadataError, match=r"nodata 0\.0 in the file but its item says"):
        eo.load([item]).compute()


def test_proj_bbox_and_proj_shape_give_the_native_resolution(root: Path) -> None:
    item = _plain(root, **{"proj:epsg": 32633})
    del item["assets"]["B04"]["proj:transform"]
    item["assets"]["B04"]["proj:bbox"] = [500_000, 4_999_360, 500_640, 5_000_000]
    ds = eo.load([item])
    assert ds.rio.resolution() == (10.0, -10.0)
    np.testing.assert_array_equal(ds.B04.values[0], RED)


def test_items_mixing_scaled_and_unscaled_metadata(root: Path) -> None:
    """Earth Search items (raster:bands scale/offset) with Planetary Computer ones (none)."""
    scaled = _earth_search_v1(root)
    raw = _plain(root, **{"proj:epsg": 32633})
    raw["id"] = "S2A_MSIL2A_20240511"
    raw["properties"]["datetime"] = "2024-05-11T10:00:00Z"
    raw["assets"] = {"red": raw["assets"]["B04"]}
    with pytest.raises(InvalidParameterError, match=r"'S2A_MSIL2A_20240511'.*separately"):
        eo.load([scaled, raw], bands=["red"])
