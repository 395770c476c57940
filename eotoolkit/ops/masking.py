"""Cloud masking: Sentinel-2 scene classification (SCL) and Landsat QA_PIXEL bits."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from .. import _validate
from ..errors import BandNotFoundError, InvalidParameterError

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


def _per_block(func: Callable[..., np.ndarray], dtype: np.dtype | type) -> Callable[..., Any]:
    """``func`` for ``xr.apply_ufunc(..., dask="allowed")``: on dask arrays one ``map_blocks``
    layer, which dask fuses with the blockwise operations around it; on numpy arrays a call."""

    def apply(*arrays: Any, **kwargs: Any) -> Any:
        if any(isinstance(a, da.Array) for a in arrays):
            meta = np.empty((0,) * arrays[0].ndim, dtype)
            return da.map_blocks(func, *arrays, dtype=dtype, meta=meta, **kwargs)
        return func(*arrays, **kwargs)

    return apply


def _masked(
    values: np.ndarray, flags: np.ndarray, test: Callable[..., np.ndarray], options: dict[str, Any]
) -> np.ndarray:
    """``values`` with NaN where ``test(flags, **options)``; integers become float32."""
    return _set_nan(values, test(flags, **options))


def _apply(
    ds: xr.Dataset,
    mask_var: str,
    test: Callable[..., np.ndarray],
    options: dict[str, Any],
    keep: bool,
) -> xr.Dataset:
    """Mask every (y, x) band but ``mask_var`` where ``test`` is true of ``mask_var``.

    Each band's mask is one blockwise operation that evaluates ``test`` itself (a few integer
    comparisons per pixel): no shared mask array, so that dask can fuse the masking with
    whatever follows (an index, a composite) into one task per chunk.
    """
    flags = ds[mask_var]
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
            _per_block(_masked, dtype),
            var,
            flags,
            kwargs={"test": test, "options": options},
            dask="allowed",
            keep_attrs=False,
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


def _isin(values: np.ndarray, classes: tuple[int, ...]) -> np.ndarray:
    return np.isin(values, classes)


def _class_test(
    dtype: np.dtype, classes: Iterable[int]
) -> tuple[Callable[..., np.ndarray], dict[str, Any]]:
    """(test, options): ``test(values, **options)`` is True where a value is in ``classes``;
    comparisons or a lookup table for 8/16-bit values, ``np.isin`` otherwise."""
    wanted = tuple(sorted({int(c) for c in classes}))
    if dtype not in (np.uint8, np.uint16):
        return _isin, {"classes": wanted}
    lut = np.zeros(np.iinfo(dtype).max + 1, bool)
    valid = tuple(c for c in wanted if 0 <= c < lut.size)
    lut[list(valid)] = True
    return _in_classes, {"classes": valid, "lut": lut}


def class_mask(var: xr.DataArray, classes: Iterable[int]) -> xr.DataArray:
    """Boolean array: True where ``var`` is one of ``classes`` (comparisons or a lookup table
    for 8/16-bit)."""
    test, options = _class_test(var.dtype, classes)
    return xr.apply_ufunc(_per_block(test, bool), var, kwargs=options, dask="allowed")


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
    _validate.data("ds", ds, dataarray=False)
    if not isinstance(scl, str) or not scl:
        raise _validate.invalid("scl", scl, "the name of the SCL band, e.g. 'scl'")
    try:
        classes = [int(c) for c in classes]
        ok = all(0 <= c <= 255 for c in classes) and len(classes) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InvalidParameterError(
            f"classes={classes!r} is not valid: expected a non-empty list of SCL class numbers "
            f"0..11 (e.g. [3, 8, 9, 10] for shadow and clouds)."
        )
    _validate.boolean("keep_scl", keep_scl)
    name = _find(ds, scl)
    test, options = _class_test(ds[name].dtype, classes)
    return _apply(ds, name, test, options, keep_scl)


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
    _validate.data("ds", ds, dataarray=False)
    if not isinstance(qa, str) or not qa:
        raise _validate.invalid("qa", qa, "the name of the QA_PIXEL band, e.g. 'qa_pixel'")
    for key, value in (
        ("fill", fill), ("dilated_cloud", dilated_cloud), ("cirrus", cirrus), ("cloud", cloud),
        ("cloud_shadow", cloud_shadow), ("snow", snow), ("keep_qa", keep_qa),
    ):  # fmt: skip
        _validate.boolean(key, value)
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
    return _apply(ds, name, _bits_set, {"bits": bits}, keep_qa)


def _bits_set(qa: np.ndarray, bits: int) -> np.ndarray:
    """True where any of ``bits`` is set in ``qa``; NaN (no QA value) counts as fill (bit 0)."""
    if np.issubdtype(qa.dtype, np.floating):
        qa = np.where(np.isnan(qa), 1, qa)
    return (qa.astype(np.uint16) & np.uint16(bits)) != 0
