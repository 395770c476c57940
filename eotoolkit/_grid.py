"""Output grid selection: CRS, resolution, extent and per-item footprints on that grid."""

from __future__ import annotations

import math
from collections import Counter
from functools import lru_cache
from typing import Any

import numpy as np
from odc.geo import Resolution
from odc.geo.geobox import GeoBox
from pyproj import CRS, Transformer
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from . import _validate
from ._items import ItemTable
from .errors import InvalidParameterError, MissingProjectionError, OutsideDataError

#: Points per box edge (corners included) transformed to find a box in another CRS.
EDGE_POINTS = 11


@lru_cache(maxsize=64)
def _transformer(src: str, dst: str) -> Transformer:
    return Transformer.from_crs(CRS.from_user_input(src), CRS.from_user_input(dst), always_xy=True)


@lru_cache(maxsize=64)
def crs_key(crs: Any) -> str:
    """A canonical string (``EPSG:n`` or WKT) for any CRS input."""
    c = CRS.from_user_input(crs)
    epsg = c.to_epsg()
    return f"EPSG:{epsg}" if epsg else c.to_wkt()


def is_geographic(crs: Any) -> bool:
    """Whether a CRS has angular (degree) axes."""
    return bool(CRS.from_user_input(crs_key(crs)).is_geographic)


def axis_unit(crs: Any) -> str:
    """The unit name of a CRS's first axis ("metre", "degree", "US survey foot", ...)."""
    axes = CRS.from_user_input(crs_key(crs)).axis_info
    return axes[0].unit_name if axes else "unit"


