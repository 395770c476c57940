"""``load``: STAC items to a lazy, dask-backed, georeferenced ``xarray.Dataset``; ``open_stac``:
search a STAC source and load the result."""

from __future__ import annotations

import gc
import inspect
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr

from . import _grid, _validate
from ._graph import ChunkIndex as ChunkIndex
from ._graph import _band_array, _base_token, _chunk_ranges
from ._graph import chunk_index as chunk_index
from ._items import ItemTable, band_dtype, parse_items
from ._plan import BandRead
from .stac.discovery import search
from .stores.storage import StorageOptions, resolve

DEFAULT_CHUNK = 1024


CATEGORICAL = {"scl", "qa_pixel", "qa", "fmask", "mask", "cloud_mask", "qa_radsat"}


def _per_band(value: Any, band: str, default: Any) -> Any:
    if isinstance(value, Mapping):
        return value.get(band, value.get("*", default))
    return default if value is None else value


def _chunk_sizes(chunks: Any) -> tuple[int, int]:
    if chunks is None:
        return DEFAULT_CHUNK, DEFAULT_CHUNK
    if isinstance(chunks, int):
        return chunks, chunks
    return int(chunks.get("y", DEFAULT_CHUNK)), int(chunks.get("x", DEFAULT_CHUNK))


def _split(n: int, size: int) -> tuple[int, ...]:
    full, rest = divmod(n, size)
    return (size,) * full + ((rest,) if rest else ())


def group_items(table: ItemTable, groupby: str | None) -> tuple[np.ndarray, list[np.ndarray]]:
    """(time coordinate, item rows per time slot in mosaic order)."""
    times = table.times
    order = np.argsort(times, kind="stable")
    if groupby in (None, "id", "none"):
        return times[order], list(order.reshape(-1, 1))  # one-item views, made in C
    if groupby == "solar_day":
        lon = (table.lonlat_bbox[:, 0] + table.lonlat_bbox[:, 2]) / 2
        lon = np.where(np.isnan(lon), 0.0, lon)
        local = times + (lon * 240.0).astype("timedelta64[s]")
        keys = local.astype("datetime64[D]")
    elif groupby == "time":
        keys = times
    else:
        keys = pd.DatetimeIndex(times).floor(groupby).to_numpy()
    if len(keys) > 1 and (keys[order][1:] < keys[order][:-1]).any():
        # slot keys not in time order (local solar days of items far apart in longitude):
        # by slot, then by time within a slot (the mosaic order)
        order = np.lexsort((times, keys))
    skeys = keys[order]
    uniq, starts = np.unique(skeys, return_index=True)
    bounds = [*starts.tolist(), len(order)]
    groups = [order[bounds[k] : bounds[k + 1]] for k in range(len(uniq))]
    slot_times = np.minimum.reduceat(times[order], starts) if len(starts) else times[:0]
    if (np.diff(slot_times) >= np.timedelta64(0)).all():  # the slots in time order
        return slot_times, groups
    by_time = np.argsort(slot_times, kind="stable")
    return slot_times[by_time], [groups[k] for k in by_time]


