"""One source onto a chunk's grid where a plain window of its pixels will not do: the COG
overview to read, nearest onto another CRS by ``_nearest`` (the exact warp's source pixels
without GDAL's warper), GDAL's warper with an exact coordinate transformation (kernel and area
options, the tie shift, the coverage of average pixels, CRSs whose x wraps around the world),
or a window of the source's pixels at whole multiples where that provably gives the warp's
pixels."""

from __future__ import annotations

import math
import sys
import warnings
from dataclasses import replace
from functools import lru_cache
from typing import Any

import numpy as np
import pyproj
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform as rio_transform
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from . import _grid
from ._files import _dataset
from ._mosaic import _valid
from ._nearest import Transform, read_pixels, source_pixels
from ._plan import ChunkRead
from .errors import AssetReadWarning
from .stores.storage import S3Config


@lru_cache(maxsize=32)
def _rio_crs(crs: str) -> CRS:
    return CRS.from_user_input(crs)


def _gdal_transform(src: CRS, dst: CRS) -> Transform:
    """GDAL's own coordinate transformation from ``src`` to ``dst``, the one its warper uses."""

    def transform(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tx, ty = rio_transform(src, dst, xs, ys)
        return np.asarray(tx, float), np.asarray(ty, float)

    return transform


def _overview_level(src: rasterio.DatasetReader, dst_res_in_src: float) -> int | None:
    """Index of the coarsest overview whose pixels are not coarser than the output pixels."""
    ratio = dst_res_in_src / abs(src.transform.a)
    level = None
    for i, factor in enumerate(src.overviews(1)):
        if factor <= ratio * (1 + 1e-6):
            level = i
    return level


#: Resampling methods whose kernel GDAL widens by the downsampling ratio (its XSCALE/YSCALE),
#: with their radius in source pixels at scale 1.
_KERNEL_RADIUS = {
    Resampling.bilinear: 1,
    Resampling.cubic: 2,
    Resampling.cubic_spline: 2,
    Resampling.lanczos: 3,
}


def _source_extent(src: rasterio.DatasetReader, req: ChunkRead) -> tuple[float, float] | None:
    """Source columns and rows one output pixel spans, at the centre of the source (None when
    the transformation has no usable derivative there)."""
    st = src.transform
    cx, cy = src.width / 2, src.height / 2
    cols, rows = [cx, cx + 1, cx], [cy, cy, cy + 1]
    xs = [st.c + st.a * c + st.b * r for c, r in zip(cols, rows, strict=True)]
    ys = [st.f + st.d * c + st.e * r for c, r in zip(cols, rows, strict=True)]
    try:
        # the same for every chunk of a grid: x past the world's edge as longitudes past the
        # seam on both sides
        wrap = _source_wrap(src.crs)
        src_crs = src.crs if wrap is None else _rio_crs(wrap.over)
        dst_wrap = _grid.x_wrap(req.crs)
        dst_crs = _rio_crs(req.crs) if dst_wrap is None else _rio_crs(dst_wrap.over)
        xs, ys = rio_transform(src_crs, dst_crs, xs, ys)
        jac = np.array([[xs[1] - xs[0], xs[2] - xs[0]], [ys[1] - ys[0], ys[2] - ys[0]]])
        inv = np.abs(np.linalg.inv(jac))  # source pixels per output CRS unit
    except Exception:
        return None
    a, e = abs(req.transform[0]), abs(req.transform[4])
    col_extent = float(inv[0, 0] * a + inv[0, 1] * e)
    row_extent = float(inv[1, 0] * a + inv[1, 1] * e)
    if not (math.isfinite(col_extent) and math.isfinite(row_extent)):
        return None
    if min(col_extent, row_extent) <= 0:
        return None
    return col_extent, row_extent


def _kernel_options(src: rasterio.DatasetReader, req: ChunkRead, kernel: int) -> dict[str, str]:
    """GDAL warp options that give every chunk the kernel of the whole grid.


    GDAL sizes an interpolating kernel by a scale it derives from the source window of each
    warp request (output pixels per source pixel, widened below 1), so chunks of one grid
    would be resampled with different kernels. The scale is fixed here from the source's
    pixels and the output's pixel size alone: GDAL's own formula for one output pixel, taken at
    the centre of the source. ``SOURCE_EXTRA`` pads each chunk's source window by the widened
    kernel radius, so that pixels near a chunk edge see the same source pixels as in a
    whole-grid warp.
    """
    extent = _source_extent(src, req)
    if extent is None:  # no usable scale at the centre: leave the scale to GDAL
        return {}
    xscale, yscale = 1 / extent[0], 1 / extent[1]
    extra = math.ceil(kernel / min(xscale, yscale, 1.0)) + 1
    return {"XSCALE": repr(xscale), "YSCALE": repr(yscale), "SOURCE_EXTRA": str(extra)}


def _area_options(src: rasterio.DatasetReader, req: ChunkRead) -> dict[str, str]:
    """GDAL warp options that give methods summarising the source pixels under each output
    pixel (average, mode, min, max, ...) the same result in any chunks.


    ``XSCALE``/``YSCALE``: GDAL skips an output pixel when a corner of it lies more than
    ``2 * ceil(1 / scale)`` source pixels outside the warp's source window, with the scale
    derived from each warp's source and destination windows (a chunk that reaches past the
    source's edge gets a larger scale, a narrower margin), so a pixel that a tile's corner
    barely reaches was valid in some chunkings and empty in others. The scale of the pixels
    themselves (as for interpolating kernels, see ``_kernel_options``) makes the margin at
    least twice an output pixel's span: no pixel that overlaps the source is skipped.


    ``SOURCE_EXTRA``: GDAL computes a chunk's source window from points sampled on the chunk
    and pads it by one pixel only, which can leave out the source pixels under the part of an
    edge pixel beyond those points; a whole-grid warp has them. The pad here is one output
    pixel's span in source pixels, plus one."""
    extent = _source_extent(src, req)
    if extent is None:
        return {}
    return {
        "XSCALE": repr(1 / extent[0]),
        "YSCALE": repr(1 / extent[1]),
        "SOURCE_EXTRA": str(math.ceil(max(extent)) + 1),
    }


#: Nearest onto another CRS by ``_nearest`` (the exact warp's pixels at about the cost of the
#: approximate warp); False: by GDAL's warper, as the other methods.
NEAREST_BY_POSITIONS = True


#: Error threshold, in source pixels, of the coordinate transformation of every warp. GDAL's
#: default (0.125) interpolates the transformation linearly along each row of a warp, so a
#: pixel near a source pixel's edge could pick another source pixel in a chunk than in the whole
#: grid (nearest), a pixel near the source's edge could be valid in one and empty in the other,
#: and a kernel could sample the source a fraction of a pixel away (values off by a few units
#: on noisy data); this makes every pixel's transformation exact to rounding (GDAL's
#: approximation then splits each row down to exactly transformed points), so the grid reads
#: the same in any chunks. Not zero: rasterio 1.4's ``WarpedVRT`` sets no transformer at all
#: for 0.
EXACT_TOLERANCE = 1e-9


def _read_warped(
    href: str,
    req: ChunkRead,
    resampling: Resampling,
    nodata: float | None,
    cfg: S3Config | None = None,
) -> tuple[np.ndarray, np.ndarray | None, tuple[slice, slice]] | None:
    """Warp one source onto the chunk grid with GDAL's warper on the dataset, as a whole-grid
    warp does: (values, valid mask or None when ``nodata`` tells, output slices), None if
    disjoint. Every method goes through ``_warp_exact``, with an exact coordinate
    transformation, unless a read of the chosen overview provably gives the same pixels
    (``_aligned_steps``) or nearest reads onto another CRS (``_nearest.source_pixels``: the
    source pixels the exact warp takes, at about the cost of the approximate warp)."""
    dst_crs = _rio_crs(req.crs)
    h, w = req.shape
    grid = req.transform  # before the tie shift: what an aligned read is checked against
    shift = 0.0
    with _dataset(href, None, cfg) as src:
        if src.crs == dst_crs and resampling in _TIE_METHODS:  # the warp's grid, also to
            # tell whether it touches the source
            req = replace(
                req, transform=tuple(_off_ties(Affine(*req.transform), src.transform))[:6]
            )
            shift = TIE_SHIFT * min(abs(src.transform.a), abs(src.transform.e))
        dst_transform = Affine(*req.transform)
        left, top = dst_transform.c, dst_transform.f
        right, bottom = left + w * dst_transform.a, top + h * dst_transform.e
        src_crs = _wrapped_crs(src, req.crs)
        box = (left, bottom, right, top)
        # PROJ's transformation, made once per CRS pair (GDAL's transform_bounds makes it anew
        # on every call, about 20 ms for two projected CRSs)
        to_src = _grid._transformer(_target_crs(req).to_wkt(), src_crs.to_wkt())
        bounds = to_src.transform_bounds(*box, densify_pts=5)
        if not all(map(math.isfinite, bounds)):  # no point transformed: GDAL's own answer
            bounds = transform_bounds(_target_crs(req), src_crs, *box, densify_pts=5)
        west, south, east, north = bounds
        # the source's bounds two pixels wider: the chunk's bounds in the source's CRS come
        # from five points per edge and can miss a bulge of its curved edges
        px, py = 2 * abs(src.transform.a), 2 * abs(src.transform.e)
        sl, sbm, sr, st = src.bounds
        sl, sbm, sr, st = sl - px, sbm - py, sr + px, st + py
        shifts: tuple[float, ...] = (0.0,)
        if src.crs.is_geographic:  # longitudes: the chunk may cross 180, the source run past it
            shifts = (-360.0, 0.0, 360.0)
            if west > east:
                east += 360.0
        if south > st or north < sbm or not any(west + k <= sr and east + k >= sl for k in shifts):
            return None
        # the overview from the pixels' scale at the source's centre, the same for every chunk
        # (a chunk's own extent per pixel varies over a reprojected grid: chunks of one grid
        # read different overviews, and the grid read whole another still)
        extent = _source_extent(src, req)
        if extent is None:
            level = _overview_level(src, (east - west) / w)
        else:
            level = _overview_level(src, min(extent) * abs(src.transform.a))
    whole = (slice(0, h), slice(0, w))
    with _dataset(href, level, cfg) as src:
        if src.crs == dst_crs:
            step = _aligned_steps(src, grid, req.shape, resampling, shift)
            if step is not None:
                return _read_aligned(src, req.shape, step, nodata)
        if (
            resampling == Resampling.nearest
            and src.crs != dst_crs
            and NEAREST_BY_POSITIONS
            and not src.gcps[0]  # georeferenced by its transform (GCPs: GDAL's warper)
        ):
            exact = _gdal_transform(_target_crs(req), _wrapped_crs(src, req.crs))
            pixels = source_pixels(Affine(*req.transform), req.shape, exact, src)
            if pixels is not None:
                got = read_pixels(src, req.shape, pixels, nodata)
                return None if got is None else (*got, whole)
        raw, alpha = _warp_exact(src, req, resampling, nodata)
        if src.crs != dst_crs or resampling in _TIE_METHODS:
            return raw, alpha, whole
        if alpha is None:
            alpha = np.ones(raw.shape, bool) if nodata is None else _valid(raw, nodata)
        return raw, alpha & _covers_valid(src, req, nodata), whole


#: Integer types whose values a sliver of a neighbouring pixel (at most ``ALIGN_AVERAGE``
#: of a pixel) cannot move by half a unit: GDAL's average of an aligned pixel rounds to the
#: pixel's own value.
_SHORT_INTEGERS = frozenset({"uint8", "int8", "uint16", "int16"})


#: Misalignment, in source pixels, up to which an average onto a grid of the source's own
#: pixels is a copy of them (``_aligned_steps``): a neighbour's sliver of 1e-7 moves a 16-bit
#: value by at most 0.0066, and ``_covers_valid`` drops slivers below ``COVER_MIN``.
ALIGN_AVERAGE = 1e-7


def _aligned_steps(
    src: rasterio.DatasetReader,
    grid: tuple[float, ...],
    shape: tuple[int, int],
    resampling: Resampling,
    shift: float,
) -> tuple[int, int, int, int] | None:
    """(column, row, x step, y step) of the source pixels a grid in the source's CRS takes, when
    a read of them provably gives the warp's pixels; None otherwise (warped).


    Nearest onto a grid whose pixels are whole multiples of the source's (this overview's)
    and whose edges lie on the source's edges: output pixel (i, j) takes source pixel
    (row + i * y step + y step // 2, column + j * x step + x step // 2), the pixel its centre
    lies in, a tie on an edge (even steps) resolved right and down as the warp's tie shift does
    (``_off_ties``: the misalignment and the rounding of the warp's arithmetic stay below a
    quarter of that shift). Average onto the source's own pixels (steps of 1) of a 16-bit or
    8-bit integer source: each output pixel is its source pixel (GDAL's weighted mean of one
    pixel, and of a sliver below ``ALIGN_AVERAGE`` of a neighbour, rounds to it; the pixel
    covers a valid pixel exactly when it is valid). Not geographic sources nor those of a CRS
    whose x wraps around the world (another turn of the world is the warp's), nor rotated
    grids. ``shift``: the warp's tie shift in the CRS's units (``_off_ties``)."""
    st = src.transform
    if resampling == Resampling.nearest:  # a quarter of the tie shift, in this overview's pixels
        tolerance = shift / max(abs(st.a), abs(st.e)) / 4
    elif resampling == Resampling.average and src.dtypes[0] in _SHORT_INTEGERS:
        tolerance = ALIGN_AVERAGE
    else:
        return None
    a, b, c, d, e, f = grid[:6]
    if b or d or st.b or st.d or src.crs.is_geographic or _source_wrap(src.crs) is not None:
        return None
    xs, ys = round(a / st.a), round(e / st.e)
    if xs < 1 or ys < 1 or (resampling == Resampling.average and (xs, ys) != (1, 1)):
        return None
    h, w = shape
    col0, row0 = (c - st.c) / st.a, (f - st.f) / st.e
    col1, row1 = (c + w * a - st.c) / st.a, (f + h * e - st.f) / st.e
    col, row = round(col0), round(row0)
    miss = max(
        abs(col0 - col), abs(row0 - row), abs(col1 - (col + w * xs)), abs(row1 - (row + h * ys))
    )
    # a bound of the rounding of the warp's own arithmetic (grid to coordinates to pixels)
    reach = max(abs(c), abs(f), abs(c + w * a), abs(f + h * e), abs(st.c), abs(st.f))
    rounding = 8 * sys.float_info.epsilon * (reach / min(abs(st.a), abs(st.e)) + w * xs + h * ys)
    if not math.isfinite(miss) or miss + rounding > tolerance:
        return None
    return col, row, xs, ys


def _read_aligned(
    src: rasterio.DatasetReader,
    shape: tuple[int, int],
    step: tuple[int, int, int, int],
    nodata: float | None,
) -> tuple[np.ndarray, np.ndarray, tuple[slice, slice]] | None:
    """The source pixels ``_aligned_steps`` found, read as a window (every ``step``-th pixel):
    (values, valid mask, output slices), None when no output pixel lies on the source."""
    col, row, xs, ys = step
    h, w = shape
    i0, i1 = _taken(row, ys, h, src.height)
    j0, j1 = _taken(col, xs, w, src.width)
    if i0 >= i1 or j0 >= j1:
        return None
    r0, c0 = row + i0 * ys + ys // 2, col + j0 * xs + xs // 2
    win = Window(c0, r0, (j1 - j0 - 1) * xs + 1, (i1 - i0 - 1) * ys + 1)
    raw = src.read(1, window=win)[::ys, ::xs]
    if nodata is not None:
        return raw, _valid(raw, nodata), (slice(i0, i1), slice(j0, j1))
    valid = src.read_masks(1, window=win)[::ys, ::xs] > 0
    return raw, valid, (slice(i0, i1), slice(j0, j1))


def _taken(first: int, step: int, n: int, size: int) -> tuple[int, int]:
    """Output pixels [k0, k1) along one axis whose source pixel ``first + k * step + step // 2``
    lies in [0, size)."""
    mid = first + step // 2
    k0 = max(0, -(mid // step)) if mid < 0 else 0
    k1 = min(n, (size - 1 - mid) // step + 1) if size - 1 >= mid else 0
    return k0, max(k0, k1)


def _to_source_type(
    values: np.ndarray, valid: np.ndarray, dtype: np.dtype, nodata: float | None
) -> np.ndarray:
    """Float64 kernel results in the source's type, as GDAL's warper writes them: integers
    rounded half up and clamped to the type's range, and a valid pixel that would equal
    ``nodata`` moved one step off it (GDAL's warper avoids writing the nodata value for valid
    pixels). The kernels are warped to float64 and converted here: with a float64 working type
    and integer output GDAL's warper (3.10) writes a valid pixel that rounds onto ``nodata`` as
    ``nodata``."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        out = np.clip(np.floor(values + 0.5), info.min, info.max, out=values)
        if nodata is not None and not math.isnan(nodata):
            step = -1.0 if nodata == info.max else 1.0
            out[valid & (out == nodata)] = nodata + step
        out[~valid] = 0 if nodata is None or math.isnan(nodata) else nodata
        return out.astype(dtype)
    out = values.astype(dtype)
    if nodata is not None and not math.isnan(nodata):
        hit = valid & (out == nodata)
        out[hit] = np.nextafter(out[hit], np.asarray(np.inf, dtype=dtype))
        out[~valid] = nodata
    return out


def _wrapped_crs(src: rasterio.DatasetReader, target: str | None = None) -> CRS:
    """The source's CRS, for a source running past the seam of its CRS with longitudes around
    its centre.


    GDAL's warper on a dataset maps output pixels to longitudes around the centre of a
    geographic source (its ``CENTER_LONG``), so a source from 179.9 to 180.1 degrees is found
    by pixels at -179.95 degrees; a ``WarpedVRT`` on an explicit grid does not, and would leave
    the part east of 180 empty. PROJ's ``+lon_wrap`` does the same wrapping; it is also given
    to a geographic source warped onto a ``target`` whose x wraps around the world, whose
    pixels past the world's edge are longitudes past 180.


    A source in a cylindrical CRS whose x wraps (``_grid.x_wrap``: Web Mercator, EASE-Grid
    2.0, ...) running past the world's edge (x past 20037508 m in Web Mercator) is given the
    same CRS with its central meridian at the source's centre and the false easting that keeps
    its coordinates (``_recentred_crs``): the same place for every pixel, without a seam across
    the source. A pseudo-cylindrical one (whose period shrinks towards the poles) is warned
    about: its pixels past the edge are not read."""
    crs = src.crs
    left, _, right, _ = src.bounds
    if crs.is_geographic:
        if left >= -180.0 and right <= 180.0 and (target is None or not _wraps(target)):
            return crs
        return _lon_wrap_crs(crs.to_wkt(), (left + right) / 2)
    wrap = _source_wrap(crs)
    if wrap is None:
        return crs
    east = wrap.west + wrap.period
    tol = 1e-9 * wrap.period
    if left >= wrap.west - tol and right <= east + tol:
        return crs
    if not wrap.cylindrical:
        warnings.warn(
            f"{src.name} runs past the edge of the world of its CRS (x from {left:.10g} to "
            f"{right:.10g}, the world from {wrap.west:.10g} to {east:.10g}); its pixels past "
            f"the edge are not read. Write it in a CRS without a seam there.",
            AssetReadWarning,
            stacklevel=2,
        )
        return crs
    return _recentred_crs(crs.to_wkt(), (left + right) / 2)


def _wraps(crs: str) -> bool:
    return _grid.x_wrap(crs) is not None


def _source_wrap(crs: CRS) -> _grid.XWrap | None:
    return None if crs.is_geographic else _wrap_of(crs.to_wkt())


@lru_cache(maxsize=32)
def _wrap_of(wkt: str) -> _grid.XWrap | None:
    return _grid.x_wrap(wkt)


def _target_crs(req: ChunkRead) -> CRS:
    """The CRS a chunk is warped onto: for a chunk reaching past the world's edge of a CRS
    whose x wraps around the world the same CRS with PROJ's ``+over``, so that its pixels
    past the edge are longitudes past the seam (as the output grid's footprints are computed,
    see ``_grid.footprints``). Within the world both are the same transformation; the plain
    one is the faster for GDAL."""
    wrap = _grid.x_wrap(req.crs)
    if wrap is None:
        return _rio_crs(req.crs)
    a, _, c = req.transform[:3]
    x0, x1 = sorted((c, c + a * req.shape[1]))
    if wrap.west <= x0 and x1 <= wrap.west + wrap.period:
        return _rio_crs(req.crs)
    return _rio_crs(wrap.over)


@lru_cache(maxsize=32)
def _lon_wrap_crs(wkt: str, center: float) -> CRS:
    return CRS.from_proj4(f"{CRS.from_wkt(wkt).to_proj4()} +lon_wrap={center!r}")


def _set_proj_param(proj4: str, key: str, value: float) -> str:
    tokens = [t for t in proj4.split() if not t.startswith(f"+{key}=") and t != "+type=crs"]
    return " ".join([*tokens, f"+{key}={value!r}"])


@lru_cache(maxsize=32)
def _recentred_crs(wkt: str, x: float) -> CRS:
    """A cylindrical CRS (x linear in longitude, the same at every latitude) with its central
    meridian moved to the longitude of ``x`` (past the seam: ``+over``) and the false easting
    that keeps every coordinate where it was, so that the seam lies opposite ``x``."""

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        crs = pyproj.CRS.from_wkt(wkt)
        wrap = _grid.x_wrap(wkt)
        assert wrap is not None and crs.geodetic_crs is not None
        over = pyproj.CRS.from_wkt(wrap.over)
        geo = crs.geodetic_crs
        lon, _ = pyproj.Transformer.from_crs(over, geo, always_xy=True).transform(x, 0.0)
        proj4 = _set_proj_param(crs.to_proj4(), "lon_0", float(lon))
        moved = pyproj.CRS.from_proj4(proj4)
        at, _ = pyproj.Transformer.from_crs(geo, moved, always_xy=True).transform(lon, 0.0)
        want, _ = pyproj.Transformer.from_crs(geo, over, always_xy=True).transform(lon, 0.0)
        unit = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
        x0 = float(crs.to_dict().get("x_0", 0.0))
        proj4 = _set_proj_param(proj4, "x_0", x0 + (want - at) * unit)
    return CRS.from_proj4(proj4)


#: Shift, in source pixels, of a warp's grid onto a source in its own CRS (see ``_off_ties``).
TIE_SHIFT = 1e-6


#: The methods whose ties ``_off_ties`` resolves: those that sample the source at pixel
#: centres. Not average and the other area methods: moved, the output pixels on exactly whole
#: source pixels would take a sliver of the next source pixel too (valid with its value where
#: their own are nodata); GDAL's own tolerance (1e-10 source pixels) keeps them on whole pixels.
_TIE_METHODS = frozenset(
    {Resampling.nearest, Resampling.bilinear, Resampling.cubic, Resampling.cubic_spline,
     Resampling.lanczos}
)  # fmt: skip


#: Overlap, in source pixels, below which an output pixel does not cover a source pixel
#: (``_covers_valid``).
COVER_MIN = 1e-6


def _covers_valid(src: rasterio.DatasetReader, req: ChunkRead, nodata: float | None) -> np.ndarray:
    """Output pixels of a grid in the source's CRS that cover a valid source pixel by more than
    ``COVER_MIN`` source pixels on each axis.


    GDAL's average counts an output pixel valid when its edge lies on the source's top or left
    edge (or on the edge of a nodata area) to 1e-10 source pixels, with no overlap at all; with
    large coordinates (Web Mercator near 180 degrees, fine geographic pixels) one rounding step
    is about that much, so such a pixel was valid in one chunking and empty in another. This
    mask, from the grids' own arithmetic with a tolerance far above the rounding, drops them
    in every chunk."""
    st = src.transform
    t = Affine(*req.transform)
    h, w = req.shape
    if st.b or st.d or t.b or t.d:  # rotated pixels: left to GDAL
        return np.ones((h, w), bool)
    out = np.zeros((h, w), bool)
    ye = (t.f + np.arange(h + 1) * t.e - st.f) / st.e
    r0 = np.clip(np.floor(np.minimum(ye[:-1], ye[1:]) + COVER_MIN), 0, src.height).astype(int)
    r1 = np.clip(np.ceil(np.maximum(ye[:-1], ye[1:]) - COVER_MIN), 0, src.height).astype(int)
    if not (r1 > r0).any():
        return out
    shifts: tuple[float, ...] = (0.0,)
    wrap = _source_wrap(src.crs)
    if src.crs.is_geographic:
        shifts = (-360.0, 0.0, 360.0)
    elif wrap is not None and wrap.cylindrical:  # the chunk on another turn of the world
        shifts = (-wrap.period, 0.0, wrap.period)
    for k in shifts:
        xe = (t.c + k + np.arange(w + 1) * t.a - st.c) / st.a
        c0 = np.floor(np.minimum(xe[:-1], xe[1:]) + COVER_MIN)
        c1 = np.ceil(np.maximum(xe[:-1], xe[1:]) - COVER_MIN)
        c0 = np.clip(c0, 0, src.width).astype(int)
        c1 = np.clip(c1, 0, src.width).astype(int)
        if not (c1 > c0).any():
            continue
        top, bottom = int(r0[r1 > r0].min()), int(r1[r1 > r0].max())
        left, right = int(c0[c1 > c0].min()), int(c1[c1 > c0].max())
        win = Window(left, top, right - left, bottom - top)
        if nodata is None:
            valid = src.read_masks(1, window=win) > 0
        else:
            valid = _valid(src.read(1, window=win), nodata)
        area = np.zeros((valid.shape[0] + 1, valid.shape[1] + 1), np.int64)
        area[1:, 1:] = valid.cumsum(0).cumsum(1)
        ya, yb = (
            (np.clip(r0, top, bottom) - top)[:, None],
            (np.clip(r1, top, bottom) - top)[:, None],
        )
        xa, xb = (
            (np.clip(c0, left, right) - left)[None, :],
            (np.clip(c1, left, right) - left)[None, :],
        )
        count = area[yb, xb] - area[ya, xb] - area[yb, xa] + area[ya, xa]
        out |= count > 0
    return out


def _off_ties(transform: Affine, src: Affine) -> Affine:
    """``transform`` moved ``TIE_SHIFT`` source pixels right and down.


    A grid in the source's CRS with another pixel size often puts pixel centres and edges
    exactly on source pixel edges (a 20 m grid on 10 m pixels, 0.0004 degrees on 0.0002). GDAL
    computes each pixel's source position from the warp's own origin, a rounding error away
    from another warp's; near 180 degrees of longitude one rounding step is 1e-10 source pixels
    of 0.0002 degrees, GDAL's own tolerance at pixel edges, so such a pixel took the left or
    the right source pixel (nearest), or a kernel centred on the source's edge was valid or
    empty, depending on the chunk; GDAL's cubic also takes another branch exactly on a source
    pixel's centre (22 units away on noisy data). Moved by far more than the rounding (and far
    less than anything visible), every chunk resolves those ties alike: to the right and down,
    GDAL's rule for exact ties."""
    dx = TIE_SHIFT * math.hypot(src.a, src.d)
    dy = TIE_SHIFT * math.hypot(src.b, src.e)
    sx = 1.0 if transform.a > 0 else -1.0
    sy = 1.0 if transform.e > 0 else -1.0
    return Affine(
        transform.a, transform.b, transform.c + sx * dx, transform.d, transform.e,
        transform.f + sy * dy,
    )  # fmt: skip


def _warp_exact(
    src: rasterio.DatasetReader, req: ChunkRead, resampling: Resampling, nodata: float | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """GDAL's warper with an exact coordinate transformation (see ``EXACT_TOLERANCE``), through
    a ``WarpedVRT`` on the chunk grid (``rasterio.warp.reproject`` always approximates).


    Interpolating kernels work in float64 (GDAL's integer and float32 fast paths weight a
    widened kernel that runs past the source's edge differently from its general one) and are
    converted to the source's type here, valid mask returned."""
    h, w = req.shape
    transform = Affine(*req.transform)
    vrt_opts: dict[str, Any] = {
        "src_crs": _wrapped_crs(src, req.crs),
        "crs": _target_crs(req),
        "transform": transform,
        "width": w,
        "height": h,
        "resampling": resampling,
        "tolerance": EXACT_TOLERANCE,
    }
    kernel = _KERNEL_RADIUS.get(resampling)
    if kernel is not None:
        vrt_opts.update(_kernel_options(src, req, kernel), dtype="float64")
        dtype = np.dtype(src.dtypes[0])
        if nodata is not None:
            with WarpedVRT(src, src_nodata=nodata, nodata=np.nan, **vrt_opts) as vrt:
                out = vrt.read(1)
            valid = ~np.isnan(out)
            return _to_source_type(out, valid, dtype, nodata), valid
        with WarpedVRT(src, add_alpha=True, **vrt_opts) as vrt:
            both = vrt.read()
        valid = both[-1] > 0
        return _to_source_type(both[0], valid, dtype, None), valid
    if resampling != Resampling.nearest:
        vrt_opts.update(_area_options(src, req))
    if nodata is not None:
        with WarpedVRT(src, src_nodata=nodata, nodata=nodata, **vrt_opts) as vrt:
            return vrt.read(1), None
    with WarpedVRT(src, add_alpha=True, **vrt_opts) as vrt:
        both = vrt.read()
    return both[0], both[-1] > 0
