"""Temporal composites checked against numpy's NaN-aware reductions."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import eotoolkit
from eotoolkit.composite import nanquantile_sorted

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
