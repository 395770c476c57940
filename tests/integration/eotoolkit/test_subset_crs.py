"""The same items loaded in EPSG:4326 and in their UTM zone: ``subset`` by a lon/lat bbox
selects the same area in both."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from affine import Affine
from pyproj import Geod

import eotoolkit

from .helpers import item_dict, write_cog

T = Affine(10, 0, 500_000, 0, -10, 5_330_000)  # UTM 33N, about 15E 48.1N
SHAPE = (300, 300)
BBOX = (15.005, 48.1, 15.03, 48.115)


def _area(ds) -> float:  # type: ignore[no-untyped-def]
    """Area (km2) of the valid pixels' bounding box, on the ellipsoid."""
    b = ds.rio.transform_bounds("EPSG:4326")
    lons = [b[0], b[2], b[2], b[0]]
    lats = [b[1], b[1], b[3], b[3]]
    return abs(Geod(ellps="WGS84").polygon_area_perimeter(lons, lats)[0]) / 1e6


def test_subset_same_area_in_degrees_and_metres(tmp_path: Path) -> None:
    rows, cols = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    data = (2 * rows + cols + 1).astype("uint16")  # smooth: equal areas have equal means
    write_cog(tmp_path / "a.tif", data, "EPSG:32633", T)
    items = [item_dict("a", str(tmp_path / "a.tif"), "EPSG:32633", T, SHAPE, "2024-05-01T10Z")]
    utm = eotoolkit.subset(eotoolkit.load(items), bbox=BBOX)
    geo = eotoolkit.subset(eotoolkit.load(items, crs="EPSG:4326", resolution=0.0001), bbox=BBOX)
    a_utm, a_geo = _area(utm), _area(geo)
    assert abs(a_utm - a_geo) / a_utm < 0.03, (a_utm, a_geo)
    bbox_area = _area_of(BBOX)
    assert abs(a_geo - bbox_area) / bbox_area < 0.03
    # the same place: the mean of a smooth field over the area agrees
    m_utm = float(utm["B04"].astype("float64").mean())
    m_geo = float(geo["B04"].astype("float64").mean())
    assert abs(m_utm - m_geo) / m_utm < 0.02


def _area_of(b: tuple[float, float, float, float]) -> float:
    lons = [b[0], b[2], b[2], b[0]]
    lats = [b[1], b[1], b[3], b[3]]
    return abs(Geod(ellps="WGS84").polygon_area_perimeter(lons, lats)[0]) / 1e6
