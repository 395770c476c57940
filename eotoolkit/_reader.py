"""Read one output chunk of one band: open each source, read its window, mosaic first-valid.

Sources in the output CRS are read with a (possibly fractional) window and ``out_shape`` so that
GDAL picks the matching COG overview. Sources in another CRS are opened at the best overview
level and warped onto the chunk grid with GDAL's warper (a ``WarpedVRT`` with an exact coordinate
transformation, see ``_warp_exact``).
"""

from __future__ import annotations

import math
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.env import set_gdal_config
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform as rio_transform
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from . import _grid, storage
from ._handles import HandlePool
from ._items import Source
from .errors import (
    AssetMetadataError,
    AssetReadError,
    AssetReadWarning,
    StorageError,
    asset_storage_error,
)
from .storage import S3Config

GDAL_OPTIONS = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MULTIPLEX": "YES",
    "GDAL_HTTP_VERSION": "2",
    "GDAL_HTTP_MAX_RETRY": "3",
    "GDAL_HTTP_RETRY_DELAY": "0.5",
    "VSI_CACHE": "FALSE",
    "VSI_CACHE_SIZE": str(2 * 2**20),
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.TIF,.TIFF,.jp2,.vrt",
}
#: Upper bound of GDAL's block cache per process (GDAL's default is 5 % of the machine's RAM,
#: memory that Dask neither sees nor can free).
GDAL_CACHE_MAX = 128 * 2**20
GDAL_CACHE_MIN = 16 * 2**20
#: Share of a Dask worker's memory limit given to GDAL's block cache.
GDAL_CACHE_FRACTION = 1 / 16
#: Idle dataset handles kept open per process (shared by its threads).
MAX_IDLE_HANDLES = 128
_handles = HandlePool(MAX_IDLE_HANDLES)
_config_lock = threading.Lock()
_configured_pid: int | None = None
#: S3 hrefs this process has opened -> fingerprint of the settings of the last opening (to tell
#: an object that vanished from one never there, and to drop GDAL's URL-keyed cache of an
#: object when it is opened with other credentials, so that they are checked by the server).
_opened_s3: dict[str, str] = {}


@dataclass(frozen=True)
class ChunkRead:
    """Everything needed to produce one (1, h, w) chunk of one band."""

    transform: tuple[float, float, float, float, float, float]
    shape: tuple[int, int]
    crs: str
    sources: tuple[Source, ...]
    dtype: str
    fill: float
    scaled: bool
    resampling: str
    fail_on_error: bool
    #: S3 settings of the load (None: the environment and AWS profile of the reading process)
    storage: S3Config | None = None


def gdal_path(href: str, cfg: S3Config | None = None) -> str:
    """Map file:// URLs to paths and s3:// URLs (and http(s) URLs on the configured S3
    endpoint) to /vsis3/; other URLs are handled by GDAL's /vsicurl/ and friends."""
    if href.startswith("file://"):
        return href[7:]
    if cfg is not None and href.startswith(("http://", "https://")):
        href = storage.endpoint_to_s3(href, cfg) or href
    if href.startswith("s3://"):
        return "/vsis3/" + href[5:]
    if href.startswith(("gs://", "gcs://")):
        return "/vsigs/" + href.split("://", 1)[1]
    return href


def _worker_memory_limit() -> int | None:
    """The memory limit of the Dask worker running the calling task, if any."""
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return None
    try:
        worker = distributed.get_worker()
    except ValueError:
        return None
    limit = getattr(getattr(worker, "memory_manager", None), "memory_limit", None)
    return int(limit) if limit else None


def gdal_cache_bytes(memory_limit: int | None) -> int:
    """GDAL block cache size: a share of ``memory_limit`` within bounds, else the upper bound."""
    if not memory_limit:
        return GDAL_CACHE_MAX
    share = int(memory_limit * GDAL_CACHE_FRACTION)
    return max(GDAL_CACHE_MIN, min(GDAL_CACHE_MAX, share))


