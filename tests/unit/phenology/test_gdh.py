"""Growing degree hours: hand-computed cases, day/night switch, laziness."""

from __future__ import annotations

import math

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from eotoolkit.ops.phenology import growing_degree_hours


def _gdh(tmin_c: float, tmax_c: float, dayl_h: float) -> float:
    arr = [xr.DataArray(np.array([v], dtype=np.float64), dims="time") for v in (tmin_c, tmax_c)]
    dayl = xr.DataArray(np.array([dayl_h * 3600.0]), dims="time")
    return float(growing_degree_hours(arr[0], arr[1], dayl)[0])


def test_constant_temperature_is_24_hours_above_base() -> None:
    # 10 degC = 50 F, 19 F above the base on each of the 24 hours.
    assert _gdh(10.0, 10.0, 12.0) == pytest.approx(24 * 19.0)


def test_below_base_all_day_gives_zero() -> None:
    # tmax -5 degC = 23 F < 31 F, and the hourly curve never exceeds tmax.
    assert _gdh(-20.0, -5.0, 14.0) == 0.0


def test_polar_night_uses_tmin_every_hour() -> None:
    # L = 0: c = 0, so every hour sits at tmin = 32 F, 1 F above the base.
    assert _gdh(0.0, 10.0, 0.0) == pytest.approx(24.0)


def test_long_day_above_23_hours_uses_day_form_only() -> None:
    # tmin 0 degC = 32 F, tmax 10 degC = 50 F; floor(23.5) = 23, so no hour is night.
    expected = sum(1.0 + 18.0 * math.sin(math.pi * h / 27.5) for h in range(24))
    assert _gdh(0.0, 10.0, 23.5) == pytest.approx(expected, rel=1e-12)


def test_day_length_23_has_no_night_hour() -> None:
    # floor(23) = 23 and ln(24 - 23) = 0: all hours use the day form.
    expected = sum(1.0 + 18.0 * math.sin(math.pi * h / 27.0) for h in range(24))
    assert _gdh(0.0, 10.0, 23.0) == pytest.approx(expected, rel=1e-12)


def test_last_hour_switches_to_night_form_below_23_hours() -> None:
    # L = 22.5: hours 0..22 day form, hour 23 night form with ln(23 - 22) = 0 -> tmin + c.
    c = 18.0 * math.sin(math.pi * 22.5 / 26.5)
    day = sum(1.0 + 18.0 * math.sin(math.pi * h / 26.5) for h in range(23))
    assert _gdh(0.0, 10.0, 22.5) == pytest.approx(day + 1.0 + c, rel=1e-12)


def test_two_night_hours_follow_log_decay() -> None:
    # L = 21.5: floor 21, hours 22 and 23 at night: ln(1) and ln(2) over ln(2.5).
    c = 18.0 * math.sin(math.pi * 21.5 / 25.5)
    day = sum(1.0 + 18.0 * math.sin(math.pi * h / 25.5) for h in range(22))
    night = (1.0 + c) + (1.0 + c * (1.0 - math.log(2.0) / math.log(2.5)))
    assert _gdh(0.0, 10.0, 21.5) == pytest.approx(day + night, rel=1e-12)


def test_nan_input_gives_nan() -> None:
    assert math.isnan(_gdh(math.nan, 10.0, 12.0))


def test_dask_input_stays_lazy_and_matches_numpy() -> None:
    rng = np.random.default_rng(3)
    tmin = rng.uniform(-10, 20, (30, 4, 5)).astype(np.float32)
    tmax = tmin + rng.uniform(0, 15, tmin.shape).astype(np.float32)
    dayl = rng.uniform(0, 86400, tmin.shape).astype(np.float32)
    dims = ("time", "y", "x")
    eager = growing_degree_hours(*(xr.DataArray(a, dims=dims) for a in (tmin, tmax, dayl)))
    lazy = growing_degree_hours(
        *(xr.DataArray(da.from_array(a, chunks=(10, 2, 5)), dims=dims) for a in (tmin, tmax, dayl))
    )
    assert isinstance(lazy.data, da.Array)
    np.testing.assert_array_equal(lazy.values, eager.values)
