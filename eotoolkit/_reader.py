"""Read one output chunk of one band: open each source, read its window (or warp it, see
``_warp``), mosaic first-valid (``_mosaic``); each file is checked against its item's metadata
(``_asset_checks``) when it is opened (``_files``).

Sources on the chunk's own pixels are read with a window; sources in another CRS or at another
pixel size are read from the best COG overview and warped onto the chunk grid with GDAL's warper
(a ``WarpedVRT`` with an exact coordinate transformation, see ``_warp._warp_exact``), or read
as a window of whole multiples of their pixels where that gives the same pixels.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import warnings
from dataclasses import replace

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.env import set_gdal_config
from rasterio.windows import Window

from ._asset_checks import _check_metadata
from ._files import GDAL_OPTIONS as GDAL_OPTIONS
from ._files import _clear_gdal_http_cache as _clear_gdal_http_cache
from ._files import _dataset, _forget, _opened_s3, _s3_url, gdal_options, s3_config
from ._files import clear_cache as clear_cache
from ._items import Source
from ._mosaic import _Mosaic, _uniform_scaling, _valid
from ._mosaic import _scale as _scale
from ._plan import ChunkRead as ChunkRead
from ._warp import _read_warped, _rio_crs, _source_wrap
from .errors import (
    AssetMetadataError,
    AssetReadError,
    AssetReadWarning,
    StorageError,
    asset_storage_error,
)
from .stores import storage
from .stores.storage import S3Config

#: Upper bound of GDAL's block cache per process (GDAL's default is 5 % of the machine's RAM,
#: memory that Dask neither sees nor can free).
GDAL_CACHE_MAX = 128 * 2**20


GDAL_CACHE_MIN = 16 * 2**20


#: Share of a Dask worker's memory limit given to GDAL's block cache.
GDAL_CACHE_FRACTION = 1 / 16


_config_lock = threading.Lock()


_configured_pid: int | None = None


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
