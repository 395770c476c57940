"""Temporal composites: NaN-aware median, mean, min, max, count and quantiles per period."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

SIMPLE = {"mean", "min", "max", "count", "median"}


def _parse_stat(stat: str) -> tuple[str, float | None]:
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
    raise ValueError(
        f"Unknown composite stat {stat!r}: use one of {sorted(SIMPLE)} or 'qX' with 0 <= X <= 1 "
        f"(e.g. 'q0.9')."
    )


NETWORK_MAX = 16


def _sort_small(data: np.ndarray) -> np.ndarray:
    """Sort a short stack along axis 0 with an odd-even transposition network of elementwise
    min/max (NaN treated as +inf, so it sorts last). Much faster than ``np.sort`` along a
    non-contiguous axis for a few time steps."""
    rows = [np.where(np.isnan(r), np.float32(np.inf), r) for r in data]
    n = len(rows)
    for rnd in range(n):
        for j in range(rnd % 2, n - 1, 2):
            lo = np.minimum(rows[j], rows[j + 1])
            np.maximum(rows[j], rows[j + 1], out=rows[j + 1])
            rows[j] = lo
    return np.stack(rows)


def nanquantile_sorted(block: np.ndarray, q: float, axis: int = 0) -> np.ndarray:
    """NaN-aware quantile (linear interpolation, like ``np.nanquantile``) by sorting along axis.

    Much faster than ``np.nanmedian`` on short stacks: after sorting with NaN last, the valid
    values of each pixel are its first ``n`` entries. Returns the reduced axis with length 1.
    """
    data = np.moveaxis(block.astype(np.float32, copy=False), axis, 0)
    n = np.sum(~np.isnan(data), axis=0, keepdims=True)
    ordered = _sort_small(data) if data.shape[0] <= NETWORK_MAX else np.sort(data, axis=0)
    last = (n - 1).clip(min=0)
    pos = last * np.float32(q)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, last)
    frac = (pos - lo).astype(np.float32)
    vlo = np.take_along_axis(ordered, lo, axis=0)
    vhi = np.take_along_axis(ordered, hi, axis=0)
    with np.errstate(invalid="ignore"):
        out = np.where(frac == 0, vlo, vlo + (vhi - vlo) * frac)
    out = np.where(n == 0, np.float32(np.nan), out)
    return np.moveaxis(out, 0, axis)


def _reduce(block: np.ndarray, kind: str, q: float | None) -> np.ndarray:
    """Reduce a (t, ...) block to (1, ...)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if kind == "median":
            return nanquantile_sorted(block, 0.5)
        if kind == "quantile":
            return nanquantile_sorted(block, float(q or 0.0))
        if kind == "count":
            return np.sum(~np.isnan(block), axis=0, keepdims=True).astype(np.int16)
        data = block.astype(np.float32, copy=False)
        fn: Any = {"mean": np.nanmean, "min": np.nanmin, "max": np.nanmax}[kind]
        return fn(data, axis=0, keepdims=True).astype(np.float32)


def _bins(time: pd.DatetimeIndex, freq: str) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """(bin labels from first to last, bin index of every time step)."""
    labels = pd.Series(np.arange(len(time)), index=time).resample(freq).count().index
    idx = np.searchsorted(labels.values, time.values, side="right") - 1
    return labels, idx


def _composite_array(arr: xr.DataArray, freq: str, kind: str, q: float | None) -> xr.DataArray:
    time = pd.DatetimeIndex(arr["time"].values)
    order = np.argsort(time.values, kind="stable")
    arr = arr.isel(time=order)
    time = time[order]
    labels, idx = _bins(time, freq)
    axis = arr.get_axis_num("time")
    data = arr.data
    if not isinstance(data, da.Array):
        data = da.from_array(data, chunks=-1)
    data = da.moveaxis(data, axis, 0)
    if not np.issubdtype(data.dtype, np.floating):
        data = data.astype(np.float32)
    counts = np.bincount(idx, minlength=len(labels))
    sizes = tuple(int(c) for c in counts if c > 0)
    data = data.rechunk({0: sizes})
    out_dtype = np.int16 if kind == "count" else np.float32
    reduced = data.map_blocks(
        _reduce,
        kind,
        q,
        chunks=((1,) * len(sizes), *data.chunks[1:]),
        dtype=out_dtype,
        meta=np.empty((0,) * data.ndim, out_dtype),
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
                da.full((1, *data.shape[1:]), fill, dtype=out_dtype, chunks=(1, *data.chunks[1:]))
            )
    result = da.concatenate(pieces, axis=0) if len(pieces) > 1 else pieces[0]
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
