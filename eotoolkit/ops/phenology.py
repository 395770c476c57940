"""Extended spring indices (SI-x, Schwartz) from daily tmin, tmax and day length.

The model follows the SI-x implementation used in HPC summer-school material:

* temperatures are converted to degrees Fahrenheit and day length to hours;
* hourly temperatures are reconstructed from tmin/tmax with a sine curve during the day and a
  logarithmic decay during the night, and summed into growing degree hours (GDH, base 31 F);
* leaf predictors (MDS0, SYNOP, DDE2, DD57) drive a linear first-leaf model per plant;
* accumulated GDH after first leaf drives a linear first-bloom model per plant.

Resolved ambiguities (each reading is the one of the array-based summer-school code):

* Day of year is positional: element ``i`` of the time axis is day of year ``i + 1`` (Daymet
  has 365 days per year; in leap years December 31 is dropped). Days ``start_doy`` through
  ``end_doy`` (both inclusive) are kept.
* Day of year counts from January 1, not from ``start_doy``: the first kept day has day of year
  ``start_doy`` and MDS0 ``start_doy - 1``. Outputs are days of year on the same scale.
* SYNOP on day ``t`` includes day ``t`` itself (running count up to and including ``t``).
* The Arnold Red +1 day is part of its reported first leaf, and that reported date is the one
  its bloom model counts from. Each plant's bloom model uses that plant's own first leaf.
* "Cumulative GDH after first leaf" excludes the first-leaf day: on the first-leaf day both
  MDS0 and AGDH are 0, on the next day AGDH is that day's GDH, and so on. Only kept days count.
* The ``mean`` layer is the mean over the plants rounded to the nearest day (a mean of three
  whole days never ends in .5, so the rounding rule does not matter). It is NaN wherever any
  plant is NaN.
* Missing input values (NaN) give NaN GDH for that day. A pixel without data (as Daymet's
  no-data pixels) gives NaN outputs; a single missing day cannot trigger a threshold and makes
  AGDH, hence first bloom, NaN from that day on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

__all__ = [
    "BLOOM_COEFFICIENTS",
    "LEAF_COEFFICIENTS",
    "growing_degree_hours",
    "spring_index",
    "spring_index_numpy",
]

BASE_TEMPERATURE_F = 31.0
THRESHOLD = 999.5
SYNOP_THRESHOLD = 637.0
PAD_DAYS = 7

#: First-leaf coefficients (MDS0, SYNOP, DDE2, DD57) per plant.
LEAF_COEFFICIENTS: dict[str, tuple[float, float, float, float]] = {
    "lilac": (3.306, 13.878, 0.201, 0.153),
    "arnold_red": (4.266, 20.899, 0.000, 0.248),
    "zabelli": (2.802, 21.433, 0.266, 0.000),
}
#: First-bloom coefficients (MDS0, AGDH) per plant.
BLOOM_COEFFICIENTS: dict[str, tuple[float, float]] = {
    "lilac": (-23.934, 0.116),
    "arnold_red": (-24.825, 0.127),
    "zabelli": (-11.368, 0.096),
}
#: Days added to the first-leaf date of a plant.
LEAF_OFFSET_DAYS: dict[str, int] = {"lilac": 0, "arnold_red": 1, "zabelli": 0}

DEFAULT_PLANTS = ("lilac", "arnold_red", "zabelli")


def _gdh_kernel(tmin_c: np.ndarray, tmax_c: np.ndarray, dayl_s: np.ndarray) -> np.ndarray:
    """Growing degree hours (float64) from degC and seconds, element-wise.

    Loops over the 24 hours with whole-array operations, so memory stays at a few arrays of
    the input's shape. Day hours (h <= floor(L)) use ``sin(h * theta)``, theta = pi / (L + 4),
    advanced by the recurrence sin((h + 1) theta) = 2 cos(theta) sin(h theta) - sin((h - 1)
    theta). Night hours h = floor(L) + k, k >= 1, have ``ln(h - floor(L)) = ln(k)``, a scalar
    per loop step. For finite inputs the night form is finite exactly on those hours (it is
    never finite for h <= floor(L), and L >= 23 leaves no night hour), so splitting the hours
    by floor(L) equals taking the night form wherever it is finite.
    """
    tmin = np.asarray(tmin_c, dtype=np.float64) * 1.8 + 32.0
    dt = np.asarray(tmax_c, dtype=np.float64) * 1.8 + 32.0 - tmin
    hours = np.asarray(dayl_s, dtype=np.float64) / 3600.0
    tmin, dt, hours = np.broadcast_arrays(tmin, dt, hours)
    floor_hours = np.floor(hours)
    theta = np.pi / (hours + 4.0)
    excess = tmin - BASE_TEMPERATURE_F
    gdh = np.zeros(tmin.shape, dtype=np.float64)
    if gdh.size == 0:
        return gdh
    value = np.empty_like(gdh)
    mask = np.empty(gdh.shape, dtype=bool)

    # Day form, h = 0 .. min(23, max floor(L)); sin_prev and sin_h hold sin((h - 1) theta)
    # and sin(h theta).
    two_cos = 2.0 * np.cos(theta)
    sin_prev = -np.sin(theta)
    sin_h = np.zeros_like(gdh)
    finite = np.isfinite(floor_hours)
    last_day_hour = int(min(23.0, floor_hours[finite].max())) if finite.any() else 23
    for h in range(last_day_hour + 1):
        np.multiply(dt, sin_h, out=value)
        value += excess
        np.maximum(value, 0.0, out=value)
        np.greater_equal(floor_hours, h, out=mask)
        np.add(gdh, value, out=gdh, where=mask)
        np.multiply(two_cos, sin_h, out=value)
        np.subtract(value, sin_prev, out=sin_prev)
        sin_prev, sin_h = sin_h, sin_prev
    del sin_prev, sin_h, two_cos

    # Night form, h = floor(L) + k for k = 1 .. 23 - min floor(L).
    with np.errstate(all="ignore"):
        c = dt * np.sin(np.pi * hours / (hours + 4.0))
        night_excess = excess + c
        slope = c / np.log(24.0 - hours)
    first_night = int(floor_hours[finite].min()) if finite.any() else 23
    for k in range(1, 24 - max(first_night, 0)):
        with np.errstate(all="ignore"):
            np.multiply(slope, np.log(k), out=value)
            np.subtract(night_excess, value, out=value)
            np.maximum(value, 0.0, out=value)
        np.less_equal(floor_hours, 23 - k, out=mask)
        np.add(gdh, value, out=gdh, where=mask)

    missing = np.isnan(tmin) | np.isnan(dt) | np.isnan(hours)
    gdh[missing] = np.nan
    return gdh


def growing_degree_hours(
    tmin: xr.DataArray, tmax: xr.DataArray, dayl: xr.DataArray
) -> xr.DataArray:
    """Daily growing degree hours (base 31 F) from tmin/tmax (degC) and day length (s).

    Hourly temperatures for h = 0..23 follow ``tmin + dt * sin(pi * h / (L + 4))`` by day and
    ``tmin + c * (1 - ln(h - floor(L)) / ln(24 - L))`` at night (h > floor(L), where finite),
    with temperatures in F, ``dt = tmax - tmin``, ``L`` the day length in hours and
    ``c = dt * sin(pi * L / (L + 4))``. Lazy (dask) inputs give a lazy result.
    """
    out = xr.apply_ufunc(
        _gdh_kernel,
        tmin,
        tmax,
        dayl,
        dask="parallelized",
        output_dtypes=[np.float64],
    )
    out.name = "gdh"
    out.attrs = {"long_name": "growing degree hours (base 31 F)", "units": "degF h"}
    return out


def _first_exceedance(score: np.ndarray, doy: np.ndarray) -> np.ndarray:
    """Day of year of the first ``score > THRESHOLD`` along the last axis, NaN if none."""
    above = score > THRESHOLD
    first = np.argmax(above, axis=-1)
    return np.where(above.any(axis=-1), doy[first], np.nan)


def _leaf_predictors(
    gdh: np.ndarray, doy: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MDS0, SYNOP, DDE2 and DD57 for GDH with time on the last axis."""
    n = gdh.shape[-1]
    pad = np.repeat(gdh[..., :1], PAD_DAYS, axis=-1)
    padded = np.concatenate([pad, gdh], axis=-1)
    # Day t sits at padded index t + PAD_DAYS.
    dde2 = padded[..., 5 : n + 5] + padded[..., 6 : n + 6] + padded[..., 7 : n + 7]
    dd57 = padded[..., 0:n] + padded[..., 1 : n + 1] + padded[..., 2 : n + 2]
    synop = np.cumsum(dde2 >= SYNOP_THRESHOLD, axis=-1, dtype=np.float32)
    mds0 = doy - 1.0
    return mds0, synop, dde2, dd57


