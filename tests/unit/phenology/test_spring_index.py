"""SI-x spring index: hand-computed pixels, naive reference implementation, dask blocks."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from eotoolkit.ops.phenology import spring_index

from .naive import gdh_day, spring_index_pixel

PLANTS = ["lilac", "arnold_red", "zabelli", "mean"]
DIMS = ("time", "y", "x")


def _constant(value: float, n: int = 365) -> xr.DataArray:
    return xr.DataArray(np.full((n, 1, 1), value, dtype=np.float64), dims=DIMS)


def _pixel(ds: xr.Dataset, var: str) -> dict[str, float]:
    return {p: float(ds[var].sel(plant=p)[0, 0]) for p in PLANTS}


def _assert_days(got: dict[str, float], expected: dict[str, float]) -> None:
    assert set(got) == set(expected)
    for plant, value in expected.items():
        if math.isnan(value):
            assert math.isnan(got[plant]), plant
        else:
            assert got[plant] == value, plant


def test_frozen_pixel_never_reaches_thresholds() -> None:
    # GDH = 0 every day; only Arnold Red's MDS0 term reaches 999.5:
    # 4.266 * 234 = 998.2, 4.266 * 235 = 1002.5 -> MDS0 235 -> DOY 236, +1 day -> 237.
    ds = spring_index(_constant(-20.0), _constant(-5.0), _constant(12 * 3600.0))
    nan = math.nan
    _assert_days(
        _pixel(ds, "first_leaf"), {"lilac": nan, "arnold_red": 237.0, "zabelli": nan, "mean": nan}
    )
    _assert_days(_pixel(ds, "first_bloom"), dict.fromkeys(PLANTS, nan))


def _hot_pixel(start_doy: int) -> xr.Dataset:
    # 91 F all day: GDH = 24 * (91 - 31) = 1440 every day; DDE2 = DD57 = 4320 from day one.
    celsius = (91.0 - 32.0) / 1.8
    return spring_index(
        _constant(celsius), _constant(celsius), _constant(12 * 3600.0), start_doy=start_doy
    )


def test_hot_pixel_leafs_on_first_eligible_day() -> None:
    # Day one: lilac 13.878 + 0.201*4320 + 0.153*4320 = 1543 > 999.5; zabelli 21.433 +
    # 0.266*4320 = 1170.6; Arnold Red 20.899 + 0.248*4320 = 1092.3 (+1 day).
    # Bloom (AGDH excludes the leaf day): lilac (d-1)*(0.116*1440 - 23.934) = (d-1)*143.106
    # first > 999.5 at d-1 = 7; zabelli (d-1)*126.872 at d-1 = 8; Arnold Red
    # (d-2)*158.055 at d-2 = 7.
    ds = _hot_pixel(1)
    _assert_days(
        _pixel(ds, "first_leaf"), {"lilac": 1.0, "arnold_red": 2.0, "zabelli": 1.0, "mean": 1.0}
    )
    _assert_days(
        _pixel(ds, "first_bloom"), {"lilac": 8.0, "arnold_red": 9.0, "zabelli": 9.0, "mean": 9.0}
    )


def test_start_doy_offsets_days_of_year() -> None:
    # Same pixel kept from DOY 10: MDS0 = 9 on the first kept day; outputs count from Jan 1.
    ds = _hot_pixel(10)
    _assert_days(
        _pixel(ds, "first_leaf"),
        {"lilac": 10.0, "arnold_red": 11.0, "zabelli": 10.0, "mean": 10.0},
    )
    _assert_days(
        _pixel(ds, "first_bloom"),
        {"lilac": 17.0, "arnold_red": 18.0, "zabelli": 18.0, "mean": 18.0},
    )


def test_missing_pixel_gives_nan() -> None:
    nan = _constant(math.nan)
    ds = spring_index(nan, nan, nan)
    assert bool(ds.first_leaf.isnull().all()) and bool(ds.first_bloom.isnull().all())


def _synthetic_inputs(seed: int, ny: int = 3, nx: int = 4) -> tuple[xr.DataArray, ...]:
    """Seasonal temperatures with noise; the first row has random day lengths in [0, 24] h."""
    rng = np.random.default_rng(seed)
    doy = np.arange(1, 366)
    offset = rng.uniform(-6.0, 6.0, (1, ny, nx))
    tmean = 10.0 - 14.0 * np.cos(2 * np.pi * (doy - 15) / 365)[:, None, None] + offset
    tmean = tmean + rng.normal(0.0, 3.0, (365, ny, nx))
    spread = rng.uniform(2.0, 16.0, (365, ny, nx))
    dayl_h = 12.0 + 3.5 * np.sin(2 * np.pi * (doy - 80) / 365)[:, None, None] * np.ones((ny, nx))
    dayl_h[:, 0, :] = rng.uniform(0.0, 24.0, (365, nx))
    dayl_h[:5, 0, 0] = [23.0, 22.5, 23.99, 22.0, 0.0]
    time = pd.date_range("2021-01-01T12:00", periods=365, freq="D")
    return tuple(
        xr.DataArray(a.astype(np.float32), dims=DIMS, coords={"time": time})
        for a in (tmean - spread / 2, tmean + spread / 2, dayl_h * 3600.0)
    )


@pytest.mark.parametrize(("seed", "start", "end"), [(0, 1, 300), (1, 1, 300), (2, 45, 250)])
def test_matches_naive_loop_implementation(seed: int, start: int, end: int) -> None:
    tmin, tmax, dayl = _synthetic_inputs(seed)
    ds = spring_index(tmin, tmax, dayl, start_doy=start, end_doy=end)
    finite = 0
    for iy in range(tmin.sizes["y"]):
        for ix in range(tmin.sizes["x"]):
            series = [a.values[:, iy, ix].astype(float).tolist() for a in (tmin, tmax, dayl)]
            leaf, bloom = spring_index_pixel(*series, start, end)
            for var, expected in (("first_leaf", leaf), ("first_bloom", bloom)):
                got = {p: float(ds[var].sel(plant=p)[iy, ix]) for p in PLANTS}
                _assert_days(got, expected)
            finite += not math.isnan(bloom["mean"])
    assert finite >= 6  # most pixels of the seasonal cycle leaf and bloom


def test_gdh_matches_naive_within_float32_rounding() -> None:
    from eotoolkit.ops.phenology import growing_degree_hours

    tmin, tmax, dayl = _synthetic_inputs(5)
    gdh = growing_degree_hours(tmin, tmax, dayl).values
    for t in range(0, 365, 7):
        for iy in range(3):
            for ix in range(4):
                args = (float(a.values[t, iy, ix]) for a in (tmin, tmax, dayl))
                assert gdh[t, iy, ix] == pytest.approx(gdh_day(*args), rel=1e-6, abs=1e-4)


def test_dask_chunks_equal_numpy() -> None:
    tmin, tmax, dayl = _synthetic_inputs(7, ny=5, nx=7)
    eager = spring_index(tmin, tmax, dayl)
    lazy = spring_index(*(a.chunk({"time": 100, "y": 2, "x": 3}) for a in (tmin, tmax, dayl)))
    assert lazy.first_leaf.chunks is not None
    assert lazy.first_leaf.chunks[1] == (2, 2, 1)
    xr.testing.assert_identical(lazy.compute(), eager)


def test_output_layout() -> None:
    tmin, tmax, dayl = _synthetic_inputs(0)
    tmin = tmin.assign_coords(y=[3.0, 2.0, 1.0], x=[0.0, 1.0, 2.0, 3.0])
    ds = spring_index(tmin, tmax, dayl, plants=("zabelli", "lilac"))
    assert list(ds.plant.values) == ["zabelli", "lilac", "mean"]
    assert ds.first_leaf.dims == ("plant", "y", "x")
    assert ds.first_bloom.dtype == np.float32
    np.testing.assert_array_equal(ds.y.values, [3.0, 2.0, 1.0])
    mean = np.round(ds.first_leaf.sel(plant=["zabelli", "lilac"]).mean("plant"))
    np.testing.assert_array_equal(ds.first_leaf.sel(plant="mean").values, mean.values)


def test_rejects_bad_arguments() -> None:
    tmin, tmax, dayl = _synthetic_inputs(0)
    with pytest.raises(ValueError, match="unknown plants"):
        spring_index(tmin, tmax, dayl, plants=("oak",))
    with pytest.raises(ValueError, match="start_doy"):
        spring_index(tmin, tmax, dayl, start_doy=200, end_doy=100)
    with pytest.raises(ValueError, match="fewer than end_doy"):
        spring_index(tmin[:100], tmax[:100], dayl[:100])
    two_years = xr.concat(
        [tmin, tmin.assign_coords(time=tmin.time + np.timedelta64(365, "D"))], "time"
    )
    with pytest.raises(ValueError, match="single year"):
        spring_index(two_years, two_years, two_years)


def test_inputs_on_different_grids_are_named() -> None:
    from eotoolkit.errors import InvalidParameterError

    tmin, tmax, dayl = _synthetic_inputs(0)
    x = [0.0, 1.0, 2.0, 3.0]
    tmin = tmin.assign_coords(x=x)
    shifted = tmax.assign_coords(x=[v + 0.5 for v in x])
    with pytest.raises(InvalidParameterError, match=r"tmax and tmin .* 'x' coordinates differ"):
        spring_index(tmin, shifted, dayl.assign_coords(x=x))
    with pytest.raises(InvalidParameterError, match=r"dayl and tmin .* 'y' coordinates differ"):
        spring_index(tmin, tmax.assign_coords(x=x), dayl.isel(y=slice(0, 2)).assign_coords(x=x))
    with pytest.raises(InvalidParameterError, match="dayl has dimensions"):
        spring_index(tmin, tmax, dayl.isel(x=0))
