"""File I/O: the GDAL path of an href, GDAL's options for a read, the S3 settings of a read,
and the process's pool of open datasets shared by its threads (with GDAL's cache of remote
files, dropped when a file fails or is opened with other credentials)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import rasterio

from ._handles import HandlePool
from ._items import Source
from .stores import storage
from .stores.storage import S3Config

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


#: Idle dataset handles kept open per process (shared by its threads).
MAX_IDLE_HANDLES = 128


_handles = HandlePool(MAX_IDLE_HANDLES)


#: S3 hrefs this process has opened -> fingerprint of the settings of the last opening (to tell
#: an object that vanished from one never there, and to drop GDAL's URL-keyed cache of an
#: object when it is opened with other credentials, so that they are checked by the server).
_opened_s3: dict[str, str] = {}


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


def _is_remote(href: str) -> bool:
    """Whether an href is read over the network (or through another GDAL virtual file system)."""
    return ("://" in href and not href.startswith("file://")) or href.startswith("/vsi")


def gdal_options(sources: tuple[Source, ...]) -> dict[str, str]:
    """GDAL configuration for reading ``sources``: a small per-file cache for remote files only."""
    if any(_is_remote(s.href) for s in sources):
        return {**GDAL_OPTIONS, "VSI_CACHE": "TRUE"}
    return GDAL_OPTIONS


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
