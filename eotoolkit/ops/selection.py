"""Spatial, temporal and band subsetting of loaded datasets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr

from .. import _validate
from .._grid import box_near, crs_key, transform_bboxes
from ..errors import BandNotFoundError, OutsideDataError


def _time_slice(time: Any) -> Any:
    if isinstance(time, tuple | list) and len(time) == 2:
        return slice(*time)
    if isinstance(time, str) and "/" in time:
        start, stop = time.split("/")
        return slice(start or None, stop or None)
    return time


def subset(
    ds: xr.Dataset,
    *,
    bbox: tuple[float, float, float, float] | None = None,
    bbox_crs: Any = "EPSG:4326",
    geometry: Any = None,
    time: Any = None,
    bands: Sequence[str] | None = None,
) -> xr.Dataset:
    """Cut a dataset to a bbox (in ``bbox_crs``), a geometry (EPSG:4326; pixels outside it
    become NaN), a time range ("2024-03/2024-05", a (start, stop) pair or a single date) and
    a list of bands. Stays lazy."""
    _validate.data("ds", ds)
    bands = _validate.bands("bands", bands)
    if time is not None:
        _validate.data("ds", ds, time=True)
        _validate.time_range("time", time)
    if bbox is not None or geometry is not None:
        _validate.georeferenced("ds", ds)
    if bbox is not None and geometry is not None:
        raise _validate.invalid(
            "geometry", geometry, "either bbox= or geometry=, not both", "Drop one of them."
        )
    if geometry is not None:
        geometry = _validate.geometry("geometry", geometry)
    if bbox is not None:
        src = _validate.crs("bbox_crs", bbox_crs)
        bbox = _validate.bbox("bbox", bbox, lonlat=bool(src.is_geographic))
    if bands is not None:
        missing = [b for b in bands if b not in ds.data_vars]
        if missing:
            raise BandNotFoundError(
                f"Band(s) {missing} not in the dataset; available: {list(ds.data_vars)}."
            )
        ds = ds[list(bands)]
    if time is not None:
        ds = ds.sel(time=_time_slice(time))
    crs = ds.rio.crs
    shape = None
    if geometry is not None:
        shape = _validate.as_geometry(geometry)
        bbox, bbox_crs = shape.bounds, "EPSG:4326"
    if bbox is not None:
        if crs is None:
            raise ValueError(
                "The dataset has no CRS (ds.rio.crs); write one with ds.rio.write_crs."
            )
        dst = crs_key(crs.to_wkt())
        src_key = crs_key(_validate.crs("bbox_crs", bbox_crs).to_wkt())
        xs = ds["x"].values
        if len(xs):
            x0, y0, x1, y1 = box_near(bbox, src_key, dst, (float(xs.min()), float(xs.max())))
        else:
            x0, y0, x1, y1 = transform_bboxes(np.asarray([bbox], float), src_key, dst)[0]
        ys = ds["y"].values
        y_slice = slice(y1, y0) if ys[0] > ys[-1] else slice(y0, y1)
        out = ds.sel(x=slice(x0, x1), y=y_slice)
        if out.sizes["x"] == 0 or out.sizes["y"] == 0:
            raise OutsideDataError(
                f"The bbox {tuple(bbox)} ({bbox_crs}) does not intersect the dataset, whose "
                f"bounds are {ds.rio.bounds()} in {crs}. Pass a bbox inside the data."
            )
        ds = out
    if shape is not None:
        ds = ds.rio.clip([shape], crs="EPSG:4326", drop=False, all_touched=True)
    return ds