def configure_gdal() -> None:
    """Bound GDAL's process-wide block cache once per process.

    A ``GDAL_CACHEMAX`` environment variable is left to GDAL.
    """
    global _configured_pid
    pid = os.getpid()
    if _configured_pid == pid:
        return
    with _config_lock:
        if _configured_pid == pid:
            return
        if "GDAL_CACHEMAX" not in os.environ:
            set_gdal_config("GDAL_CACHEMAX", gdal_cache_bytes(_worker_memory_limit()))
        _configured_pid = pid


def _is_remote(href: str) -> bool:
    """Whether an href is read over the network (or through another GDAL virtual file system)."""
    return ("://" in href and not href.startswith("file://")) or href.startswith("/vsi")


def gdal_options(sources: tuple[Source, ...]) -> dict[str, str]:
    """GDAL configuration for reading ``sources``: a small per-file cache for remote files only."""
    if any(_is_remote(s.href) for s in sources):
        return {**GDAL_OPTIONS, "VSI_CACHE": "TRUE"}
    return GDAL_OPTIONS


@lru_cache(maxsize=32)
def _rio_crs(crs: str) -> CRS:
    return CRS.from_user_input(crs)


def s3_config(sources: tuple[Source, ...], explicit: S3Config | None) -> S3Config | None:
    """The S3 settings for reading ``sources`` (``explicit``, else the environment's), None
    when no source is on S3."""
    hrefs = [s.href for s in sources]
    if not any(h.startswith(("s3://", "/vsis3/", "http://", "https://")) for h in hrefs):
        return None
    cfg = explicit if explicit is not None else storage.resolve()
    if any(storage.is_s3(h) or storage.endpoint_to_s3(h, cfg) for h in hrefs):
        return cfg
    return None


def _s3_url(href: str, cfg: S3Config | None) -> str | None:
    """The s3:// URL an href is read from, None when it is not read from S3."""
    if cfg is None:
        return None
    if href.startswith("/vsis3/"):
        return "s3://" + href[len("/vsis3/") :]
    if href.startswith("s3://"):
        return href
    return storage.endpoint_to_s3(href, cfg)


@contextmanager
def _dataset(
    href: str, overview_level: int | None = None, cfg: S3Config | None = None
) -> Iterator[rasterio.DatasetReader]:
    """An open dataset of ``href`` (at an overview level) for the calling thread, from the
    process's pool of idle handles. Handles are keyed on the S3 settings too: a handle keeps
    the credentials it was opened with, and one opened with other settings is not reused."""

    token = cfg.token() if cfg else None

    def opener() -> rasterio.DatasetReader:
        path = gdal_path(href, cfg)
        s3 = path.startswith("/vsis3/") and token is not None
        if s3 and _opened_s3.get(href, token) != token:
            _clear_gdal_http_cache(path)
        if overview_level is None:
            src = rasterio.open(path)
        else:
            src = rasterio.open(path, overview_level=overview_level)
        if s3 and token is not None:
            _opened_s3[href] = token
        return src

    key = (href, overview_level, _local_version(href), token)
    with _handles.take(key, opener) as src:
        yield src


def _local_version(href: str) -> tuple[int, int] | None:
    """(mtime, size) of a local file so that a rewritten file is not read from a stale handle."""
    if _is_remote(href):
        return None
    try:
        st = os.stat(gdal_path(href))
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def _forget(href: str, cfg: S3Config | None = None) -> None:
    _handles.discard(lambda key: key[0] == href)  # type: ignore[index]
    if _is_remote(href):
        _clear_gdal_http_cache(gdal_path(href, cfg))


@lru_cache(maxsize=1)
def _gdal_lib() -> Any:
    """The GDAL library rasterio loaded (for the cache functions rasterio does not wrap)."""
    import ctypes

    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "libgdal" in line and "/" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
            lib.VSICurlPartialClearCache.argtypes = [ctypes.c_char_p]
            return lib
        except (OSError, AttributeError):
            continue
    return None


def _clear_gdal_http_cache(prefix: str | None = None) -> None:
    """Drop GDAL's process-wide cache of remote file sizes and byte ranges (keyed by URL only,
    not by credentials): under ``prefix``, or all of it."""
    lib = _gdal_lib()
    if lib is None:
        return
    if prefix is None:
        lib.VSICurlClearCache()
    elif prefix.startswith("/vsi"):
        lib.VSICurlPartialClearCache(prefix.encode())