def _spring_index_block(
    tmin: np.ndarray,
    tmax: np.ndarray,
    dayl: np.ndarray,
    plants: Sequence[str],
    start_doy: int,
) -> tuple[np.ndarray, np.ndarray]:
    """SI-x for 2-D (pixel, time) arrays; returns (pixel, plant) leaf and bloom arrays."""
    gdh = _gdh_kernel(tmin, tmax, dayl)
    n = gdh.shape[-1]
    doy = np.arange(start_doy, start_doy + n, dtype=np.float64)
    mds0, synop, dde2, dd57 = _leaf_predictors(gdh, doy)
    csum = np.cumsum(gdh, axis=-1)
    del gdh
    index = np.arange(n)
    score = np.empty_like(csum)
    term = np.empty_like(csum)
    leaves, blooms = [], []
    for plant in plants:
        a, b, c, d = LEAF_COEFFICIENTS[plant]
        np.multiply(synop, b, out=score)
        score += mds0 * a
        score += np.multiply(dde2, c, out=term)
        score += np.multiply(dd57, d, out=term)
        leaf = _first_exceedance(score, doy) + LEAF_OFFSET_DAYS[plant]
        leaves.append(leaf)

        # Position of the first-leaf day on the kept time axis; AGDH sums days strictly after.
        leaf_pos = np.where(np.isnan(leaf), n, leaf - start_doy)[:, None]
        at_leaf = np.take_along_axis(csum, np.clip(leaf_pos, 0, n - 1).astype(np.intp), axis=-1)
        np.subtract(csum, at_leaf, out=term)
        term[~(index > leaf_pos)] = 0.0
        e, f = BLOOM_COEFFICIENTS[plant]
        term *= f
        np.maximum(np.floor(doy - leaf[:, None]), 0.0, out=score)
        score *= e
        score += term
        blooms.append(_first_exceedance(score, doy))
    return np.stack(leaves, axis=-1), np.stack(blooms, axis=-1)