def _output_type(table: ItemTable, band: str, dtype: Any) -> tuple[str, float, bool]:
    """(output dtype, fill value, whether values are scaled) of one band."""
    srcs = [s for s in table.sources[band] if s is not None]
    needs_scaling = any(s.scale != 1.0 or s.offset != 0.0 for s in srcs)
    if dtype is None:
        native = band_dtype(table, band)
        if needs_scaling or native is None:
            return "float32", float("nan"), True
        if np.issubdtype(np.dtype(native), np.floating):
            return native, float("nan"), True
        nd = next((s.nodata for s in srcs if s.nodata is not None), 0.0)
        return native, float(nd), False
    out = np.dtype(dtype)
    if np.issubdtype(out, np.floating):
        return out.name, float("nan"), True
    nd = next((s.nodata for s in srcs if s.nodata is not None), 0.0)
    return out.name, float(nd), False


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: the many small objects of a large graph would
    otherwise trigger full collections that walk every live object (e.g. the pystac items)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _build(
    items: Any,
    bands: Sequence[str] | str | None,
    resolution: float | None,
    crs: Any,
    bbox: tuple[float, float, float, float] | None,
    geometry: Any,
    groupby: str | None,
    chunks: Mapping[str, int] | int | None,
    resampling: str | Mapping[str, str] | None,
    dtype: Any,
    fail_on_error: bool,
    storage_options: StorageOptions | None = None,
) -> xr.Dataset:
    """The body of :func:`load`."""
    storage = resolve(storage_options) if storage_options is not None else None
    bands = _validate.bands("bands", bands)
    if resolution is not None:
        _validate.resolution("resolution", resolution)
    if crs is not None:
        _validate.crs("crs", crs, allow_utm=True)
    if bbox is not None:
        bbox = _validate.bbox("bbox", bbox)
    if geometry is not None:
        if bbox is not None:
            raise _validate.invalid(
                "geometry", geometry, "either bbox= or geometry=, not both", "Drop one of them."
            )
        _validate.geometry("geometry", geometry)
    _validate.groupby("groupby", groupby)
    _validate.chunks("chunks", chunks)
    _validate.resampling("resampling", resampling)
    _validate.dtype("dtype", dtype)
    _validate.boolean("fail_on_error", fail_on_error)
    table, band_list = parse_items(items, bands)
    out_crs = _grid.choose_crs(table, crs)
    res = _grid.choose_resolution(table, band_list, resolution, out_crs)
    foot = _grid.footprints(table, out_crs)
    anchor = _grid.native_anchor(table, out_crs, res)
    geobox = _grid.output_geobox(foot, out_crs, res, bbox, geometry, anchor)
    times, groups = group_items(table, groupby)
    cy, cx = _chunk_sizes(chunks)
    h, w = geobox.shape
    block = (_split(h, min(cy, h)), _split(w, min(cx, w)))
    ranges = _chunk_ranges(foot, geobox, block[0][0], block[1][0])
    coords = _grid.grid_coords(geobox)
    coords["time"] = pd.DatetimeIndex(times).astype("datetime64[ns]")
    index = chunk_index(groups, ranges)
    where = dict(zip(index.keys, index.rows, strict=True))
    base = _base_token(groups, geobox, block)
    data_vars = {}
    for band in band_list:
        out_dtype, fill, scaled = _output_type(table, band, _per_band(dtype, band, None))
        default = "nearest"
        method = _per_band(resampling, band, default)
        if band.lower() in CATEGORICAL and not isinstance(resampling, Mapping):
            method = "nearest"
        read = BandRead(out_dtype, fill, scaled, method, fail_on_error, storage)
        arr = _band_array(table, band, len(groups), where, base, geobox, block, read)
        attrs: dict[str, Any] = {"grid_mapping": "spatial_ref"}
        if not np.issubdtype(np.dtype(out_dtype), np.floating):
            attrs["nodata"] = fill
        if table.common_names[band]:
            attrs["common_name"] = table.common_names[band]
        data_vars[band] = xr.DataArray(arr, dims=("time", "y", "x"), attrs=attrs)
    return xr.Dataset(data_vars, coords=coords)


def load(
    items: Any,
    *,
    bands: Sequence[str] | str | None = None,
    resolution: float | None = None,
    crs: Any = None,
    bbox: tuple[float, float, float, float] | None = None,
    geometry: Any = None,
    groupby: str | None = "solar_day",
    chunks: Mapping[str, int] | int | None = None,
    resampling: str | Mapping[str, str] | None = None,
    dtype: Any = None,
    fail_on_error: bool = True,
    storage_options: StorageOptions | None = None,
) -> xr.Dataset:
    """Load STAC items into a lazy ``xarray.Dataset`` with one (time, y, x) variable per band.

    ``bands`` are asset keys or eo common names; ``crs`` an EPSG code, WKT or ``"utm"``;
    ``bbox`` (lon/lat) or ``geometry`` (EPSG:4326) limit the extent; ``groupby`` is
    ``"solar_day"``, ``"time"``, a pandas frequency or None. Items of one time slot are
    mosaicked, the first valid pixel wins. Bands with ``raster:bands`` scale/offset (or the
    Sentinel-2 baseline >= 04.00 offset) are float32 with NaN for nodata unless ``dtype``
    (a dtype or a mapping band -> dtype) asks for an integer type, which yields raw values.
    ``s3://`` hrefs are read with ``storage_options`` (see :mod:`eotoolkit.stores.storage`), by
    default with the AWS environment and profile of the process that reads.
    """
    with _gc_paused():
        return _build(
            items, bands, resolution, crs, bbox, geometry, groupby, chunks, resampling, dtype,
            fail_on_error, storage_options,
        )  # fmt: skip


LOAD_ARGS = set(inspect.signature(load).parameters) - {"items"}


def open_stac(source: Any, **kwargs: Any) -> xr.Dataset:
    """``search(source, ...)`` then ``load(items, ...)``: keyword arguments go to whichever
    accepts them (``bbox`` and ``storage_options`` go to both)."""
    load_kwargs = {k: v for k, v in kwargs.items() if k in LOAD_ARGS}
    both = ("bbox", "storage_options")
    search_kwargs = {k: v for k, v in kwargs.items() if k not in LOAD_ARGS or k in both}
    items = search(source, **search_kwargs)
    return load(items, **load_kwargs)