def clear_cache() -> None:
    """Close the idle datasets of this process and drop GDAL's cache of remote files."""
    _handles.discard(lambda key: True)
    _clear_gdal_http_cache()


def _pixel_range(start: float, stop: float, origin: float, step: float, n: int) -> tuple[int, int]:
    """Output pixels [i0, i1) along one axis whose centres lie in [start, stop)."""
    lo = (start - origin) / step - 0.5
    hi = (stop - origin) / step - 0.5
    if step < 0:
        lo, hi = (stop - origin) / step - 0.5, (start - origin) / step - 0.5
    i0 = max(0, math.ceil(lo - 1e-9))
    i1 = min(n, math.ceil(hi - 1e-9))
    return i0, max(i0, i1)


def _same_pixels(src: Affine, dst: tuple[float, ...], tol: float = 1e-6) -> bool:
    """Whether the output pixels are source pixels (same size, edges on the source's), so a
    windowed read is exact; any other grid is warped by GDAL's warper."""
    a, b, c, d, e, f = dst[:6]
    if b or d or src.b or src.d:
        return False
    if abs(a - src.a) > tol * abs(src.a) or abs(e - src.e) > tol * abs(src.e):
        return False
    col, row = (c - src.c) / src.a, (f - src.f) / src.e
    return abs(col - round(col)) < tol and abs(row - round(row)) < tol


def _whole(v: float, tol: float = 1e-6) -> float:
    """``v`` rounded to a whole number when within ``tol`` of one."""
    r = round(v)
    return float(r) if abs(v - r) < tol else v


