"""Each file checked against its item's metadata when it is opened: CRS, extent, data type,
band count, nodata, scale and offset (the grid and the chunks come from the metadata, the
pixels from the file)."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np
import rasterio

from ._items import Source
from .errors import AssetMetadataError
from .stores import storage


@lru_cache(maxsize=256)
def _crs_equal(declared: str, wkt: str) -> bool:
    """Whether the item's CRS and the file's are the same: equal definitions, or two spellings
    that put every point at the same coordinates (an ESRI or PROJ string with a null datum
    shift for an EPSG code, as some writers store it)."""
    import pyproj

    try:
        item, file = pyproj.CRS.from_user_input(declared), pyproj.CRS.from_user_input(wkt)
        if item.equals(file, ignore_axis_order=True):
            return True
        return _same_coordinates(item, file)
    except pyproj.exceptions.ProjError:
        return False


def _same_coordinates(item: Any, file: Any) -> bool:
    """True when points across the item CRS's area of use keep their coordinates in the file's."""
    import pyproj

    area = item.area_of_use
    west, south, east, north = area.bounds if area else (-10.0, -10.0, 10.0, 10.0)
    if east < west:  # an area across the antimeridian
        east += 360.0
    lons = [west + (east - west) * f for f in (0.1, 0.5, 0.9)]
    lats = [south + (north - south) * f for f in (0.1, 0.5, 0.9)]
    to_item = pyproj.Transformer.from_crs(item.geodetic_crs, item, always_xy=True)
    item_to_file = pyproj.Transformer.from_crs(item, file, always_xy=True)
    for lon in lons:
        for lat in lats:
            x, y = to_item.transform(lon, lat)
            x2, y2 = item_to_file.transform(x, y)
            if not all(math.isfinite(v) for v in (x, y, x2, y2)):
                return False
            if abs(x2 - x) > 1e-9 * max(abs(x), 1.0) or abs(y2 - y) > 1e-9 * max(abs(y), 1.0):
                return False
    return True


def _check_metadata(s: Source, src: rasterio.DatasetReader) -> None:
    """Refuse a file whose CRS or extent is not the one its item declares: the grid and the
    chunks an item is read into come from the metadata, the pixels from the file, so a
    disagreement would silently drop or misplace pixels."""
    fix = (
        "Fix the item's metadata (or the file), or pass fail_on_error=False to fill its "
        "pixels with nodata."
    )
    if src.crs is None:
        raise AssetMetadataError(
            f"Asset {storage.redact(s.href)} has no CRS in the file, its item says "
            f"{_short(s.crs)}: the file is not georeferenced. {fix}"
        )
    if src.count > 1:
        raise AssetMetadataError(
            f"Asset {storage.redact(s.href)} holds {src.count} bands and load reads one band "
            f"per asset: only its first would load. Ask for single-band assets instead. {fix}"
        )
    if s.dtype is not None:
        try:
            declared = np.dtype(s.dtype)
        except TypeError:
            declared = None
        if declared is not None and declared != np.dtype(src.dtypes[0]):
            raise AssetMetadataError(
                f"Asset {storage.redact(s.href)} is {src.dtypes[0]} but its item says "
                f"data_type {s.dtype!r} (raster:bands): its values would be cast wrongly. "
                f"{fix}"
            )
    if s.crs is not None and not _crs_equal(s.crs, src.crs.to_wkt()):
        file_crs = src.crs.to_string() if src.crs.to_epsg() else "a WKT CRS"
        raise AssetMetadataError(
            f"Asset {storage.redact(s.href)} is in {file_crs} but its item says "
            f"{_short(s.crs)} (proj:code/proj:epsg/proj:wkt2). {fix}"
        )
    if s.bbox is not None:
        left, bottom, right, top = src.bounds
        tol = max(abs(src.transform.a), abs(src.transform.e)) + 1e-9 * max(
            abs(left), abs(right), abs(top), abs(bottom), 1.0
        )
        got = (min(left, right), min(bottom, top), max(left, right), max(bottom, top))
        if any(abs(a - b) > tol for a, b in zip(got, s.bbox, strict=True)):
            raise AssetMetadataError(
                f"Asset {storage.redact(s.href)} covers {_fmt(got)} ({src.height} x "
                f"{src.width} pixels) in its CRS but its item says {_fmt(s.bbox)} "
                f"(proj:transform/proj:shape/proj:bbox). {fix}"
            )
    file_nodata = src.nodata
    if (
        s.nodata is not None
        and file_nodata is not None
        and not (math.isnan(s.nodata) and math.isnan(file_nodata))
        and s.nodata != file_nodata
    ):
        raise AssetMetadataError(
            f"Asset {storage.redact(s.href)} has nodata {file_nodata} in the file but its item "
            f"says nodata {s.nodata} (raster:bands): which pixels are empty is unknown. {fix}"
        )
    file_scale = src.scales[0] if src.scales else 1.0
    file_offset = src.offsets[0] if src.offsets else 0.0
    if (file_scale, file_offset) != (1.0, 0.0):
        if not s.scale_declared:
            raise AssetMetadataError(
                f"Asset {storage.redact(s.href)} has scale {file_scale} and offset "
                f"{file_offset} in the file but its item declares none (raster:bands "
                f"scale/offset): its values would load unscaled. Add them to the item's "
                f"raster:bands (or raster:scale/raster:offset). {fix}"
            )
        if not (
            math.isclose(file_scale, s.scale, rel_tol=1e-6)
            and math.isclose(file_offset, s.offset, rel_tol=1e-6, abs_tol=1e-12)
        ):
            raise AssetMetadataError(
                f"Asset {storage.redact(s.href)} has scale {file_scale} and offset "
                f"{file_offset} in the file but its item says scale {s.scale} and offset "
                f"{s.offset}: which is right is unknown. {fix}"
            )


def _short(crs: str | None) -> str:
    text = str(crs)
    return text if len(text) <= 60 else text[:57] + "..."


def _fmt(bbox: Any) -> str:
    return "[" + ", ".join(f"{v:.6g}" for v in bbox) + "]"
