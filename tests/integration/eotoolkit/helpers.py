"""Small COG and STAC item builders for integration tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from pyproj import Transformer
from rasterio.io import MemoryFile


def write_cog(
    path: Path,
    data: np.ndarray,
    crs: str,
    transform: Affine,
    nodata: float | None = 0,
    overviews: bool = True,
) -> Path:
    """Write a 2-D array as a DEFLATE COG with 64 px tiles and overviews (unless told not)."""
    profile = {
        "driver": "GTiff",
        "width": data.shape[1],
        "height": data.shape[0],
        "count": 1,
        "dtype": data.dtype.name,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
    }
    with MemoryFile() as mem, mem.open(**profile) as tmp:
        tmp.write(data, 1)
        extra = {} if overviews else {"overviews": "NONE"}
        rasterio.shutil.copy(tmp, path, driver="COG", blocksize=64, compress="DEFLATE", **extra)
    return path


def item_dict(
    item_id: str,
    href: str,
    crs: str,
    transform: Affine,
    shape: tuple[int, int],
    when: str,
    *,
    key: str = "B04",
    dtype: str = "uint16",
    nodata: float | None = 0,
    proj: bool = True,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A GeoJSON STAC item dict with one asset and proj/raster metadata."""
    h, w = shape
    left, top = transform.c, transform.f
    right, bottom = left + w * transform.a, top + h * transform.e
    xs, ys = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(
        [left, right, right, left], [bottom, bottom, top, top]
    )
    bbox = [min(xs), min(ys), max(xs), max(ys)]
    asset: dict[str, Any] = {
        "href": href,
        "type": "image/tiff; application=geotiff; profile=cloud-optimized",
        "raster:bands": [
            {"data_type": dtype, **({"nodata": nodata} if nodata is not None else {})}
        ],
        "eo:bands": [{"name": key, "common_name": "red"}],
    }
    props: dict[str, Any] = {"datetime": when}
    if proj:
        props["proj:code"] = crs
        asset["proj:shape"] = [h, w]
        asset["proj:transform"] = list(transform)[:6]
    props.update(extra or {})
    ring = [[float(x), float(y)] for x, y in zip(xs, ys, strict=True)]
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "id": item_id,
        "geometry": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]},
        "bbox": bbox,
        "properties": props,
        "assets": {key: asset},
        "links": [],
    }
