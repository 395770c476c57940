"""``load``: STAC items to a lazy, dask-backed, georeferenced ``xarray.Dataset``; ``open_stac``:
search a STAC source and load the result."""

from __future__ import annotations

import gc
import hashlib
import inspect
import itertools
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
import pandas as pd
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from dask.highlevelgraph import HighLevelGraph
from odc.geo.geobox import GeoBox

from . import _grid, _validate
from ._items import ItemTable, Source, band_dtype, parse_items
from ._reader import ChunkRead, fill_chunk, read_sources
from .discovery import search
from .storage import S3Config, StorageOptions, resolve

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
    skeys = keys[order]
    uniq, starts = np.unique(skeys, return_index=True)
    bounds = [*starts.tolist(), len(order)]
    groups = [order[bounds[k] : bounds[k + 1]] for k in range(len(uniq))]
    if len(starts) and (np.diff(starts) > 0).all():  # the slots in time order: one pass
        return np.minimum.reduceat(times[order], starts), groups
    return np.asarray([times[g].min() for g in groups]), groups


#: Output pixels around an item's footprint whose chunks read the item. GDAL's average takes
#: the source pixels in the box of an output pixel's top-left and bottom-right corners, which
#: on a grid rotated against the source's (polar data onto a cylindrical grid) reaches past
#: the pixel itself: a pixel a pixel beyond the footprint can take a value, in every chunking
#: only when every chunk near the footprint reads the item.
FOOTPRINT_PAD = 2


