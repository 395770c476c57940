"""Output grid selection: CRS, resolution, extent and per-item footprints on that grid."""

from __future__ import annotations

import math
from collections import Counter
from functools import lru_cache
from typing import Any

import numpy as np
from odc.geo.geobox import GeoBox
from pyproj import CRS, Transformer
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from ._items import ItemTable
from .errors import MissingProjectionError, OutsideDataError


@lru_cache(maxsize=64)
def _transformer(src: str, dst: str) -> Transformer:
    return Transformer.from_crs(CRS.from_user_input(src), CRS.from_user_input(dst), always_xy=True)


@lru_cache(maxsize=64)
def crs_key(crs: Any) -> str:
    """A canonical string (``EPSG:n`` or WKT) for any CRS input."""
    c = CRS.from_user_input(crs)
    epsg = c.to_epsg()
    return f"EPSG:{epsg}" if epsg else c.to_wkt()


def utm_crs(lon: float, lat: float) -> str:
    """EPSG code of the WGS84 UTM zone containing a lon/lat point."""
    zone = min(int((lon + 180.0) // 6.0) + 1, 60)
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


def transform_bboxes(boxes: np.ndarray, src: str, dst: str) -> np.ndarray:
    """Transform (N, 4) boxes between CRSs using corners and edge midpoints."""
    if crs_key(src) == crs_key(dst):
        return boxes.copy()
    x0, y0, x1, y1 = boxes.T
    xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
    xs = np.stack([x0, x1, x0, x1, xm, xm, x0, x1], axis=1)
    ys = np.stack([y0, y0, y1, y1, y0, y1, ym, ym], axis=1)
    tx, ty = _transformer(crs_key(src), crs_key(dst)).transform(xs, ys)
    tx, ty = np.asarray(tx), np.asarray(ty)
    return np.stack([tx.min(1), ty.min(1), tx.max(1), ty.max(1)], axis=1)


def footprints(table: ItemTable, dst: str) -> np.ndarray:
    """(N, 4) item footprints in the output CRS (NaN rows when unknown)."""
    out = np.full((len(table), 4), np.nan)
    has_native = ~np.isnan(table.native_bbox).any(axis=1)
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(table.crs):
        if c is not None and has_native[i]:
            groups.setdefault(c, []).append(i)
    for c, rows in groups.items():
        idx = np.asarray(rows)
        out[idx] = transform_bboxes(table.native_bbox[idx], c, dst)
    rest = np.isnan(out).any(axis=1) & ~np.isnan(table.lonlat_bbox).any(axis=1)
    if rest.any():
        out[rest] = transform_bboxes(table.lonlat_bbox[rest], "EPSG:4326", dst)
    return out


def _lonlat_centre(table: ItemTable) -> tuple[float, float]:
    ll = table.lonlat_bbox
    ok = ~np.isnan(ll).any(axis=1)
    if ok.any():
        b = ll[ok]
        return float((b[:, 0].min() + b[:, 2].max()) / 2), float(
            (b[:, 1].min() + b[:, 3].max()) / 2
        )
    for c in table.crs:
        if c is not None:
            nb = table.native_bbox[~np.isnan(table.native_bbox).any(axis=1)]
            if len(nb):
                t = transform_bboxes(nb[:1], c, "EPSG:4326")[0]
                return float((t[0] + t[2]) / 2), float((t[1] + t[3]) / 2)
    raise MissingProjectionError(
        "Cannot place the items: they have neither a bbox nor projection metadata. Pass crs= "
        "and resolution= and a bbox=."
    )


def choose_crs(table: ItemTable, crs: Any) -> str:
    """The output CRS: explicit EPSG/WKT, "utm" (zone of the data centre) or the most common."""
    if isinstance(crs, str) and crs.lower() == "utm":
        return utm_crs(*_lonlat_centre(table))
    if crs is not None:
        if isinstance(crs, int):
            crs = f"EPSG:{crs}"
        return crs_key(crs)
    known = [c for c in table.crs if c is not None]
    if not known:
        raise MissingProjectionError(
            "The items carry no projection metadata (proj:code / proj:epsg), so the output grid "
            "is unknown. Pass crs= (an EPSG code, WKT or 'utm') and resolution=."
        )
    return crs_key(Counter(known).most_common(1)[0][0])


def choose_resolution(table: ItemTable, bands: list[str], resolution: float | None) -> float:
    """The output pixel size: explicit, else the finest native band resolution."""
    if resolution is not None:
        return float(resolution)
    native = [r for b in bands if (r := table.resolution[b]) is not None]
    if not native:
        raise MissingProjectionError(
            "The items carry no proj:transform, so the native resolution is unknown. Pass "
            "resolution= (in units of the output crs, e.g. 10 for metres)."
        )
    return float(min(native))


def as_geometry(geometry: Any) -> BaseGeometry:
    """A shapely geometry from a shapely object or a GeoJSON-like mapping."""
    if isinstance(geometry, BaseGeometry):
        return geometry
    if hasattr(geometry, "__geo_interface__"):
        geometry = geometry.__geo_interface__
    if isinstance(geometry, dict) and geometry.get("type") == "Feature":
        geometry = geometry["geometry"]
    return shape(geometry)


def output_geobox(
    foot: np.ndarray,
    crs: str,
    resolution: float,
    bbox: tuple[float, float, float, float] | None,
    geometry: Any,
) -> GeoBox:
    """The output GeoBox aligned to multiples of the resolution."""
    ok = ~np.isnan(foot).any(axis=1)
    if not ok.any():
        raise MissingProjectionError(
            "No item has a usable footprint (bbox or proj:bbox/proj:transform). Pass bbox=."
        )
    data = (
        float(foot[ok, 0].min()),
        float(foot[ok, 1].min()),
        float(foot[ok, 2].max()),
        float(foot[ok, 3].max()),
    )
    if geometry is not None:
        bbox = as_geometry(geometry).bounds
    if bbox is not None:
        req = tuple(transform_bboxes(np.asarray([bbox], float), "EPSG:4326", crs)[0])
        inter = (
            max(req[0], data[0]),
            max(req[1], data[1]),
            min(req[2], data[2]),
            min(req[3], data[3]),
        )
        if inter[0] >= inter[2] or inter[1] >= inter[3]:
            data_ll = transform_bboxes(np.asarray([data]), crs, "EPSG:4326")[0]
            raise OutsideDataError(
                f"The requested bbox {tuple(round(v, 4) for v in bbox)} (lon/lat) does not "
                f"intersect the data, which covers about "
                f"{tuple(round(float(v), 4) for v in data_ll)}. Pass a bbox inside that extent."
            )
        extent = req
    else:
        extent = data
    r = resolution
    x0 = math.floor(extent[0] / r + 1e-9) * r
    y0 = math.floor(extent[1] / r + 1e-9) * r
    x1 = math.ceil(extent[2] / r - 1e-9) * r
    y1 = math.ceil(extent[3] / r - 1e-9) * r
    return GeoBox.from_bbox((x0, y0, x1, y1), crs, resolution=r, tight=True)
