"""Output grid selection: CRS, resolution, extent and per-item footprints on that grid."""

from __future__ import annotations

import math
import warnings
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from odc.geo import Resolution
from odc.geo.geobox import GeoBox
from pyproj import CRS, Transformer

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


def _unwrap_lon(xs: np.ndarray, centre: float = 0.0) -> np.ndarray:
    """Longitudes (N, P) of boxes crossing the meridian opposite ``centre`` (the antimeridian
    for 0) shifted to one side (east of it) when that makes a box narrower than the other way
    round."""
    if centre:
        xs = (xs - centre + 180.0) % 360.0 - 180.0 + centre
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        span = np.nanmax(xs, axis=1) - np.nanmin(xs, axis=1)
        shifted = np.where(xs < centre, xs + 360.0, xs)
        span2 = np.nanmax(shifted, axis=1) - np.nanmin(shifted, axis=1)
    crossing = (span > 180.0) & (span2 < span - 1e-6)
    return np.where(crossing[:, np.newaxis], shifted, xs)


@dataclass(frozen=True)
class XWrap:
    """How x of a projected CRS wraps around the world: x is linear in longitude along the
    equator, one turn of longitude (from ``centre - 180`` to ``centre + 180`` degrees) spans
    ``period`` units of x from ``west``, and longitudes past the seam come back at ``west``.
    Cylindrical projections (Web Mercator, EASE-Grid 2.0, Plate Carree) wrap at every
    latitude by the same period; pseudo-cylindrical ones (sinusoidal, Mollweide) by less
    towards the poles. ``over``: the same CRS with PROJ's ``+over`` (x continues past the
    seam), in which a grid continuous across the seam is defined."""

    period: float
    west: float
    centre: float
    cylindrical: bool
    over: str


def _central_meridian(c: CRS) -> float:
    op = c.coordinate_operation
    for p in op.params if op is not None else ():
        name = p.name.lower()
        if name.startswith("longitude of") and any(
            k in name for k in ("origin", "centre", "center", "meridian")
        ):
            return float(p.value)
    return 0.0


@lru_cache(maxsize=64)
def x_wrap(crs: str) -> XWrap | None:
    """The wrap of a projected CRS's x around the world (see ``XWrap``), None for a geographic
    CRS or a projection whose x does not wrap (UTM, conic, azimuthal, ...).

    Found from the CRS itself: longitudes around the world along the equator (and 60 degrees,
    to tell cylindrical projections) transformed with ``+over`` must give x linear in
    longitude, and one degree past the seam without ``+over`` must come back at the west."""
    c = CRS.from_user_input(crs_key(crs))
    if not c.is_projected:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            proj4 = c.to_proj4()
            if not proj4 or "+over" in proj4:
                return None
            over = CRS.from_proj4(f"{proj4.replace(' +type=crs', '')} +over")
            geo = c.geodetic_crs
            if geo is None:
                return None
            lon0 = _central_meridian(c)
            fwd_over = Transformer.from_crs(geo, over, always_xy=True)
            fwd = Transformer.from_crs(geo, c, always_xy=True)
            lons = lon0 + np.linspace(-180.0, 180.0, 9)
            periods = []
            for lat in (0.0, 60.0):
                xs, _ = fwd_over.transform(lons, np.full(9, lat), errcheck=True)
                xs = np.asarray(xs, float)
                period = float(xs[-1] - xs[0])
                if not (np.isfinite(xs).all() and period > 0):
                    return None
                if not np.allclose(np.diff(xs), period / 8, rtol=1e-7, atol=1e-9 * period):
                    return None
                periods.append(period)
            period = periods[0]
            west = float(fwd_over.transform(lon0 - 180.0, 0.0)[0])
            past, _ = fwd.transform(lon0 + 181.0, 0.0, errcheck=True)
        except Exception:  # PROJ cannot transform these points: no wrap
            return None
    if not math.isclose(past, west + period / 360.0, rel_tol=1e-9, abs_tol=1e-6 * period):
        return None
    cylindrical = math.isclose(periods[1], period, rel_tol=1e-9)
    return XWrap(period, west, lon0, cylindrical, over.to_wkt())


def _geodetic_key(crs: str) -> str:
    geo = CRS.from_user_input(crs_key(crs)).geodetic_crs
    return crs_key(geo.to_wkt()) if geo is not None else "EPSG:4326"


def _lonlat_points(boxes: np.ndarray, src: str, geo: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, P) longitudes and latitudes (in ``geo``) of points along the boxes' edges."""
    px, py = _edge_points(np.asarray(boxes, float))
    if crs_key(src) == crs_key(geo):
        return px, py
    lon, lat = _transformer(crs_key(src), crs_key(geo)).transform(px, py)
    lon, lat = np.asarray(lon, float), np.asarray(lat, float)
    bad = ~(np.isfinite(lon) & np.isfinite(lat))
    return np.where(bad, np.nan, lon), np.where(bad, np.nan, lat)


