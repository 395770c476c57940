# ruff: noqa: E501  (generated cases read best one per line)
"""Property suite: every drawn grid request loads like ``rasterio.warp.reproject`` of the same
COGs (see grid_cases.py for what is compared). CI runs the derandomized ``ci`` profile; set
``HYPOTHESIS_PROFILE=dev`` for random examples, or run ``python -m benchmarks.grid_properties``
for many more."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from hypothesis import HealthCheck, example, given, settings
from pyproj import Transformer

import eotoolkit

from .grid_cases import Case, _item, _sources, cases, check
from .helpers import item_dict, write_cog

settings.register_profile(
    "ci",
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# fmt: off
# Regressions hypothesis found: a same-CRS grid with another pixel size was read with GDAL's
# decimating RasterIO (shifted pixels); a footprint west of 0 moved east of 180 by rounding;
# and antimeridian, polar and anisotropic grids.
@example(Case("europe", "EPSG:32633", 10.0, (8, 8), "float32", False, 1, (0.0, -0.3), "EPSG:32633", 3, 1.0, None, "nearest"))
@example(Case("arctic", "EPSG:3413", 20.0, (48, 46), "float32", True, 2, (0.8, 0.3), "EPSG:3413", 6, 1.0, (0.2, 0.3, 0.6, 0.7), "nearest", 2466))
@example(Case("arctic", "EPSG:32634", 60.0, (47, 15), "uint8", True, 2, (0.8, 0.0), "EPSG:32634", 7, 2.0, (0.4, 0.3, 0.9, 1.0), "average", 17991))
@example(Case("antimeridian", "EPSG:32660", 20.0, (40, 40), "uint16", True, 2, (0.5, 0.0), "EPSG:4326", 30, 1.0, None, "nearest", 5))
@example(Case("antimeridian", "EPSG:32601", 20.0, (8, 18), "float32", True, 1, (0.8, 0.0), "EPSG:32601", 18, 2.0, None, "average", 117))
@example(Case("antarctic", "EPSG:32720", 10.0, (62, 61), "int16", True, 2, (0.25, 0.0), "EPSG:3031", 32, 1.0, (0.2, 0.0, 0.6, 0.7), "nearest", 248))
@example(Case("antarctic", "EPSG:32720", 60.0, (19, 36), "uint16", True, 2, (0.8, -0.3), "EPSG:4326", 17, 1.0, None, "average", 185))
# Bilinear and cubic: WarpedVRT interpolated unlike GDAL's warper (upsampling); chunks and
# the whole grid used kernels of different widths (downsampling, in chunks); GDAL's fast
# paths weighted a widened kernel past the source's edge unlike its general one; a window a
# rounding error off the source's pixels blended nodata into its neighbours.
@example(Case("arctic", "EPSG:32634", 20.0, (8, 40), "float32", True, 1, (0.0, 0.0), "EPSG:32634", 38, 1.0, (0.2, 0.3, 0.9, 1.0), "cubic", 38))
@example(Case("arctic", "EPSG:3413", 20.0, (33, 36), "float32", True, 2, (0.8, -0.3), "EPSG:3857", 19, 1.0, (0.4, 0.3, 0.9, 0.7), "bilinear", 507))
@example(Case("antarctic", "EPSG:32720", 60.0, (25, 22), "uint16", True, 1, (0.5, 0.3), "EPSG:4326", 6, 2.0, (0.0, 0.3, 0.6, 0.7), "cubic", 428))
@example(Case("europe", "EPSG:3857", 10.0, (42, 21), "float32", False, 1, (0.0, -0.3), "EPSG:3857", 21, 1.0, (0.4, 0.0, 1.0, 1.0), "bilinear", 57, 16))
@example(Case("antimeridian", "EPSG:32660", 20.0, (64, 57), "uint8", False, 1, (0.8, 0.0), "EPSG:32660", 16, 0.5, (0.4, 0.0, 0.6, 0.7), "cubic", 40275, 5))
@example(Case("arctic", "EPSG:3413", 60.0, (55, 34), "float32", False, 1, (0.8, 0.0), "EPSG:3413", 3, 1.0, None, "cubic", 2))
@example(Case("antarctic", "EPSG:4326", 0.0001, (9, 18), "uint8", False, 1, (0.25, -0.3), "EPSG:6933", 8, 1.0, None, "cubic", 4008))
@example(Case("antarctic", "EPSG:32720", 60.0, (44, 32), "int16", False, 1, (0.0, -0.3), "EPSG:4326", 32, 1.0, None, "bilinear", 0, 5))
@example(Case("antarctic", "EPSG:4326", 0.0001, (8, 8), "float32", True, 1, (0.0, -0.3), "EPSG:4326", 8, 1.0, None, "bilinear", 0))
# Kernels read in chunks: GDAL's approximate transformation (0.125 source pixels, interpolated
# along each warp's rows) made pixels at a tile's edge valid in one chunking and empty in
# another, and moved values by up to 4.6 units; a grid that cuts a tile cut a widened kernel
# off at the edge of GDAL's source window in the reference.
@example(Case("arctic", "EPSG:3413", 60.0, (44, 44), "uint8", False, 1, (0.0, 0.3), "EPSG:3857", 44, 1.0, None, "bilinear", 44, 16))
@example(Case("arctic", "EPSG:3413", 60.0, (8, 8), "uint8", False, 1, (0.0, 0.0), "EPSG:32634", 34, 1.0, None, "bilinear", 34, 5))
@example(Case("arctic", "EPSG:4326", 0.0005, (17, 55), "uint16", False, 1, (0.0, -0.3), "EPSG:3413", 48, 1.0, None, "cubic", 2111, 5))
@example(Case("antimeridian", "EPSG:32660", 60.0, (34, 33), "uint16", True, 1, (0.0, 0.0), "EPSG:3857", 19, 0.5, (0.2, 0.3, 1.0, 1.0), "cubic", 19, 5))
@example(Case("antimeridian", "EPSG:4326", 0.0005, (47, 39), "int16", False, 2, (0.8, 0.3), "EPSG:32601", 44, 0.5, (0.2, 0.0, 1.0, 0.7), "bilinear", 273, 16))
@example(Case("arctic", "EPSG:3413", 10.0, (24, 32), "uint16", False, 2, (0.8, -0.3), "EPSG:4326", 21, 1.0, (0.0, 0.3, 0.6, 0.7), "bilinear", 13801, 16))
# Grids in the tiles' CRS with another pixel size, centres and edges on source pixel edges
# and centres: a kernel pixel on the tile's edge valid in one chunking and empty in another;
# cubic exactly on a source pixel's centre (GDAL's other branch there, 22 units away).
@example(Case("europe", "EPSG:4326", 0.0001, (54, 8), "int16", True, 1, (0.8, -0.3), "EPSG:4326", 3, 1.0, (0.2, 0.3, 1.0, 1.0), "cubic", 54, 5))
@example(Case("antimeridian", "EPSG:4326", 0.0001, (29, 29), "uint16", True, 1, (0.5, -0.3), "EPSG:4326", 29, 0.5, (0.4, 0.3, 1.0, 0.7), "cubic", 1, 16))
@example(Case("antimeridian", "EPSG:32660", 60.0, (11, 38), "int16", False, 1, (0.0, 0.0), "EPSG:3857", 26, 0.5, None, "cubic", 1984, 16))
# Items across 180 degrees onto CRSs whose x wraps around the world (a grid past the world's
# east edge, not around the world), and Web Mercator / EASE-Grid 2.0 tiles running past that
# edge (their part east of 180 was never read)
@example(Case("antimeridian", "EPSG:32660", 30.0, (64, 64), "uint16", True, 2, (0.5, 0.0), "EPSG:3857", 20, 1.0, None, "nearest", 5))
@example(Case("antimeridian", "EPSG:32601", 60.0, (40, 40), "int16", True, 2, (0.8, 0.0), "EPSG:6933", 24, 1.0, (0.2, 0.0, 1.0, 0.7), "bilinear", 11, 5))
@example(Case("antimeridian", "EPSG:3857", 60.0, (40, 40), "uint16", True, 2, (0.8, 0.0), "EPSG:32601", 20, 1.0, None, "nearest", 7))
@example(Case("antimeridian", "EPSG:3857", 60.0, (40, 40), "float32", False, 2, (0.8, 0.0), "EPSG:4326", 20, 1.0, None, "cubic", 7, 16))
@example(Case("antimeridian", "EPSG:6933", 60.0, (40, 40), "uint16", True, 2, (0.8, 0.0), "EPSG:3857", 20, 1.0, (0.2, 0.0, 1.0, 0.7), "average", 7, 5))
@example(Case("antimeridian", "EPSG:6933", 60.0, (40, 40), "uint16", True, 2, (0.8, 0.0), "EPSG:6933", 20, 1.0, None, "bilinear", 7))
@example(Case("antimeridian", "EPSG:4326", 0.0005, (40, 40), "uint8", True, 2, (0.8, 0.0), "EPSG:3857", 20, 2.0, None, "average", 3))
@given(cases())
def test_load_matches_reproject(case: Case) -> None:
    check(case)
# fmt: on


# fmt: off
# Regression: a grid in the tile's CRS near 180 degrees put a pixel centre on a source pixel
# edge, which the grid read whole took on one side and a 5-pixel chunk on the other.
@example(Case("antimeridian", "EPSG:4326", 0.0002, (8, 53), "uint16", False, 1, (0.8, 0.0), "EPSG:4326", 3, 1.0, (0.0, 0.0, 0.6, 0.7), "nearest", 53, 5))
@settings(max_examples=60)
@given(cases(chunked_nearest=True))
def test_nearest_in_chunks_matches_reproject(case: Case) -> None:
    """Nearest read in chunks is the whole-grid warp, pixel for pixel (both transform every
    pixel exactly; GDAL's default approximation differs between chunkings near pixel edges)."""
    check(case)
# fmt: on


# fmt: off
# Regressions: GDAL's average skipped an output pixel whose corner lay more than
# 2 * ceil(1 / scale) source pixels outside the source, with the scale derived from each warp's
# windows, so pixels that a tile's corner barely reaches were empty in one chunking (a one-row
# chunk at the bottom of a bbox) and valid in another (a rotated grid, a chunk past the tile).
@example(Case("antarctic", "EPSG:3031", 60.0, (64, 55), "uint16", False, 1, (0.5, -0.3), "EPSG:4326", 42, 0.5, (0.4, 0.3, 0.9, 1.0), "average", 13409, 5))
@example(Case("arctic", "EPSG:3413", 60.0, (60, 22), "float32", False, 2, (0.8, 0.3), "EPSG:32634", 44, 1.0, None, "average", 313, 16))
# items crossing 180 degrees onto Web Mercator (a world-wide grid before grids continued past
# the world's east edge), in 5-pixel chunks
@example(Case("antimeridian", "EPSG:32660", 60.0, (64, 19), "uint8", False, 1, (0.8, -0.3), "EPSG:3857", 16, 1.0, None, "average", 1758, 5))
# a grid in the tile's CRS whose chunk only touches the tile's edge (moved onto it by the
# tie shift): the chunk was taken as disjoint from the tile
@example(Case("arctic", "EPSG:3413", 10.0, (8, 43), "float32", True, 1, (0.25, -0.3), "EPSG:3413", 43, 0.5, (0.4, 0.3, 1.0, 0.7), "average", 0, 5))
# a grid in the tiles' CRS whose pixels touch a tile's left edge with no overlap, which GDAL's
# average takes as valid or not by one rounding step of Web Mercator's coordinates near 180
@example(Case("antimeridian", "EPSG:3857", 20.0, (29, 29), "uint8", False, 2, (0.25, -0.3), "EPSG:3857", 29, 0.5, None, "average", 2605, 5))
# a grid on the tiles' own pixels over their nodata blocks: no pixel takes a sliver of a
# valid neighbour
@example(Case("antimeridian", "EPSG:4326", 0.0005, (20, 8), "int16", True, 2, (0.8, 0.0), "EPSG:4326", 20, 1.0, (0.2, 0.0, 1.0, 0.7), "average", 65536))
# a polar tile onto EASE-Grid 2.0: GDAL's average takes the box of a pixel's top-left and
# bottom-right corners in the source, which reached the tile from a pixel beyond the chunks
# that read the tile (its footprint and one pixel around it)
@example(Case("antarctic", "EPSG:3031", 20.0, (24, 24), "uint16", False, 2, (0.25, 0.3), "EPSG:6933", 24, 1.0, None, "average", 577, 16))
# a Web Mercator tile running past 180 degrees: the pixel across 180 averages a source window
# that depends on the warp's source window (the whole tile in the reference)
@example(Case("antimeridian", "EPSG:3857", 60.0, (62, 62), "float32", False, 2, (0.25, 0.0), "EPSG:32601", 17, 0.5, None, "average", 144, 5))
@settings(max_examples=60)
@given(cases(chunked="average"))
def test_average_in_chunks_matches_reproject(case: Case) -> None:
    """Average read in chunks is the whole-grid warp: the same valid pixels, the same values
    within the rounding of integer types."""
    check(case)
# fmt: on


def test_nearest_ties_go_right_and_down_in_any_chunks() -> None:
    """A grid of twice the pixel size in the tile's CRS puts every centre on a source pixel
    corner; near 180 degrees GDAL's rounding chose either side, differently per chunk. Every
    chunking takes the source pixel right of and below the centre."""
    r = 0.0002
    t = Affine(r, 0, 449900 * 2 * r, 0, -r, 130000 * 2 * r)  # 179.96 E, 52 N
    data = np.arange(1, 40 * 40 + 1, dtype="uint16").reshape(40, 40)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_cog(Path(tmp) / "a.tif", data, "EPSG:4326", t, nodata=0)
        items = [item_dict("a", str(path), "EPSG:4326", t, (40, 40), "2024-05-01T10:00:00Z")]
        for chunks in (None, 3, 7):
            ds = eotoolkit.load(
                items, crs="EPSG:4326", resolution=2 * r, resampling="nearest", chunks=chunks
            )
            got = ds["B04"].isel(time=0).values
            np.testing.assert_array_equal(got, data[1::2, 1::2], err_msg=f"chunks={chunks}")


@pytest.mark.parametrize("method", ["nearest", "average", "bilinear"])
def test_overview_the_same_for_every_chunk(method: str) -> None:
    """A polar tile with overviews onto a coarse geographic grid: every chunk reads the overview
    the grid read whole reads (it was chosen from each chunk's own extent per pixel, which
    varies over such a grid: more than half of the pixels differed in 16-pixel chunks)."""
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:3413", always_xy=True).transform(21.0, 78.6)
    t = Affine(60, 0, round(x, -3), 0, -60, round(y, -3))
    data = np.random.default_rng(0).integers(1, 3000, (512, 512)).astype("uint16")
    with tempfile.TemporaryDirectory() as tmp:
        path = write_cog(Path(tmp) / "a.tif", data, "EPSG:3413", t, nodata=0)
        items = [item_dict("a", str(path), "EPSG:3413", t, (512, 512), "2024-05-01T10:00:00Z")]
        got = {
            chunks: eotoolkit.load(
                items, crs="EPSG:4326", resolution=0.003, resampling=method, chunks=chunks
            )["B04"]
            .isel(time=0)
            .values
            for chunks in (None, 16)
        }
    np.testing.assert_array_equal(got[16], got[None])


def _antimeridian_items(root: Path) -> list[dict]:
    case = Case(
        "antimeridian",
        "EPSG:32660",
        30.0,
        (64, 64),
        "uint16",
        True,
        2,
        (0.5, 0.0),
        "EPSG:4326",
        20,
        1.0,
        None,
        "nearest",
    )
    tiles = _sources(case, root)
    return [
        _item(f"t{k}", str(p), case.src_crs, t, case.shape, dtype="uint16", nodata=0)
        for k, (p, t) in enumerate(tiles)
    ]


def test_antimeridian_items_load_narrow_in_degrees() -> None:
    """Items straddling 180 degrees load onto a narrow grid east of 180, not a world-wide one."""
    with tempfile.TemporaryDirectory() as tmp:
        items = _antimeridian_items(Path(tmp))
        ds = eotoolkit.load(items, crs="EPSG:4326", resolution=0.0005)
        x = ds["x"].values
        assert x.max() - x.min() < 0.2 and x.min() < 180 < x.max()
        assert ds.sizes["x"] < 400
        values = ds["B04"].isel(time=0).values
        assert (values != 0).mean() > 0.5
        # a lon/lat bbox given on either side of the antimeridian selects the same pixels
        east = eotoolkit.subset(ds, bbox=(179.99, 51.99, 180.01, 52.01))
        west = eotoolkit.subset(ds, bbox=(-180.01, 51.99, -179.99, 52.01))
        assert east.sizes == west.sizes and east.sizes["x"] > 0


@pytest.mark.parametrize("crs", ["EPSG:4326", "EPSG:32633"])
def test_coordinates_named_for_rioxarray(crs: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        case = Case(
            "europe",
            "EPSG:32633",
            20.0,
            (32, 32),
            "uint16",
            False,
            1,
            (0.0, 0.0),
            crs,
            10,
            1.0,
            None,
            "nearest",
        )
        tiles = _sources(case, Path(tmp))
        items = [_item("a", str(tiles[0][0]), case.src_crs, tiles[0][1], case.shape)]
        res = 0.0002 if crs == "EPSG:4326" else 20
        ds = eotoolkit.load(items, crs=crs, resolution=res)
        assert ds["B04"].dims == ("time", "y", "x")
        assert ds["x"].dims == ("x",) and ds["y"].dims == ("y",)
        assert ds.rio.crs.to_epsg() == int(crs.split(":")[1])
        assert np.all(np.diff(ds["y"].values) < 0) and np.all(np.diff(ds["x"].values) > 0)
        coarse = eotoolkit.resample(ds, resolution=res * 2, method="nearest")
        assert coarse["B04"].dims == ("time", "y", "x") and coarse.rio.crs == ds.rio.crs


@pytest.mark.parametrize("crs", ["EPSG:3857", "EPSG:6933"])
def test_antimeridian_items_load_narrow_where_x_wraps(crs: str) -> None:
    """Items straddling 180 degrees onto Web Mercator or EASE-Grid 2.0: a grid of a few
    kilometres continuing past the world's east edge (x past 20037508 m in Web Mercator), not
    one of 400,000 columns around the world, with the pixels of a whole-grid GDAL warp; a
    lon/lat bbox across 180 selects the same area as in degrees."""
    from eotoolkit._grid import x_wrap

    wrap = x_wrap(crs)
    assert wrap is not None
    edge = wrap.west + wrap.period
    case = Case("antimeridian", "EPSG:32660", 30.0, (64, 64), "uint16", True, 2, (0.5, 0.0), crs, 20, 1.0, None, "nearest")  # fmt: skip
    assert check(case)["shape"][1] < 100
    with tempfile.TemporaryDirectory() as tmp:
        items = _antimeridian_items(Path(tmp))
        ds = eotoolkit.load(items, crs=crs, resolution=100)
        deg = eotoolkit.load(items, crs="EPSG:4326", resolution=0.001)
        x = ds["x"].values
        assert ds.sizes["x"] < 100 and x.min() < edge < x.max()
        values = ds["B04"].isel(time=0).values
        east_of_180 = values[:, x > edge]
        assert (east_of_180 != 0).mean() > 0.5
        for bbox in ((179.99, 51.99, 180.01, 52.01), (-180.01, 51.99, -179.99, 52.01)):
            cut = eotoolkit.subset(ds, bbox=bbox)
            cut_deg = eotoolkit.subset(deg, bbox=bbox)
            west, south, east, north = cut.rio.bounds()
            lon, lat = Transformer.from_crs(wrap.over, "EPSG:4326", always_xy=True).transform(
                [west, east], [south, north]
            )
            dwest, dsouth, deast, dnorth = cut_deg.rio.bounds()
            # the same area, to a pixel of either grid
            assert lon[0] == pytest.approx(dwest, abs=0.002)
            assert lon[1] == pytest.approx(deast, abs=0.002)
            assert lat[0] == pytest.approx(dsouth, abs=0.002)
            assert lat[1] == pytest.approx(dnorth, abs=0.002)
            assert lon[0] < 180 < lon[1]


@pytest.mark.parametrize("crs", ["EPSG:3857", "EPSG:4326", "EPSG:32601", "EPSG:32660"])
def test_web_mercator_tile_past_180_is_read(crs: str) -> None:
    """A Web Mercator tile whose pixels run past x = 20037508 m: its part east of 180 degrees
    is read (it was left empty), as a whole-grid GDAL warp reads it."""
    case = Case("antimeridian", "EPSG:3857", 60.0, (40, 40), "uint16", False, 2, (0.8, 0.0), crs, 20, 1.0, None, "nearest", 3)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        path, t = _sources(case, Path(tmp))[1]
        assert t.c < 20037508.342789244 < t.c + 40 * t.a
        item = _item("t1", str(path), case.src_crs, t, case.shape, dtype="uint16", nodata=None)
        ds = eotoolkit.load(
            [item], crs="EPSG:4326", resolution=0.0005, dtype="float64", groupby="time"
        )
        got = ds["B04"].isel(time=0).values
        east = got[:, ds["x"].values > 180.0]
        assert east.size and (~np.isnan(east)).mean() > 0.9
    check(case)


def test_pseudo_cylindrical_tile_past_its_world_edge_warns() -> None:
    """A sinusoidal tile running past its world's edge (whose period shrinks towards the poles,
    so no shifted CRS describes its pixels past the edge) warns that those pixels are not read
    onto another CRS, instead of dropping them silently; onto its own CRS it is read whole."""
    t = Affine(100, 0, 20030000, 0, -100, 10000)
    data = np.full((100, 100), 7, "uint16")
    with tempfile.TemporaryDirectory() as tmp:
        path = write_cog(Path(tmp) / "s.tif", data, "ESRI:54008", t, nodata=0)
        items = [item_dict("s", str(path), "ESRI:54008", t, (100, 100), "2024-05-01T10:00:00Z")]
        with pytest.warns(eotoolkit.errors.AssetReadWarning, match="past the edge of the world"):
            eotoolkit.load(items, crs="EPSG:4326", resolution=0.001)["B04"].compute()
        own = eotoolkit.load(items, crs="ESRI:54008", resolution=100)["B04"].values
        np.testing.assert_array_equal(own[0], data)