def _read_same_crs(
    src: rasterio.DatasetReader, req: ChunkRead, resampling: Resampling
) -> tuple[np.ndarray, tuple[slice, slice]] | None:
    a, _, c, _, e, f = req.transform
    h, w = req.shape
    left, bottom, right, top = src.bounds
    c0, c1 = _pixel_range(left, right, c, a, w)
    r0, r1 = _pixel_range(bottom, top, f, e, h)
    if c0 >= c1 or r0 >= r1:
        return None
    st = src.transform
    col_a, row_a = (c + c0 * a - st.c) / st.a, (f + r0 * e - st.f) / st.e
    col_b, row_b = (c + c1 * a - st.c) / st.a, (f + r1 * e - st.f) / st.e
    col_a, col_b = max(0.0, min(col_a, col_b)), min(float(src.width), max(col_a, col_b))
    row_a, row_b = max(0.0, min(row_a, row_b)), min(float(src.height), max(row_a, row_b))
    # the output pixels are source pixels: a window a rounding error off whole pixels would make
    # GDAL resample (blending in nodata with an interpolating method)
    col_a, row_a, col_b, row_b = (_whole(v) for v in (col_a, row_a, col_b, row_b))
    win = Window(col_a, row_a, col_b - col_a, row_b - row_a)
    data = src.read(1, window=win, out_shape=(r1 - r0, c1 - c0), resampling=resampling)
    return data, (slice(r0, r1), slice(c0, c1))


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
    (``_aligned_steps``)."""
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
        west, south, east, north = transform_bounds(
            _target_crs(req), src_crs, left, bottom, right, top, densify_pts=5
        )
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
    import pyproj

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


def _read_source(
    s: Source, req: ChunkRead, resampling: Resampling, cfg: S3Config | None = None
) -> tuple[np.ndarray, np.ndarray, tuple[slice, slice]] | None:
    """(raw values, valid mask, output slices) of one source, None if disjoint."""
    with _dataset(s.href, None, cfg) as src:
        _check_metadata(s, src)
        nodata = s.nodata if s.nodata is not None else src.nodata
        same_crs = src.crs == _rio_crs(req.crs) and _same_pixels(src.transform, req.transform)
        got = _read_same_crs(src, req, resampling) if same_crs else None
        if got is None and same_crs and _source_wrap(src.crs) is not None:
            same_crs = False  # maybe on another turn of the world: warped
    if same_crs:
        if got is None:
            return None
        raw, where = got
        alpha = None
    else:
        warped = _read_warped(s.href, req, resampling, nodata, cfg)
        if warped is None:
            return None
        raw, alpha, where = warped
    if alpha is not None:
        valid = alpha
    elif nodata is None:
        valid = np.ones(raw.shape, bool)
    else:
        valid = _valid(raw, nodata)
    return raw, valid, where


@lru_cache(maxsize=256)
def _crs_equal(declared: str, wkt: str) -> bool:
    """Whether the item's CRS and the file's are the same: equal definitions, or two spellings
    that put every point at the same coordinates (an ESRI or PROJ string with a null datum
    shift for an EPSG code, as some writers store it)."""
    import pyproj

    try:
        item, file = pyproj.CRS.from_user_input(declared), pyproj.CRS.from_user_input(wkt)
        if item.equals(file, ignore_axis_order=True):
            return True
        return _same_coordinates(item, file)
    except pyproj.exceptions.ProjError:
        return False


def _same_coordinates(item: Any, file: Any) -> bool:
    """True when points across the item CRS's area of use keep their coordinates in the file's."""
    import pyproj

    area = item.area_of_use
    west, south, east, north = area.bounds if area else (-10.0, -10.0, 10.0, 10.0)
    if east < west:  # an area across the antimeridian
        east += 360.0
    lons = [west + (east - west) * f for f in (0.1, 0.5, 0.9)]
    lats = [south + (north - south) * f for f in (0.1, 0.5, 0.9)]
    to_item = pyproj.Transformer.from_crs(item.geodetic_crs, item, always_xy=True)
    item_to_file = pyproj.Transformer.from_crs(item, file, always_xy=True)
    for lon in lons:
        for lat in lats:
            x, y = to_item.transform(lon, lat)
            x2, y2 = item_to_file.transform(x, y)
            if not all(math.isfinite(v) for v in (x, y, x2, y2)):
                return False
            if abs(x2 - x) > 1e-9 * max(abs(x), 1.0) or abs(y2 - y) > 1e-9 * max(abs(y), 1.0):
                return False
    return True


def _check_metadata(s: Source, src: rasterio.DatasetReader) -> None:
    """Refuse a file whose CRS or extent is not the one its item declares: the grid and the
    chunks an item is read into come from the metadata, the pixels from the file, so a
    disagreement would silently drop or misplace pixels."""
    fix = (
        "Fix the item's metadata (or the file), or pass fail_on_error=False to fill its "
        "pixels with nodata."
    )
    if src.crs is None:
        raise AssetMetadataError(
            f"Asset {storage.redact(s.href)} has no CRS in the file, its item says "
            f"{_short(s.crs)}: the file is not georeferenced. {fix}"
        )
    if src.count > 1:
        raise AssetMetadataError(
            f"Asset {storage.redact(s.href)} holds {src.count} bands and load reads one band "
            f"per asset: only its first would load. Ask for single-band assets instead. {fix}"
        )
    if s.dtype is not None:
        try:
            declared = np.dtype(s.dtype)
        except TypeError:
            declared = None
        if declared is not None and declared != np.dtype(src.dtypes[0]):
            raise AssetMetadataError(
                f"Asset {storage.redact(s.href)} is {src.dtypes[0]} but its item says "
                f"data_type {s.dtype!r} (raster:bands): its values would be cast wrongly. "
                f"{fix}"
            )
    if s.crs is not None and not _crs_equal(s.crs, src.crs.to_wkt()):
        file_crs = src.crs.to_string() if src.crs.to_epsg() else "a WKT CRS"
        raise AssetMetadataError(
            f"Asset {storage.redact(s.href)} is in {file_crs} but its item says "
            f"{_short(s.crs)} (proj:code/proj:epsg/proj:wkt2). {fix}"
        )
    if s.bbox is not None:
        left, bottom, right, top = src.bounds
        tol = max(abs(src.transform.a), abs(src.transform.e)) + 1e-9 * max(
            abs(left), abs(right), abs(top), abs(bottom), 1.0
        )
        got = (min(left, right), min(bottom, top), max(left, right), max(bottom, top))
        if any(abs(a - b) > tol for a, b in zip(got, s.bbox, strict=True)):
            raise AssetMetadataError(
                f"Asset {storage.redact(s.href)} covers {_fmt(got)} ({src.height} x "
                f"{src.width} pixels) in its CRS but its item says {_fmt(s.bbox)} "
                f"(proj:transform/proj:shape/proj:bbox). {fix}"
            )
    file_nodata = src.nodata
    if (
        s.nodata is not None
        and file_nodata is not None
        and not (math.isnan(s.nodata) and math.isnan(file_nodata))
        and s.nodata != file_nodata
    ):
        raise AssetMetadataError(
            f"Asset {storage.redact(s.href)} has nodata {file_nodata} in the file but its item "
            f"says nodata {s.nodata} (raster:bands): which pixels are empty is unknown. {fix}"
        )
    file_scale = src.scales[0] if src.scales else 1.0
    file_offset = src.offsets[0] if src.offsets else 0.0
    if (file_scale, file_offset) != (1.0, 0.0):
        if not s.scale_declared:
            raise AssetMetadataError(
                f"Asset {storage.redact(s.href)} has scale {file_scale} and offset "
                f"{file_offset} in the file but its item declares none (raster:bands "
                f"scale/offset): its values would load unscaled. Add them to the item's "
                f"raster:bands (or raster:scale/raster:offset). {fix}"
            )
        if not (
            math.isclose(file_scale, s.scale, rel_tol=1e-6)
            and math.isclose(file_offset, s.offset, rel_tol=1e-6, abs_tol=1e-12)
        ):
            raise AssetMetadataError(
                f"Asset {storage.redact(s.href)} has scale {file_scale} and offset "
                f"{file_offset} in the file but its item says scale {s.scale} and offset "
                f"{s.offset}: which is right is unknown. {fix}"
            )


def _short(crs: str | None) -> str:
    text = str(crs)
    return text if len(text) <= 60 else text[:57] + "..."


def _fmt(bbox: Any) -> str:
    return "[" + ", ".join(f"{v:.6g}" for v in bbox) + "]"


def _valid(raw: np.ndarray, nodata: float) -> np.ndarray:
    if math.isnan(nodata):
        return ~np.isnan(raw)
    return raw != nodata


def _scale(raw: np.ndarray, scale: float, offset: float) -> np.ndarray:
    """``raw * scale + offset`` as a new float32 array (one rounding per operation)."""
    if scale != 1.0:
        out = np.multiply(raw, np.float32(scale), dtype=np.float32, casting="unsafe")
    else:
        out = raw.astype(np.float32)
    if offset != 0.0:
        np.add(out, np.float32(offset), out=out)
    return out


class _Mosaic:
    """First-valid mosaic of raw source windows in their own dtype."""

    def __init__(self, shape: tuple[int, int]) -> None:
        self.shape = shape
        self.data: np.ndarray | None = None
        self.filled = np.zeros(shape, bool)
        self.complete = False

    def add(self, raw: np.ndarray, valid: np.ndarray, where: tuple[slice, slice]) -> bool:
        """Fill the pixels still empty with the valid pixels of ``raw``; True once complete."""
        if self.data is None:
            if raw.shape == self.shape:
                self.data, self.filled = raw, valid
            else:
                self.data = np.zeros(self.shape, raw.dtype)
                self.data[where] = raw
                self.filled[where] = valid
            self.complete = bool(self.filled.all())
            return self.complete
        if raw.dtype != self.data.dtype:
            self.data = self.data.astype(np.result_type(self.data, raw))
        region = self.filled[where]
        np.copyto(self.data[where], raw, where=valid & ~region)
        region |= valid
        self.complete = bool(self.filled.all())
        return self.complete

    def result(self, dtype: str, fill: float, scale: float, offset: float) -> np.ndarray:
        """The mosaic as ``dtype`` (scaled to float when ``dtype`` is floating), ``fill`` where
        no source had a valid pixel. Called once: the mosaic's buffers are reused."""
        if self.data is None:
            return np.full(self.shape, fill, dtype=dtype)
        if np.issubdtype(np.dtype(dtype), np.floating):
            out = _scale(self.data, scale, offset)
            out = out.astype(dtype, copy=False)
        else:
            out = self.data.astype(dtype, copy=self.data.dtype != np.dtype(dtype))
        if not self.complete:
            empty = np.logical_not(self.filled, out=self.filled)
            np.copyto(out, np.asarray(fill, dtype=out.dtype), where=empty)
        return out


