"""Cloud-Optimized GeoTIFF export of DataArrays."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from rasterio.io import MemoryFile

from .storage import StorageOptions, fsspec_kwargs, storage_errors


def to_cog(
    da: xr.DataArray,
    path: str | os.PathLike[str],
    *,
    nodata: float | None = None,
    compress: str = "DEFLATE",
    blocksize: int = 512,
    overview_resampling: str = "average",
    storage_options: StorageOptions | None = None,
    **creation_options: Any,
) -> str:
    """Write a 2-D (y, x) or 3-D (band, y, x) DataArray as a tiled COG with overviews.

    The array is computed; it must carry a CRS (``da.rio.crs``). Float NaN is the nodata value
    of float arrays; integer arrays use ``nodata`` or their ``nodata`` attribute.
    ``path`` may be an ``s3://`` URL (or another fsspec URL): the COG is written to a local
    temporary file, then uploaded with ``storage_options`` or the AWS environment and profile.
    """
    from .. import _validate

    if not isinstance(da, xr.DataArray):
        raise _validate.invalid(
            "da",
            da,
            "an xarray DataArray",
            "For a Dataset pass one variable, e.g. ds['red'].isel(time=0).",
        )
    _validate.georeferenced("da", da)
    extra = [d for d in da.dims if d not in ("y", "x")]
    if len(extra) > 1 or (extra and da.sizes[extra[0]] > 1 and da.ndim != 3):
        raise _validate.invalid(
            "da",
            f"<DataArray with dims {da.dims}>",
            "a (y, x) or (band, y, x) DataArray",
            "Select one time step first, e.g. da.isel(time=0).",
        )
    if not isinstance(path, str | os.PathLike) or not str(path):
        raise _validate.invalid("path", path, "a file path")
    parent = os.path.dirname(os.path.abspath(str(path)))
    if "://" not in str(path) and not os.path.isdir(parent):
        raise _validate.invalid(
            "path", str(path), "a file path in an existing directory", f"Create {parent} first."
        )
    if nodata is not None and nodata == nodata:  # NaN is a valid float nodata
        _validate.number("nodata", nodata, positive=False)
    _validate.choice(
        "compress", compress, ("DEFLATE", "LZW", "ZSTD", "LZMA", "WEBP", "JPEG", "PACKBITS", "NONE")
    )
    if (
        isinstance(blocksize, bool)
        or not isinstance(blocksize, int)
        or blocksize < 16
        or (blocksize % 16)
    ):
        raise _validate.invalid("blocksize", blocksize, "a multiple of 16 (e.g. 256 or 512)")
    _validate.resampling("overview_resampling", overview_resampling, allow_none=False)
    arr = da.transpose(*extra, "y", "x").values if extra else da.values[np.newaxis]
    if nodata is None:
        nodata = float("nan") if arr.dtype.kind == "f" else da.attrs.get("nodata")
    profile = {
        "driver": "GTiff",
        "width": arr.shape[2],
        "height": arr.shape[1],
        "count": arr.shape[0],
        "dtype": arr.dtype.name,
        "crs": da.rio.crs,
        "transform": da.rio.transform(recalc=True),
        "nodata": nodata,
    }
    target = str(path)
    remote = "://" in target and not target.startswith("file://")
    with tempfile.TemporaryDirectory(prefix="eotoolkit-cog-") as tmpdir:
        local = str(Path(tmpdir) / "out.tif") if remote else target.removeprefix("file://")
        with MemoryFile() as mem, mem.open(**profile) as tmp:
            tmp.write(arr)
            rasterio.shutil.copy(
                tmp,
                local,
                driver="COG",
                compress=compress,
                blocksize=blocksize,
                overview_resampling=overview_resampling,
                **creation_options,
            )
        if remote:
            _upload(local, target, storage_options)
    return target


def _upload(local: str, url: str, storage_options: StorageOptions | None) -> None:
    """Copy a local file to ``url`` (GDAL cannot create new objects on every S3 server)."""
    import fsspec

    with storage_errors(url, storage_options, "write"):
        fs, remote_path = fsspec.core.url_to_fs(url, **fsspec_kwargs(url, storage_options))
        fs.put_file(local, remote_path)
