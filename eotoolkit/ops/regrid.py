"""Spatial resampling onto a coarser or finer grid (e.g. Sentinel-2 "resample to 20 m")."""

from __future__ import annotations

from typing import Any

import numpy as np
import odc.geo.xr  # noqa: F401  (registers the .odc accessor)
import xarray as xr
from odc.geo import Resolution
from odc.geo.geobox import GeoBox

from .. import _validate
from .._grid import _check_scale, crs_key, transform_bboxes


def target_geobox(
    obj: xr.Dataset | xr.DataArray, resolution: float | tuple[float, float], crs: Any = None
) -> GeoBox:
    """The grid covering ``obj`` in ``crs`` (default its own) at ``resolution``."""
    src: GeoBox = obj.odc.geobox
    dst_crs = crs_key(crs) if crs is not None else crs_key(str(src.crs))
    bounds = np.asarray([tuple(src.extent.boundingbox)], float)
    b = transform_bboxes(bounds, crs_key(str(src.crs)), dst_crs)[0]
    rx, ry = (resolution, resolution) if isinstance(resolution, int | float) else resolution
    _check_scale(tuple(b), dst_crs, (rx, ry))
    return GeoBox.from_bbox(tuple(b), dst_crs, resolution=Resolution(rx, -ry))


def resample(
    ds: xr.Dataset | xr.DataArray,
    *,
    resolution: float,
    crs: Any = None,
    method: str = "average",
) -> xr.Dataset | xr.DataArray:
    """Resample spatially to ``resolution`` (optionally reprojecting to ``crs``), lazily.

    ``method`` is a GDAL resampling name: average, nearest, bilinear, cubic, mode, min, max,
    med. Integer bands with a ``nodata`` attribute keep it; float bands use NaN.
    """
    _validate.data("ds", ds)
    _validate.georeferenced("ds", ds)
    res = _validate.resolution("resolution", resolution, allow_none=False)
    assert res is not None
    if crs is not None:
        crs = _validate.crs("crs", crs).to_wkt()
    _validate.resampling("method", method, allow_none=False)
    geobox = target_geobox(ds, res, crs)
    if isinstance(ds, xr.DataArray):
        return _one(ds, geobox, method)
    out = {name: _one(var, geobox, method) for name, var in ds.data_vars.items()}
    return xr.Dataset(out, attrs=dict(ds.attrs))


def _one(var: xr.DataArray, geobox: GeoBox, method: str) -> xr.DataArray:
    nodata = var.attrs.get("nodata")
    kwargs: dict[str, Any] = {"resampling": method}
    if nodata is not None:
        kwargs["dst_nodata"] = nodata
        kwargs["src_nodata"] = nodata
    out = var.odc.reproject(geobox, **kwargs)
    out = out.rename({k: v for k, v in (("latitude", "y"), ("longitude", "x")) if k in out.dims})
    out.attrs = dict(var.attrs)
    return out.rename(var.name)