def spring_index_numpy(
    tmin: np.ndarray,
    tmax: np.ndarray,
    dayl: np.ndarray,
    *,
    plants: Sequence[str] = DEFAULT_PLANTS,
    start_doy: int = 1,
    batch_pixels: int = 2048,
) -> tuple[np.ndarray, np.ndarray]:
    """SI-x first leaf and first bloom for numpy arrays with the kept days on the last axis.

    Returns two float32 arrays of shape ``(..., len(plants) + 1)`` holding days of year per
    plant and their rounded mean (last layer); the first element of the time axis is day of
    year ``start_doy``. Pixels are processed in batches of ``batch_pixels`` to bound memory.
    """
    tmin, tmax, dayl = np.broadcast_arrays(tmin, tmax, dayl)
    lead, n = tmin.shape[:-1], tmin.shape[-1]
    flat = [np.reshape(a, (-1, n)) for a in (tmin, tmax, dayl)]
    npix = flat[0].shape[0]
    leaf = np.full((npix, len(plants) + 1), np.nan, dtype=np.float32)
    bloom = leaf.copy()
    for lo in range(0, npix, batch_pixels):
        sl = slice(lo, lo + batch_pixels)
        lf, bl = _spring_index_block(flat[0][sl], flat[1][sl], flat[2][sl], plants, start_doy)
        leaf[sl, :-1] = lf
        bloom[sl, :-1] = bl
        leaf[sl, -1] = np.round(lf.mean(axis=-1))
        bloom[sl, -1] = np.round(bl.mean(axis=-1))
    return leaf.reshape(*lead, -1), bloom.reshape(*lead, -1)


def _check_time_axis(da: xr.DataArray, end_doy: int) -> None:
    """Raise if ``da`` does not hold one year of daily data starting on January 1."""
    if "time" not in da.dims:
        raise ValueError(f"{da.name!r} has no 'time' dimension")
    if da.sizes["time"] < end_doy:
        raise ValueError(f"time axis has {da.sizes['time']} days, fewer than end_doy={end_doy}")
    time = da["time"] if "time" in da.coords else None
    if time is not None and np.issubdtype(time.dtype, np.datetime64):
        years = np.unique(time.dt.year.values)
        if len(years) != 1 or int(time.dt.dayofyear.values[0]) != 1:
            raise ValueError("time axis must cover a single year starting on January 1")