def _uniform_scaling(sources: tuple[Source, ...]) -> tuple[float, float] | None:
    """The (scale, offset) shared by all sources, None when they differ."""
    pairs = {(s.scale, s.offset) for s in sources}
    return pairs.pop() if len(pairs) == 1 else None


def _describe(exc: BaseException) -> str:
    """The message of a read failure; GDAL's own reason instead of rasterio's "See previous
    exception" (a block that cannot be decoded: the file is truncated or corrupt)."""
    text = str(exc).rstrip(".")
    cause = exc.__cause__ or exc.__context__
    if "previous exception" in text and cause is not None:
        why = str(cause.args[-1] if cause.args else cause).rstrip(".")
        if "IReadBlock failed" in why or "TIFFRead" in why:
            return f"{why} (the file is truncated or corrupt)"
        return why
    return text


def _read_or_warn(
    s: Source, req: ChunkRead, resampling: Resampling, cfg: S3Config | None = None
) -> tuple[np.ndarray, np.ndarray, tuple[slice, slice]] | None:
    """``_read_source``, raising AssetReadError or warning (None) on failure. A failure on S3
    is explained by asking the endpoint (no such bucket or object, access denied, endpoint
    unreachable): the error is then also a StorageError naming the bucket and key."""
    try:
        return _read_source(s, req, resampling, cfg)
    except AssetMetadataError as exc:
        if req.fail_on_error:
            raise
        warnings.warn(f"{exc} Its pixels are filled with nodata.", AssetReadWarning, stacklevel=3)
        return None
    except Exception as exc:
        _forget(s.href, cfg)
        href = storage.redact(s.href)
        why: BaseException = exc
        url = _s3_url(s.href, cfg)
        if url is not None and cfg is not None:
            why = storage.diagnose(cfg, url, vanished=s.href in _opened_s3) or exc
        text = _describe(why)
        text = cfg.scrub(text) if cfg is not None else text
        if req.fail_on_error:
            msg = (
                f"Could not read asset {href}: {text}. Fix or remove the item, or pass "
                f"fail_on_error=False to fill its pixels with nodata."
            )
            if isinstance(why, StorageError):
                raise asset_storage_error(why, msg) from None
            raise AssetReadError(msg) from exc
        warnings.warn(
            f"Could not read asset {href} ({text}); its pixels are filled with nodata.",
            AssetReadWarning,
            stacklevel=3,
        )
        return None


