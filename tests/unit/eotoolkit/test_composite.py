"""Temporal composites checked against numpy's NaN-aware reductions."""

from __future__ import annotations

import warnings

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import eotoolkit
from eotoolkit.ops.temporal import nanquantile_sorted

TIMES = pd.to_datetime(
    ["2024-01-03", "2024-01-15", "2024-01-28", "2024-03-02", "2024-03-20", "2024-03-30"]
)


def _stack(seed: int = 0) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    data = rng.random((6, 20, 30)).astype(np.float32)
    data[rng.random(data.shape) < 0.35] = np.nan
    data[0:3, 0, 0] = np.nan  # a pixel with no valid value in January
    return xr.DataArray(
        da.from_array(data, chunks=(2, 10, 15)),
        dims=("time", "y", "x"),
        coords={"time": TIMES, "y": np.arange(20.0), "x": np.arange(30.0)},
        name="ndvi",
    )


@pytest.mark.parametrize("q", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_sorted_quantile_matches_numpy(q: float) -> None:
    data = _stack().values
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        expected = np.nanquantile(data, q, axis=0)
    np.testing.assert_allclose(nanquantile_sorted(data, q)[0], expected, rtol=1e-6)


def test_monthly_median_with_empty_month() -> None:
    arr = _stack()
    out = eotoolkit.composite(arr, freq="1MS", stat="median")
    assert isinstance(out.data, da.Array)
    assert list(pd.DatetimeIndex(out.time.values).month) == [1, 2, 3]
    values = out.values
    raw = arr.values
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        jan = np.nanmedian(raw[0:3], axis=0)
        mar = np.nanmedian(raw[3:6], axis=0)
    np.testing.assert_allclose(values[0], jan, rtol=1e-6)
    np.testing.assert_allclose(values[2], mar, rtol=1e-6)
    assert np.isnan(values[1]).all() and np.isnan(values[0, 0, 0])


def test_stats_list_on_dataset() -> None:
    ds = xr.Dataset({"ndvi": _stack(), "evi": _stack(1)})
    out = eotoolkit.composite(ds, freq="1MS", stat=["mean", "min", "max", "count", "q0.9"])
    assert list(out.stat.values) == ["mean", "min", "max", "count", "q0.9"]
    raw = ds.evi.values[3:6]
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        np.testing.assert_allclose(
            out.evi.sel(stat="mean").values[2], np.nanmean(raw, 0), rtol=1e-6
        )
        np.testing.assert_allclose(out.evi.sel(stat="min").values[2], np.nanmin(raw, 0))
        np.testing.assert_allclose(out.evi.sel(stat="max").values[2], np.nanmax(raw, 0))
        np.testing.assert_allclose(
            out.evi.sel(stat="q0.9").values[2], np.nanquantile(raw, 0.9, 0), rtol=1e-6
        )
    np.testing.assert_array_equal(out.evi.sel(stat="count").values[2], (~np.isnan(raw)).sum(0))


def test_unknown_stat() -> None:
    with pytest.raises(ValueError, match=r"q0\.9"):
        eotoolkit.composite(_stack(), stat="mode")


def _random_stack(t: int, seed: int, nan_fraction: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = (rng.random((t, 17, 23)) - 0.3).astype(np.float32)
    data[rng.random(data.shape) < nan_fraction] = np.nan
    data[:, 0, 0] = np.nan  # a pixel without any valid value
    return data


@pytest.mark.parametrize("t", range(1, 16))
@pytest.mark.parametrize("nan_fraction", [0.0, 0.4])
def test_sorted_median_is_bit_identical_to_numpy(t: int, nan_fraction: float) -> None:
    data = _random_stack(t, t, nan_fraction)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.nanmedian(data, axis=0)
    got = nanquantile_sorted(data, 0.5, median=True)
    assert got.shape == (1, 17, 23) and got.dtype == np.float32
    np.testing.assert_array_equal(got[0], expected)


@pytest.mark.parametrize("t", [1, 2, 3, 4, 7, 15, 20])
@pytest.mark.parametrize("q", [0.0, 0.1, 0.25, 0.5, 0.9, 1.0])
def test_sorted_quantile_is_bit_identical_to_numpy(t: int, q: float) -> None:
    data = _random_stack(t, 100 + t, 0.3)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.nanquantile(data, q, axis=0)
    np.testing.assert_array_equal(nanquantile_sorted(data, q, median=False)[0], expected)


def test_sorted_quantile_other_axis_and_input_untouched() -> None:
    data = _random_stack(5, 7, 0.3)
    moved = np.ascontiguousarray(np.moveaxis(data, 0, 2))
    before = moved.copy()
    got = nanquantile_sorted(moved, 0.25, axis=2)
    assert got.shape == (17, 23, 1)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        np.testing.assert_array_equal(got[..., 0], np.nanquantile(data, 0.25, axis=0))
    np.testing.assert_array_equal(moved, before)


def test_monthly_median_single_value_is_returned_as_is() -> None:
    arr = _stack().isel(time=[0, 3])
    out = eotoolkit.composite(arr, freq="1MS", stat="median").values
    np.testing.assert_array_equal(out[0], arr.values[0])
    np.testing.assert_array_equal(out[2], arr.values[1])


@pytest.mark.parametrize("stat", ["median", "q0.25", "mean", "min", "max", "count"])
def test_single_step_chunks_give_the_same_result_as_larger_chunks(stat: str) -> None:
    arr = _stack(3)
    single = eotoolkit.composite(arr.chunk({"time": 1}), freq="1MS", stat=stat)
    larger = eotoolkit.composite(arr.chunk({"time": 4}), freq="1MS", stat=stat)
    assert single.data.chunks == larger.data.chunks
    assert any(k.startswith("composite-") for k in single.data.dask.layers)
    np.testing.assert_array_equal(single.values, larger.values)


def test_unsorted_times_are_sorted_before_grouping() -> None:
    arr = _stack(4).chunk({"time": 1})
    shuffled = arr.isel(time=[3, 0, 5, 1, 4, 2])
    np.testing.assert_array_equal(
        eotoolkit.composite(shuffled, stat="median").values,
        eotoolkit.composite(arr, stat="median").values,
    )