def _check_same_grid(inputs: dict[str, xr.DataArray]) -> None:
    """Raise InvalidParameterError naming the first input whose dimensions or coordinates
    differ from ``tmin``'s (the model combines the three pixel by pixel and day by day)."""
    from ..errors import InvalidParameterError

    (first, ref), *others = inputs.items()
    for name, other in others:
        if set(other.dims) != set(ref.dims):
            raise InvalidParameterError(
                f"{name} has dimensions {tuple(other.dims)} and {first} {tuple(ref.dims)}: "
                "give all three on the same (time, y, x) grid."
            )
        for dim in ref.dims:
            same_size = other.sizes[dim] == ref.sizes[dim]
            if same_size and (dim not in ref.indexes or dim not in other.indexes):
                continue
            if same_size and ref.indexes[dim].equals(other.indexes[dim]):
                continue
            raise InvalidParameterError(
                f"{name} and {first} are not on the same grid: their {dim!r} coordinates "
                f"differ ({other.sizes[dim]} and {ref.sizes[dim]} values). Resample or select "
                "them onto one grid first (e.g. eotoolkit.resample, or .sel/.interp_like)."
            )


def spring_index(
    tmin: xr.DataArray,
    tmax: xr.DataArray,
    dayl: xr.DataArray,
    *,
    plants: Sequence[str] = DEFAULT_PLANTS,
    start_doy: int = 1,
    end_doy: int = 300,
) -> xr.Dataset:
    """Extended spring indices: first leaf and first bloom (day of year) per plant and mean.

    Inputs are (time, y, x) DataArrays of one year of daily tmin/tmax (degC) and day length
    (s); the time axis is positional (element 0 is January 1). Days ``start_doy`` to
    ``end_doy`` (inclusive) are used and outputs are days of year counted from January 1;
    NaN marks thresholds never reached. Dask inputs are processed block-wise with the time
    axis in one chunk. See the module docstring for the resolved ambiguities.
    """
    from .. import _validate
    from ..errors import InvalidParameterError

    for pname, value in (("tmin", tmin), ("tmax", tmax), ("dayl", dayl)):
        if not isinstance(value, xr.DataArray):
            raise _validate.invalid(pname, value, "an xarray DataArray (time, y, x)")
    if isinstance(plants, str) or not isinstance(plants, Sequence):
        raise _validate.invalid("plants", plants, f"a list of names from {list(LEAF_COEFFICIENTS)}")
    unknown = [p for p in plants if p not in LEAF_COEFFICIENTS]
    if unknown or not plants:
        raise _validate.invalid(
            "plants",
            plants,
            f"a non-empty list of names from {list(LEAF_COEFFICIENTS)}",
            f"Remove the unknown plants {unknown}.",
        )
    _validate.integer("start_doy", start_doy, minimum=1, maximum=366)
    _validate.integer("end_doy", end_doy, minimum=1, maximum=366)
    if start_doy > end_doy:
        raise _validate.invalid(
            "start_doy", start_doy, f"a day of year <= end_doy={end_doy}", "Swap the two."
        )
    for pname, da in (("tmin", tmin), ("tmax", tmax), ("dayl", dayl)):
        try:
            _check_time_axis(da, end_doy)
        except ValueError as exc:
            raise InvalidParameterError(f"{pname} is not valid: {exc}.") from None
    window = slice(start_doy - 1, end_doy)
    inputs = [da.isel(time=window) for da in (tmin, tmax, dayl)]
    _check_same_grid(dict(zip(("tmin", "tmax", "dayl"), inputs, strict=True)))
    if any(da.chunks is not None for da in inputs):
        inputs = [da.chunk({"time": -1}) for da in inputs]
    names = [*plants, "mean"]
    leaf, bloom = xr.apply_ufunc(
        spring_index_numpy,
        *inputs,
        input_core_dims=[["time"]] * 3,
        output_core_dims=[["plant"], ["plant"]],
        kwargs={"plants": tuple(plants), "start_doy": start_doy},
        dask="parallelized",
        output_dtypes=[np.float32, np.float32],
        dask_gufunc_kwargs={"output_sizes": {"plant": len(names)}},
    )
    dims = ("plant", *[d for d in tmin.dims if d != "time"])
    ds = xr.Dataset(
        {
            "first_leaf": leaf.transpose(*dims),
            "first_bloom": bloom.transpose(*dims),
        }
    ).assign_coords(plant=names)
    for name, label in (("first_leaf", "first leaf"), ("first_bloom", "first bloom")):
        ds[name].attrs = {"long_name": f"SI-x {label} date", "units": "day of year"}
    ds.attrs = {"start_doy": start_doy, "end_doy": end_doy, "model": "SI-x (Schwartz)"}
    return ds