def _project_wrapped(lon: np.ndarray, lat: np.ndarray, dst: str, wrap: XWrap) -> np.ndarray:
    """(N, 4) boxes in ``dst`` of points in its geodetic CRS, with longitudes past the seam
    projected past the world's edge (``+over``)."""
    tx, ty = _transformer(_geodetic_key(dst), wrap.over).transform(lon, lat)
    return _nan_boxes(np.asarray(tx, float), np.asarray(ty, float))


def _nan_boxes(tx: np.ndarray, ty: np.ndarray) -> np.ndarray:
    tx = np.where(np.isfinite(tx), tx, np.nan)
    ty = np.where(np.isfinite(ty), ty, np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.stack(
            [np.nanmin(tx, 1), np.nanmin(ty, 1), np.nanmax(tx, 1), np.nanmax(ty, 1)], axis=1
        )


def transform_bboxes(boxes: np.ndarray, src: str, dst: str) -> np.ndarray:
    """Transform (N, 4) boxes between CRSs along their densified edges.

    A geographic destination keeps a box crossing the antimeridian narrow (east > 180) and
    a box containing a pole reaches that pole's latitude over all longitudes; so does a
    projected destination whose x wraps around the world (``x_wrap``: Web Mercator, EASE-Grid
    2.0, ...), with x past the world's edge for the part across the seam.
    """
    if crs_key(src) == crs_key(dst):
        return boxes.copy()
    wrap = x_wrap(crs_key(dst))
    if wrap is not None:
        plon, plat = _lonlat_points(boxes, src, _geodetic_key(dst))
        return _project_wrapped(_unwrap_lon(plon, wrap.centre), plat, dst, wrap)
    px, py = _edge_points(np.asarray(boxes, float))
    tx, ty = _transformer(crs_key(src), crs_key(dst)).transform(px, py)
    tx, ty = np.asarray(tx, float), np.asarray(ty, float)
    tx = np.where(np.isfinite(tx), tx, np.nan)
    geographic = is_geographic(dst)
    if geographic:
        tx = _unwrap_lon(tx)
    out = _nan_boxes(tx, ty)
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
    """(N, 4) item footprints in the output CRS (NaN rows when unknown).

    Footprints on both sides of the antimeridian (of a geographic CRS) or of the seam (of a
    CRS whose x wraps around the world) are moved to one side, east of it, when that makes
    their union narrower."""
    wrap = x_wrap(crs_key(dst))
    if wrap is not None:
        return _wrapped_footprints(table, dst, wrap)
    out = np.full((len(table), 4), np.nan)
    for c, idx in _native_groups(table):
        out[idx] = transform_bboxes(table.native_bbox[idx], c, dst)
    rest = np.isnan(out).any(axis=1) & ~np.isnan(table.lonlat_bbox).any(axis=1)
    if rest.any():
        out[rest] = transform_bboxes(table.lonlat_bbox[rest], "EPSG:4326", dst)
    if is_geographic(dst):
        out = _unwrap_footprints(out)
    return out


def _native_groups(table: ItemTable) -> list[tuple[str, np.ndarray]]:
    """Rows of the items with a native CRS and bbox, per CRS."""
    has_native = ~np.isnan(table.native_bbox).any(axis=1)
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(table.crs):
        if c is not None and has_native[i]:
            groups.setdefault(c, []).append(i)
    return [(c, np.asarray(rows)) for c, rows in groups.items()]


def _wrapped_footprints(table: ItemTable, dst: str, wrap: XWrap) -> np.ndarray:
    """``footprints`` onto a CRS whose x wraps: the items' outlines in longitude and latitude,
    each unwrapped across the seam and all moved to one side of it as in degrees, projected
    with x continuing past the world's edge."""
    geo = _geodetic_key(dst)
    n = len(table)
    lon = np.full((n, 4 * EDGE_POINTS), np.nan)
    lat = np.full_like(lon, np.nan)
    done = np.zeros(n, bool)
    for c, idx in _native_groups(table):
        lon[idx], lat[idx] = _lonlat_points(table.native_bbox[idx], c, geo)
        done[idx] = True
    rest = ~done & ~np.isnan(table.lonlat_bbox).any(axis=1)
    if rest.any():
        lon[rest], lat[rest] = _lonlat_points(table.lonlat_bbox[rest], "EPSG:4326", geo)
    lon = _unwrap_lon(lon, wrap.centre)
    boxes = _nan_boxes(lon, lat)
    moved = _unwrap_footprints(boxes, wrap.centre)
    lon = lon + (moved[:, :1] - boxes[:, :1])
    return _project_wrapped(lon, lat, dst, wrap)


def _unwrap_footprints(foot: np.ndarray, centre: float = 0.0) -> np.ndarray:
    """Footprints in degrees on both sides of the antimeridian (of the meridian opposite
    ``centre``) moved to one side (east of it) when that makes their union narrower."""
    ok = ~np.isnan(foot).any(axis=1)
    if not ok.any():
        return foot
    span = foot[ok, 2].max() - foot[ok, 0].min()
    west = ok & (foot[:, 2] <= centre)
    if span <= 180 or not west.any():
        return foot
    moved = foot.copy()
    moved[west, 0] += 360.0
    moved[west, 2] += 360.0
    if moved[ok, 2].max() - moved[ok, 0].min() < span - 1e-6:
        return moved
    return foot


def box_near(
    bbox: Any, src: str, dst: str, xrange: tuple[float, float]
) -> tuple[float, float, float, float]:
    """``bbox`` (in ``src``) in ``dst``, on the turn of the world that overlaps x in ``xrange``
    (the data's or a grid's): a geographic ``dst`` takes it 360 degrees east or west, a
    ``dst`` whose x wraps takes a geographic bbox 360 degrees east or west before projecting
    it (x past the world's edge), another bbox one period of x."""
    box = np.asarray([bbox], float)

    def to_dst(b: np.ndarray) -> tuple[float, float, float, float]:
        x0, y0, x1, y1 = (float(v) for v in transform_bboxes(b, src, dst)[0])
        return x0, y0, x1, y1

    req = to_dst(box)
    lo, hi = xrange
    if req[2] >= lo and req[0] <= hi:
        return req
    wrap = x_wrap(crs_key(dst))
    if wrap is None and not is_geographic(dst):
        return req
    for k in (1.0, -1.0):
        if wrap is None:
            cand = (req[0] + 360 * k, req[1], req[2] + 360 * k, req[3])
        elif is_geographic(src):
            cand = to_dst(box + np.asarray([360 * k, 0.0, 360 * k, 0.0]))
        else:
            p = wrap.period * k
            cand = (req[0] + p, req[1], req[2] + p, req[3])
        if cand[2] >= lo and cand[0] <= hi:
            return cand
    return req


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
    anchor: tuple[float, float] = (0.0, 0.0),
) -> GeoBox:
    """The output GeoBox aligned to multiples of the resolution, shifted by ``anchor`` (the
    items' own pixel edges modulo the resolution, see :func:`native_anchor`)."""
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
        bbox = _validate.as_geometry(geometry).bounds
    if bbox is not None:
        req = box_near(bbox, "EPSG:4326", crs, (data[0], data[2]))
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
    ax, ay = anchor
    x0 = math.floor((extent[0] - ax) / rx + 1e-9) * rx + ax
    y0 = math.floor((extent[1] - ay) / ry + 1e-9) * ry + ay
    x1 = math.ceil((extent[2] - ax) / rx - 1e-9) * rx + ax
    y1 = math.ceil((extent[3] - ay) / ry - 1e-9) * ry + ay
    return GeoBox.from_bbox((x0, y0, x1, y1), crs, resolution=Resolution(rx, -ry), tight=True)


