"""Temporal composites: NaN-aware median, mean, min, max, count and quantiles per period."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from itertools import product
from typing import Any

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from .. import _fusion, _validate
from ..errors import InvalidParameterError

SIMPLE = {"mean", "min", "max", "count", "median"}


def _parse_stat(stat: str) -> tuple[str, float | None]:
    if not isinstance(stat, str):
        raise InvalidParameterError(
            f"stat={stat!r} is not valid: expected one of {sorted(SIMPLE)} or 'qX' with "
            f"0 <= X <= 1 (e.g. 'q0.9'), or a list of them."
        )
    s = stat.lower()
    if s in SIMPLE:
        return s, None
    if s.startswith("q"):
        try:
            q = float(s[1:])
        except ValueError:
            q = -1.0
        if 0.0 <= q <= 1.0:
            return "quantile", q
    raise InvalidParameterError(
        f"stat={stat!r} is not valid: unknown composite stat; use one of {sorted(SIMPLE)} "
        f"or 'qX' with 0 <= X <= 1 (e.g. 'q0.9')."
    )


NETWORK_MAX = 16


def _sort_small(data: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Sort a short stack along axis 0 with an odd-even transposition network of element-wise
    ``fmin``/``maximum``: ``fmin`` keeps the number of a (number, NaN) pair and ``maximum``
    the NaN, so NaN sorts last. Returns new arrays; ``data`` is not modified."""
    rows = list(data)
    n = len(rows)
    for rnd in range(n):
        for j in range(rnd % 2, n - 1, 2):
            rows[j], rows[j + 1] = np.fmin(rows[j], rows[j + 1]), np.maximum(rows[j], rows[j + 1])
    return rows


def _sorted_rows(rows: list[np.ndarray]) -> list[np.ndarray]:
    """New arrays: ``rows`` sorted element-wise, NaN last."""
    if len(rows) <= NETWORK_MAX:
        return _sort_small(rows)
    return list(np.sort(np.stack(rows), axis=0))


