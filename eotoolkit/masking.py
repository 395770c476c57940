"""Cloud masking: Sentinel-2 scene classification (SCL) and Landsat QA_PIXEL bits."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import xarray as xr

from .errors import BandNotFoundError

#: SCL classes masked by default: no data, saturated, cloud shadow, cloud medium/high, cirrus.
S2_SCL_MASKED = (0, 1, 3, 8, 9, 10)
#: Landsat Collection 2 QA_PIXEL bit numbers.
LANDSAT_QA_BITS = {
    "fill": 0,
    "dilated_cloud": 1,
    "cirrus": 2,
    "cloud": 3,
    "cloud_shadow": 4,
    "snow": 5,
}


def _find(ds: xr.Dataset, name: str) -> str:
    if name in ds.data_vars:
        return name
    lower = {str(k).lower(): str(k) for k in ds.data_vars}
    if name.lower() in lower:
        return lower[name.lower()]
    raise BandNotFoundError(
        f"Mask band {name!r} not in the dataset (variables: {list(ds.data_vars)}). Load it "
        f"with bands=[..., {name!r}] or pass its name."
    )


def _set_nan(values: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """``values`` with NaN where ``bad``; integers become float32."""
    if np.issubdtype(values.dtype, np.floating):
        return np.where(bad, np.asarray(np.nan, values.dtype), values)
    out = values.astype(np.float32)
    np.copyto(out, np.float32(np.nan), where=bad)
    return out


def _apply(ds: xr.Dataset, bad: xr.DataArray, mask_var: str, keep: bool) -> xr.Dataset:
    out: dict[Any, xr.DataArray] = {}
    for name, var in ds.data_vars.items():
        if name == mask_var:
            if keep:
                out[name] = var
            continue
        if not {"y", "x"} <= set(var.dims):
            out[name] = var
            continue
        dtype = var.dtype if np.issubdtype(var.dtype, np.floating) else np.dtype(np.float32)
        masked = xr.apply_ufunc(
            _set_nan, var, bad, dask="parallelized", output_dtypes=[dtype], keep_attrs=False
        )
        masked = masked.transpose(*var.dims, ...)
        masked.attrs = dict(var.attrs)
        masked.attrs.pop("nodata", None)
        out[name] = masked.rename(name)
    return xr.Dataset(out, coords=ds.coords, attrs=dict(ds.attrs))


#: Up to this many classes are tested by comparisons, more with a lookup table.
_COMPARE_MAX = 8


def _in_classes(values: np.ndarray, classes: tuple[int, ...], lut: np.ndarray) -> np.ndarray:
    """True where ``values`` is one of ``classes``, by comparisons or by ``lut``."""
    if len(classes) > _COMPARE_MAX:
        return np.take(lut, values)
    out = np.zeros(values.shape, bool)
    for c in classes:
        out |= values == c
    return out


def class_mask(var: xr.DataArray, classes: Iterable[int]) -> xr.DataArray:
    """Boolean array: True where ``var`` is one of ``classes`` (comparisons or a lookup table
    for 8/16-bit)."""
    if var.dtype not in (np.uint8, np.uint16):
        return var.isin(list(classes))
    lut = np.zeros(np.iinfo(var.dtype).max + 1, bool)
    valid = tuple(sorted({int(c) for c in classes if 0 <= c < lut.size}))
    lut[list(valid)] = True
    return xr.apply_ufunc(
        _in_classes,
        var,
        kwargs={"classes": valid, "lut": lut},
        dask="parallelized",
        output_dtypes=[bool],
    )


def mask_clouds(
    ds: xr.Dataset,
    *,
    scl: str = "scl",
    classes: Iterable[int] = S2_SCL_MASKED,
    keep_scl: bool = False,
) -> xr.Dataset:
    """Set every non-SCL band to NaN where the Sentinel-2 SCL band is in ``classes``.

    Integer bands become float32. The SCL band is dropped unless ``keep_scl``.
    """
    name = _find(ds, scl)
    bad = class_mask(ds[name], classes)
    return _apply(ds, bad, name, keep_scl)


def mask_landsat(
    ds: xr.Dataset,
    *,
    qa: str = "qa_pixel",
    fill: bool = True,
    dilated_cloud: bool = True,
    cirrus: bool = True,
    cloud: bool = True,
    cloud_shadow: bool = True,
    snow: bool = True,
    keep_qa: bool = False,
) -> xr.Dataset:
    """Set every non-QA band to NaN where the selected Landsat QA_PIXEL bits are set."""
    name = _find(ds, qa)
    chosen = {
        "fill": fill,
        "dilated_cloud": dilated_cloud,
        "cirrus": cirrus,
        "cloud": cloud,
        "cloud_shadow": cloud_shadow,
        "snow": snow,
    }
    bits = 0
    for key, on in chosen.items():
        if on:
            bits |= 1 << LANDSAT_QA_BITS[key]
    qa_var = ds[name]
    if np.issubdtype(qa_var.dtype, np.floating):
        qa_var = qa_var.fillna(1).astype(np.uint16)
    bad = (qa_var.astype(np.uint16) & np.uint16(bits)) != 0
    return _apply(ds, bad, name, keep_qa)