def read_chunk(req: ChunkRead) -> np.ndarray:
    """Mosaic the sources of one chunk, first valid pixel wins; returns shape (1, h, w).

    The mosaic is built in the sources' own dtype; scale, offset and the fill value are
    applied once to the result. Sources with differing scale or offset are scaled one by one.
    """
    resampling = Resampling[req.resampling]
    shared = _uniform_scaling(req.sources) if req.scaled else (1.0, 0.0)
    mosaic = _Mosaic(req.shape)
    configure_gdal()
    cfg = s3_config(req.sources, req.storage)
    options = gdal_options(req.sources)
    env = storage.gdal_env(cfg, **options) if cfg is not None else rasterio.Env(**options)
    with env:
        for s in req.sources:
            got = _read_or_warn(s, req, resampling, cfg)
            if got is None:
                continue
            raw, valid, where = got
            if shared is None:
                raw = _scale(raw, s.scale, s.offset)
            if mosaic.add(raw, valid, where):
                break
    scale, offset = shared or (1.0, 0.0)
    return mosaic.result(req.dtype, req.fill, scale, offset)[np.newaxis]


def read_sources(req: ChunkRead, sources: tuple[Source, ...]) -> np.ndarray:
    """``read_chunk`` of ``req`` with ``sources``: one ``req`` serves every time slot of a chunk."""
    return read_chunk(replace(req, sources=sources))


def fill_chunk(shape: tuple[int, int], fill: float, dtype: str) -> np.ndarray:
    """A (1, h, w) chunk with no source: all nodata."""
    return np.full((1, *shape), fill, dtype=dtype)
