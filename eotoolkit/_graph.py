"""The graph builder of ``load``: which chunks each item's footprint touches, the items of each
(time slot, chunk) in mosaic order, and per band one graph layer of read tasks made on demand,
named by a hash of everything that makes its pixels."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import dask.array as da
import numpy as np
from dask.highlevelgraph import HighLevelGraph
from odc.geo.geobox import GeoBox

from ._items import ItemTable, Source
from ._plan import BandRead, ChunkRead
from ._reader import fill_chunk, read_sources

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
    if srcs and None not in srcs:  # every item has the band: its fields read column by column
        h.update("\0".join(map(attrgetter("href"), srcs)).encode())
        columns = [
            np.fromiter(map(attrgetter("scale"), srcs), np.float64, len(srcs)),
            np.fromiter(map(attrgetter("offset"), srcs), np.float64, len(srcs)),
            np.array(list(map(attrgetter("nodata"), srcs)), np.float64),  # None: NaN
        ]
        h.update(np.stack(columns, axis=1).tobytes())
        return h.hexdigest()
    h.update("\0".join("\1" if s is None else s.href for s in srcs).encode())
    nan = float("nan")
    values = [
        (nan, nan, nan) if s is None else (s.scale, s.offset, nan if s.nodata is None else s.nodata)
        for s in srcs
    ]
    flat = np.fromiter(itertools.chain.from_iterable(values), np.float64, 3 * len(values))
    h.update(flat.tobytes())
    return h.hexdigest()


class ReadTasks(Mapping):
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
    read: BandRead,
) -> da.Array:
    """One band as a dask array: a graph layer of the read tasks of its chunks (``ReadTasks``)."""
    ychunks, xchunks = chunks
    cy, cx = ychunks[0], xchunks[0]
    t = geobox.transform
    crs = str(geobox.crs)
    srcs = table.sources[band]
    name = "load-" + band + "-" + _band_token(base, band, srcs, read.options())
    specs = {
        (iy, ix): read.chunk(
            (t.a, t.b, t.c + ix * cx * t.a, t.d, t.e, t.f + iy * cy * t.e), (h, w), crs
        )
        for iy, h in enumerate(ychunks)
        for ix, w in enumerate(xchunks)
    }
    tasks = ReadTasks(name, ntimes, specs, where, srcs)
    graph = HighLevelGraph.from_collections(name, tasks, dependencies=())
    return da.Array(
        graph,
        name,
        chunks=((1,) * ntimes, ychunks, xchunks),
        dtype=read.dtype,
        meta=np.empty((0, 0, 0), dtype=read.dtype),
    )