def _chunk_ranges(
    foot: np.ndarray, geobox: GeoBox, cy: int, cx: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per item, the chunk index ranges [y0, y1) and [x0, x1) its footprint touches, with
    ``FOOTPRINT_PAD`` pixels around it."""
    t = geobox.transform
    h, w = geobox.shape
    res_x, res_y = t.a, -t.e
    pad = FOOTPRINT_PAD
    col0 = np.floor((foot[:, 0] - t.c) / res_x) - pad
    col1 = np.ceil((foot[:, 2] - t.c) / res_x) + pad
    row0 = np.floor((t.f - foot[:, 3]) / res_y) - pad
    row1 = np.ceil((t.f - foot[:, 1]) / res_y) + pad
    bad = np.isnan(foot).any(axis=1)
    col0, col1 = np.where(bad, 0, col0), np.where(bad, w, col1)
    row0, row1 = np.where(bad, 0, row0), np.where(bad, h, row1)
    x0 = np.clip(col0, 0, w).astype(int) // cx
    x1 = -(-np.clip(col1, 0, w).astype(int) // cx)
    y0 = np.clip(row0, 0, h).astype(int) // cy
    y1 = -(-np.clip(row1, 0, h).astype(int) // cy)
    return y0, y1, x0, x1


@dataclass(frozen=True)
class ChunkIndex:
    """Items touching each (time slot, chunk) of the output, in mosaic order."""

    keys: list[tuple[int, int, int]]  # (time slot, chunk row, chunk column) with items
    rows: list[list[int]]  # item rows per key, first on top


def chunk_index(groups: list[np.ndarray], ranges: tuple[np.ndarray, ...]) -> ChunkIndex:
    """Expand every item into the chunks its footprint touches, grouped per (slot, chunk)."""
    order = np.concatenate(groups) if groups else np.zeros(0, np.intp)
    slot = np.repeat(np.arange(len(groups)), [len(g) for g in groups])
    y0, y1, x0, x1 = (np.asarray(r)[order] for r in ranges)
    ny, nx = np.maximum(y1 - y0, 0), np.maximum(x1 - x0, 0)
    count = ny * nx
    rep = np.repeat(np.arange(len(order)), count)
    k = np.arange(len(rep)) - np.repeat(np.cumsum(count) - count, count)
    iy = y0[rep] + k // nx[rep]
    ix = x0[rep] + k % nx[rep]
    ts = slot[rep]
    sort = np.lexsort((rep, ix, iy, ts))
    ts, iy, ix, item = ts[sort], iy[sort], ix[sort], order[rep[sort]]
    new = np.ones(len(ts), bool)
    new[1:] = (ts[1:] != ts[:-1]) | (iy[1:] != iy[:-1]) | (ix[1:] != ix[:-1])
    starts = np.flatnonzero(new)
    keys = list(zip(ts[starts].tolist(), iy[starts].tolist(), ix[starts].tolist(), strict=True))
    bounds = [*starts.tolist(), len(ts)]
    items = item.tolist()
    rows = [items[bounds[j] : bounds[j + 1]] for j in range(len(starts))]
    return ChunkIndex(keys, rows)


def _base_token(
    groups: list[np.ndarray], geobox: GeoBox, chunks: tuple[tuple[int, ...], tuple[int, ...]]
) -> Any:
    """A hash of the inputs shared by every band: grouping, grid and chunks."""
    h = hashlib.sha1(usedforsecurity=False)
    sizes = np.asarray([len(g) for g in groups], np.int64)
    order = np.concatenate(groups).astype(np.int64) if groups else np.zeros(0, np.int64)
    h.update(sizes.tobytes() + b"|" + order.tobytes())
    h.update(repr((tuple(geobox.transform), geobox.shape, str(geobox.crs), chunks)).encode())
    return h


def _band_token(base: Any, band: str, srcs: list[Source | None], options: tuple) -> str:
    """``base`` extended with a band's sources and read options, as a hex digest."""
    h = base.copy()
    h.update(repr((band, options)).encode())
    h.update("\0".join("\1" if s is None else s.href for s in srcs).encode())
    nan = float("nan")
    values = [
        (nan, nan, nan) if s is None else (s.scale, s.offset, nan if s.nodata is None else s.nodata)
        for s in srcs
    ]
    flat = np.fromiter(itertools.chain.from_iterable(values), np.float64, 3 * len(values))
    h.update(flat.tobytes())
    return h.hexdigest()


class _ReadTasks(Mapping):
    """The read tasks of one band, made when asked for: ``(name, slot, row, col)`` ->
    ``(read_sources, spec, sources)``, or a nodata fill where no item touches the chunk.

    A graph layer as a mapping instead of a dict: a lazy ``load`` of many items costs the chunk
    index only, and a graph culled to a subset (``ds.isel``, ``subset``) never makes the tasks
    it drops.
    """

    def __init__(
        self,
        name: str,
        ntimes: int,
        specs: dict[tuple[int, int], ChunkRead],
        where: dict[tuple[int, int, int], list[int]],
        srcs: list[Source | None],
    ) -> None:
        self.name, self.ntimes, self.specs, self.where, self.srcs = name, ntimes, specs, where, srcs

    def __getitem__(self, key: Any) -> tuple:
        if not (isinstance(key, tuple) and len(key) == 4 and key[0] == self.name):
            raise KeyError(key)
        _, ti, iy, ix = key
        spec = self.specs.get((iy, ix))
        if spec is None or not 0 <= ti < self.ntimes:
            raise KeyError(key)
        rows = self.where.get((ti, iy, ix), ())
        srcs = self.srcs
        found = tuple(s for r in rows if (s := srcs[r]) is not None)
        if found:
            return (read_sources, spec, found)
        return (fill_chunk, spec.shape, spec.fill, spec.dtype)

    def __iter__(self) -> Iterator[tuple[str, int, int, int]]:
        name = self.name
        for ti in range(self.ntimes):
            for iy, ix in self.specs:
                yield (name, ti, iy, ix)

    def __len__(self) -> int:
        return self.ntimes * len(self.specs)

    def __contains__(self, key: object) -> bool:
        try:
            self[key]
        except KeyError:
            return False
        return True


def _band_array(
    table: ItemTable,
    band: str,
    ntimes: int,
    where: dict[tuple[int, int, int], list[int]],
    base: Any,
    geobox: GeoBox,
    chunks: tuple[tuple[int, ...], tuple[int, ...]],
    dtype: str,
    fill: float,
    scaled: bool,
    resampling: str,
    fail_on_error: bool,
    storage: S3Config | None = None,
) -> da.Array:
    ychunks, xchunks = chunks
    cy, cx = ychunks[0], xchunks[0]
    t = geobox.transform
    crs = str(geobox.crs)
    srcs = table.sources[band]
    options = (dtype, fill, scaled, resampling, fail_on_error, storage and storage.token())
    name = "load-" + band + "-" + _band_token(base, band, srcs, options)
    specs = {
        (iy, ix): ChunkRead(
            transform=(t.a, t.b, t.c + ix * cx * t.a, t.d, t.e, t.f + iy * cy * t.e),
            shape=(h, w),
            crs=crs,
            sources=(),
            dtype=dtype,
            fill=fill,
            scaled=scaled,
            resampling=resampling,
            fail_on_error=fail_on_error,
            storage=storage,
        )
        for iy, h in enumerate(ychunks)
        for ix, w in enumerate(xchunks)
    }
    tasks = _ReadTasks(name, ntimes, specs, where, srcs)
    graph = HighLevelGraph.from_collections(name, tasks, dependencies=())
    return da.Array(
        graph,
        name,
        chunks=((1,) * ntimes, ychunks, xchunks),
        dtype=dtype,
        meta=np.empty((0, 0, 0), dtype=dtype),
    )


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
        arr = _band_array(
            table,
            band,
            len(groups),
            where,
            base,
            geobox,
            block,
            out_dtype,
            fill,
            scaled,
            method,
            fail_on_error,
            storage,
        )
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
    ``s3://`` hrefs are read with ``storage_options`` (see :mod:`eotoolkit.storage`), by default
    with the AWS environment and profile of the process that reads.
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