def utm_crs(lon: float, lat: float) -> str:
    """EPSG code of the WGS84 UTM zone containing a lon/lat point."""
    lon = (lon + 180.0) % 360.0 - 180.0
    zone = min(int((lon + 180.0) // 6.0) + 1, 60)
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


def _edge_points(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, P) x and y of points along the four edges of each box."""
    x0, y0, x1, y1 = (boxes[:, k : k + 1] for k in range(4))
    t = np.linspace(0.0, 1.0, EDGE_POINTS)[np.newaxis, :]
    xs = x0 + (x1 - x0) * t
    ys = y0 + (y1 - y0) * t
    one = np.ones_like(t)
    px = np.concatenate([xs, xs, x0 * one, x1 * one], axis=1)
    py = np.concatenate([y0 * one, y1 * one, ys, ys], axis=1)
    return px, py


def _unwrap_lon(xs: np.ndarray) -> np.ndarray:
    """Longitudes (N, P) of boxes crossing the antimeridian shifted to one side (east > 180)
    when that makes a box narrower than the other way round."""
    span = np.nanmax(xs, axis=1) - np.nanmin(xs, axis=1)
    shifted = np.where(xs < 0, xs + 360.0, xs)
    span2 = np.nanmax(shifted, axis=1) - np.nanmin(shifted, axis=1)
    crossing = (span > 180.0) & (span2 < span - 1e-6)
    return np.where(crossing[:, np.newaxis], shifted, xs)


def transform_bboxes(boxes: np.ndarray, src: str, dst: str) -> np.ndarray:
    """Transform (N, 4) boxes between CRSs along their densified edges.

    A geographic destination keeps a box crossing the antimeridian narrow (east > 180) and
    a box containing a pole reaches that pole's latitude over all longitudes.
    """
    if crs_key(src) == crs_key(dst):
        return boxes.copy()
    px, py = _edge_points(np.asarray(boxes, float))
    tx, ty = _transformer(crs_key(src), crs_key(dst)).transform(px, py)
    tx, ty = np.asarray(tx, float), np.asarray(ty, float)
    tx = np.where(np.isfinite(tx), tx, np.nan)
    ty = np.where(np.isfinite(ty), ty, np.nan)
    geographic = is_geographic(dst)
    if geographic:
        tx = _unwrap_lon(tx)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out = np.stack(
                [np.nanmin(tx, 1), np.nanmin(ty, 1), np.nanmax(tx, 1), np.nanmax(ty, 1)], axis=1
            )
    if geographic and not is_geographic(src):
        back = _transformer(crs_key(dst), crs_key(src))
        for lat in (90.0, -90.0):
            try:
                pxp, pyp = back.transform(0.0, lat, errcheck=True)
            except Exception:  # the pole has no image in the source CRS
                continue
            inside = (
                (boxes[:, 0] <= pxp) & (pxp <= boxes[:, 2]) & (boxes[:, 1] <= pyp)
                & (pyp <= boxes[:, 3])
            )  # fmt: skip
            if inside.any():
                out[inside, 0], out[inside, 2] = -180.0, 180.0
                out[inside, 3 if lat > 0 else 1] = lat
    return out


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
    if is_geographic(dst):
        out = _unwrap_footprints(out)
    return out


def _unwrap_footprints(foot: np.ndarray) -> np.ndarray:
    """Footprints in degrees on both sides of the antimeridian moved to one side (east of
    180) when that makes their union narrower."""
    ok = ~np.isnan(foot).any(axis=1)
    if not ok.any():
        return foot
    span = foot[ok, 2].max() - foot[ok, 0].min()
    west = ok & (foot[:, 2] <= 0)
    if span <= 180 or not west.any():
        return foot
    moved = foot.copy()
    moved[west, 0] += 360.0
    moved[west, 2] += 360.0
    if moved[ok, 2].max() - moved[ok, 0].min() < span - 1e-6:
        return moved
    return foot


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
        value = _validate.crs("crs", crs, allow_utm=True)
        return crs_key(value.to_wkt()) if not isinstance(value, str) else value
    known = [c for c in table.crs if c is not None]
    if not known:
        raise MissingProjectionError(
            "The items carry no projection metadata (proj:code / proj:epsg), so the output grid "
            "is unknown. Pass crs= (an EPSG code, WKT or 'utm') and resolution=."
        )
    return crs_key(Counter(known).most_common(1)[0][0])


def choose_resolution(
    table: ItemTable, bands: list[str], resolution: Any, crs: str | None = None
) -> tuple[float, float]:
    """The output pixel size (x, y): explicit, else the finest native band resolution (when the
    output CRS is that of the items)."""
    if resolution is not None:
        res = _validate.resolution("resolution", resolution)
        assert res is not None
        return res
    native = [r for b in bands if (r := table.resolution[b]) is not None]
    if not native:
        raise MissingProjectionError(
            "The items carry no proj:transform, so the native resolution is unknown. Pass "
            "resolution= (in units of the output crs, e.g. 10 for metres)."
        )
    known = {crs_key(c) for c in table.crs if c is not None}
    if crs is not None and known and crs_key(crs) not in known:
        units = {axis_unit(c) for c in known}
        if units != {axis_unit(crs)}:
            raise InvalidParameterError(
                f"resolution=None is not valid for crs={crs}: the native resolution of the "
                f"items is in {sorted(units)}s, the output CRS is in {axis_unit(crs)}s. Pass "
                f"resolution= in {axis_unit(crs)}s (e.g. 0.0001 degrees is about 11 metres)."
            )
    r = float(min(native))
    return r, r


def as_geometry(geometry: Any) -> BaseGeometry:
    """A shapely geometry from a shapely object or a GeoJSON-like mapping."""
    if isinstance(geometry, BaseGeometry):
        return geometry
    if hasattr(geometry, "__geo_interface__"):
        geometry = geometry.__geo_interface__
    if isinstance(geometry, dict) and geometry.get("type") == "Feature":
        geometry = geometry["geometry"]
    return shape(geometry)


def _check_scale(extent: tuple[float, ...], crs: str, res: tuple[float, float]) -> None:
    """Refuse a resolution whose unit is clearly not the CRS's (metres of a degree CRS give a
    single pixel, degrees of a metre CRS billions)."""
    unit = axis_unit(crs)
    width, height = extent[2] - extent[0], extent[3] - extent[1]
    if res[0] > width and res[1] > height and max(width, height) > 0:
        hint = ""
        if is_geographic(crs) and res[0] >= 1:
            hint = (
                f" Metres asked of a degree CRS? {res[0]:g} m is about "
                f"{res[0] / 111320:.6f} degrees."
            )
        raise InvalidParameterError(
            f"resolution={res[0]:g} is not valid for crs={crs}: the resolution is in "
            f"{unit}s, and one pixel would be larger than the whole extent "
            f"({width:.6g} x {height:.6g} {unit}s).{hint} Pass a resolution in {unit}s."
        )
    pixels = (width / res[0]) * (height / res[1])
    if pixels > 1e12:
        hint = ""
        if not is_geographic(crs):
            hint = f" Degrees asked of a CRS in {unit}s? 0.0001 degrees is about 11 metres."
        raise InvalidParameterError(
            f"resolution={res[0]:g} is not valid for crs={crs}: the grid would have "
            f"{pixels:.3g} pixels ({width:.6g} x {height:.6g} {unit}s).{hint} Pass a "
            f"resolution in {unit}s."
        )


def grid_coords(geobox: GeoBox) -> dict[str, Any]:
    """1-D ``y``/``x`` coordinates of pixel centres (also for geographic CRSs, as rioxarray
    expects) and the ``spatial_ref`` CRS coordinate."""
    import xarray as xr
    from odc.geo.xr import xr_coords

    coords = xr_coords(geobox, crs_coord_name="spatial_ref")
    t = geobox.transform
    h, w = geobox.shape
    units = "degrees" if geobox.crs is not None and geobox.crs.geographic else "metre"
    if geobox.crs is not None and not geobox.crs.geographic:
        units = axis_unit(str(geobox.crs))
    xs = t.c + (np.arange(w) + 0.5) * t.a
    ys = t.f + (np.arange(h) + 0.5) * t.e
    return {
        "y": xr.DataArray(ys, dims=("y",), attrs={"units": units, "resolution": t.e}),
        "x": xr.DataArray(xs, dims=("x",), attrs={"units": units, "resolution": t.a}),
        "spatial_ref": coords["spatial_ref"],
    }


def output_geobox(
    foot: np.ndarray,
    crs: str,
    resolution: float | tuple[float, float],
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
        if is_geographic(crs) and req[2] <= data[0] and req[2] + 360 > data[0]:
            req = (req[0] + 360, req[1], req[2] + 360, req[3])
        elif is_geographic(crs) and req[0] >= data[2] and req[0] - 360 < data[2]:
            req = (req[0] - 360, req[1], req[2] - 360, req[3])
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
    rx, ry = (resolution, resolution) if isinstance(resolution, int | float) else resolution
    _check_scale(extent, crs, (rx, ry))
    x0 = math.floor(extent[0] / rx + 1e-9) * rx
    y0 = math.floor(extent[1] / ry + 1e-9) * ry
    x1 = math.ceil(extent[2] / rx - 1e-9) * rx
    y1 = math.ceil(extent[3] / ry - 1e-9) * ry
    return GeoBox.from_bbox((x0, y0, x1, y1), crs, resolution=Resolution(rx, -ry), tight=True)