def _midpoint(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(a + b) * 0.5`` in float32, as numpy's and xarray's median of two values."""
    out = np.add(a, b)
    out *= np.float32(0.5)
    return out


def _lerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Linear interpolation between ``a`` and ``b`` with the rounding of ``np.nanquantile``."""
    diff = b - a
    if t >= 0.5:
        return b - diff * np.float32(1 - t)
    return a + diff * np.float32(t)


def _order_statistic(rows: list[np.ndarray], m: int, q: float, median: bool) -> np.ndarray:
    """Quantile ``q`` of pixels whose ``m`` valid values are ``rows[:m]`` (sorted)."""
    if median:
        return rows[m // 2] if m % 2 else _midpoint(rows[m // 2 - 1], rows[m // 2])
    virtual = m * q + (1 + q * (1 - 1 - 1)) - 1  # numpy's "linear" method
    if virtual >= m - 1:
        return rows[m - 1]
    lo = max(math.floor(virtual), 0)
    t = virtual - lo
    return rows[lo] if t == 0 else _lerp(rows[lo], rows[lo + 1], t)


def _quantile_rows(rows: list[np.ndarray], q: float, median: bool) -> np.ndarray:
    """NaN-aware quantile across equally shaped float32 ``rows`` (one per time step)."""
    if len(rows) == 1:
        return rows[0]
    ordered = _sorted_rows(rows)
    # the median reads ordered[0] only for m == 2, before the first write: no copy needed
    out = ordered[0] if median else ordered[0].copy()
    for m in range(2, len(ordered) + 1):
        enough = np.isnan(ordered[m - 1])
        np.logical_not(enough, out=enough)
        np.copyto(out, _order_statistic(ordered, m, q, median), where=enough)
    return out


def nanquantile_sorted(
    block: np.ndarray, q: float, axis: int = 0, median: bool | None = None
) -> np.ndarray:
    """NaN-aware quantile (linear interpolation, like ``np.nanquantile``) by sorting along axis.

    After sorting with NaN last, a pixel with ``m`` valid values takes the order statistic for
    ``m``, selected by the validity of sorted row ``m - 1``. ``median`` (default: ``q == 0.5``)
    averages the two middle values as ``(a + b) * 0.5`` like ``np.nanmedian``. Returns the
    reduced axis with length 1.
    """
    data = np.moveaxis(block.astype(np.float32, copy=False), axis, 0)
    median = q == 0.5 if median is None else median
    out = _quantile_rows(list(data), q, median)
    return np.moveaxis(out[np.newaxis], 0, axis)


def _reduce(block: np.ndarray, kind: str, q: float | None) -> np.ndarray:
    """Reduce a (t, ...) block to (1, ...)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if kind == "median":
            return nanquantile_sorted(block, 0.5, median=True)
        if kind == "quantile":
            return nanquantile_sorted(block, float(q or 0.0), median=False)
        if kind == "count":
            return np.sum(~np.isnan(block), axis=0, keepdims=True).astype(np.int16)
        data = block.astype(np.float32, copy=False)
        fn: Any = {"mean": np.nanmean, "min": np.nanmin, "max": np.nanmax}[kind]
        return fn(data, axis=0, keepdims=True).astype(np.float32)


def _reduce_blocks(blocks: list[np.ndarray], kind: str, q: float | None) -> np.ndarray:
    """Reduce (1, ...) blocks of consecutive time steps to one (1, ...) block."""
    if kind not in ("median", "quantile"):
        return _reduce(np.concatenate(blocks, axis=0), kind, q)
    rows = [b[0].astype(np.float32, copy=False) for b in blocks]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return _quantile_rows(rows, float(q or 0.0), kind == "median")[np.newaxis]


def _reduce_chains(blocks: _fusion.Chains, kind: str, q: float | None) -> np.ndarray:
    """Make a period's blocks (their reads and element-wise operations) and reduce them."""
    return _reduce_blocks(blocks.compute(), kind, q)


def _empty_period(shape: tuple[int, ...], kind: str) -> np.ndarray:
    """The block of a period without data: NaN, or a count of 0."""
    if kind == "count":
        return np.zeros(shape, np.int16)
    return np.full(shape, np.nan, np.float32)


class _PeriodTasks(Mapping):
    """The composite's tasks, made when asked for: one per period and spatial block.

    With ``fused``, each task makes the blocks it reduces itself (see ``_fusion``) and the
    graph holds these tasks only; otherwise each depends on the input's blocks. A period
    without data is a block of NaN (a count of 0). A mapping, as ``load``'s read layers are, so
    that a culled graph never makes the tasks it drops."""

    def __init__(
        self, name: str, data: da.Array, counts: list[int], kind: str, q: float | None, fused: bool
    ) -> None:
        self.name, self.data_name, self.kind, self.q = name, data.name, kind, q
        self.starts = np.cumsum([0, *counts]).tolist()
        self.source = _fusion.BlockChains(data) if fused else None
        self.chunks = data.chunks[1:]
        self.spatial = tuple(len(c) for c in self.chunks)

    def _block(self, key: Any) -> tuple[int, list[int]] | None:
        """(period, spatial block index) of one of this layer's keys, else None."""
        if not (isinstance(key, tuple) and len(key) == 2 + len(self.spatial)):
            return None
        name, k, *idx = key
        if name != self.name or not 0 <= k < len(self.starts) - 1:
            return None
        if not all(0 <= i < n for i, n in zip(idx, self.spatial, strict=True)):
            return None
        return k, idx

    def __contains__(self, key: object) -> bool:
        # the key alone: Mapping's own test would make the task (and a fused one's chains)
        return self._block(key) is not None

    def __getitem__(self, key: Any) -> tuple:
        block = self._block(key)
        if block is None:
            raise KeyError(key)
        k, idx = block
        steps = range(self.starts[k], self.starts[k + 1])
        if not steps:
            shape = (1, *(c[i] for c, i in zip(self.chunks, idx, strict=True)))
            return (_empty_period, shape, self.kind)
        keys = [(self.data_name, t, *idx) for t in steps]
        if self.source is None:
            return (_reduce_blocks, keys, self.kind, self.q)
        return (_reduce_chains, _fusion.chains(self.source, keys), self.kind, self.q)

    def __iter__(self) -> Iterator[tuple]:
        for k in range(len(self.starts) - 1):
            for idx in product(*(range(n) for n in self.spatial)):
                yield (self.name, k, *idx)

    def __len__(self) -> int:
        return (len(self.starts) - 1) * math.prod(self.spatial)


def _grouped_reduce(
    data: da.Array, counts: list[int], kind: str, q: float | None, dtype: type
) -> da.Array:
    """One task per period and spatial block over the period's blocks of single time steps
    (``counts``: time steps per period, 0 for a period without data).

    Where every block of ``data`` is made by tasks of its own (``load`` and element-wise
    operations), each task makes its blocks itself and the graph holds the composite's tasks
    only; otherwise it depends on ``data``'s tasks."""
    name = "composite-" + tokenize(data.name, counts, kind, q)
    fused = _fusion.fusable(data)
    tasks = _PeriodTasks(name, data, counts, kind, q, fused)
    dependencies: list[Any] = [] if fused else [data]
    graph = HighLevelGraph.from_collections(name, tasks, dependencies=dependencies)
    chunks = ((1,) * len(counts), *data.chunks[1:])
    return da.Array(graph, name, chunks=chunks, dtype=dtype, meta=np.empty((0,) * data.ndim, dtype))


def _rechunked_reduce(
    data: da.Array, counts: list[int], kind: str, q: float | None, dtype: type
) -> da.Array:
    """The composite of ``data`` whose blocks hold several time steps: rechunked to periods."""
    sizes = tuple(c for c in counts if c > 0)
    data = data.rechunk({0: sizes}, method="tasks")
    reduced = da.map_blocks(
        _reduce,
        data,
        kind,
        q,
        chunks=((1,) * len(sizes), *data.chunks[1:]),
        dtype=dtype,
        meta=np.empty((0,) * data.ndim, dtype),
    )
    pieces = []
    k = 0
    fill = 0 if kind == "count" else np.nan
    for c in counts:
        if c > 0:
            pieces.append(reduced[k : k + 1])
            k += 1
        else:
            pieces.append(
                da.full((1, *data.shape[1:]), fill, dtype=dtype, chunks=(1, *data.chunks[1:]))
            )
    return da.concatenate(pieces, axis=0) if len(pieces) > 1 else pieces[0]


def _bins(time: pd.DatetimeIndex, freq: str) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """(bin labels from first to last, bin index of every time step)."""
    labels = pd.Series(np.arange(len(time)), index=time).resample(freq).count().index
    idx = np.searchsorted(labels.values, time.values, side="right") - 1
    return labels, idx


def _composite_array(arr: xr.DataArray, freq: str, kind: str, q: float | None) -> xr.DataArray:
    time = pd.DatetimeIndex(arr["time"].values)
    order = np.argsort(time.values, kind="stable")
    if (order != np.arange(len(order))).any():
        arr = arr.isel(time=order)
        time = time[order]
    labels, idx = _bins(time, freq)
    axis = arr.get_axis_num("time")
    data = arr.data
    if not isinstance(data, da.Array):
        data = da.from_array(data, chunks=-1)
    if axis != 0:  # an identity transpose would be a task per block
        data = da.moveaxis(data, axis, 0)
    if not np.issubdtype(data.dtype, np.floating):
        data = data.astype(np.float32)
    counts = np.bincount(idx, minlength=len(labels)).tolist()
    out_dtype = np.int16 if kind == "count" else np.float32
    if all(c == 1 for c in data.chunks[0]):
        result = _grouped_reduce(data, counts, kind, q, out_dtype)
    else:
        result = _rechunked_reduce(data, counts, kind, q, out_dtype)
    if axis != 0:
        result = da.moveaxis(result, 0, axis)
    coords = {k: v for k, v in arr.coords.items() if "time" not in v.dims}
    coords["time"] = labels.values
    return xr.DataArray(result, dims=arr.dims, coords=coords, attrs=dict(arr.attrs), name=arr.name)


def composite(obj: Any, freq: str = "1MS", stat: str | Sequence[str] = "median") -> Any:
    """Temporal composite per ``freq`` period (pandas offset, e.g. "1MS", "QS", "7D").

    ``stat`` is one of median, mean, min, max, count or "qX" (quantile X), or a list of them,
    in which case the results are stacked along a new ``stat`` dimension. NaN is ignored; empty
    periods are NaN (count 0). Works lazily on dask-backed data.
    """
    _validate.data("obj", obj, time=True)
    _validate.frequency("freq", freq)
    if not isinstance(stat, str | Sequence) or (not isinstance(stat, str) and not stat):
        raise InvalidParameterError(
            f"stat={stat!r} is not valid: expected a stat name or a non-empty list of them."
        )
    stats = [stat] if isinstance(stat, str) else list(stat)
    parsed = [_parse_stat(s) for s in stats]
    results = []
    for kind, q in parsed:
        if isinstance(obj, xr.Dataset):
            res: Any = xr.Dataset(
                {
                    name: _composite_array(v, freq, kind, q) if "time" in v.dims else v
                    for name, v in obj.data_vars.items()
                },
                attrs=dict(obj.attrs),
            )
        else:
            res = _composite_array(obj, freq, kind, q)
        results.append(res)
    if len(results) == 1:
        return results[0]
    return xr.concat(results, dim=pd.Index(stats, name="stat"))