def _phase(values: np.ndarray, step: float) -> float | None:
    """The common offset of ``values`` from multiples of ``step``, None when they differ."""
    frac = np.mod(values / step, 1.0)
    frac = np.where(np.isclose(frac, 1.0, atol=1e-6), 0.0, frac)
    if not np.allclose(frac, frac[0], atol=1e-6):
        return None
    return 0.0 if abs(frac[0]) < 1e-6 else float(frac[0] * step)


def native_anchor(
    table: ItemTable, crs: str, resolution: tuple[float, float]
) -> tuple[float, float]:
    """Where the output pixels' edges fall modulo the resolution: on the items' own pixel edges
    when they load at their own pixel size in their own CRS and all their grids agree
    (Landsat's edges are at 15 m modulo 30 m: a grid on multiples of 30 m would put every pixel
    half a pixel off the source pixel it takes), else on multiples of the resolution."""
    native = [r for r in table.resolution.values() if r is not None]
    rx, ry = resolution
    if not native or not (math.isclose(rx, min(native)) and math.isclose(ry, min(native))):
        return 0.0, 0.0  # not a load at the items' own pixel size
    key = crs_key(crs)
    if not table.crs or any(c is None or crs_key(c) != key for c in table.crs):
        return 0.0, 0.0
    boxes = table.native_bbox
    if len(boxes) == 0 or np.isnan(boxes).any():
        return 0.0, 0.0
    ax = _phase(boxes[:, 0], rx)
    ay = _phase(boxes[:, 3], ry)
    return (ax or 0.0, ay or 0.0) if ax is not None and ay is not None else (0.0, 0.0)
