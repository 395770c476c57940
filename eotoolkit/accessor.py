"""The ``.eo`` accessor on xarray Datasets and DataArrays.

The methods import their modules when called, so that registering the accessor only needs
xarray.
"""

from __future__ import annotations

from typing import Any

import xarray as xr


@xr.register_dataset_accessor("eo")
class EODatasetAccessor:
    """``ds.eo.index("NDVI")``, ``ds.eo.mask_clouds()``, ``ds.eo.composite()``, ..."""

    def __init__(self, ds: xr.Dataset) -> None:
        self._ds = ds

    def index(self, name: str, **params: Any) -> xr.DataArray:
        """See :func:`eotoolkit.index`."""
        from .ops.indices import index

        return index(self._ds, name, **params)

    def mask_clouds(self, **kwargs: Any) -> xr.Dataset:
        """See :func:`eotoolkit.mask_clouds`."""
        from .ops.masking import mask_clouds

        return mask_clouds(self._ds, **kwargs)

    def mask_landsat(self, **kwargs: Any) -> xr.Dataset:
        """See :func:`eotoolkit.mask_landsat`."""
        from .ops.masking import mask_landsat

        return mask_landsat(self._ds, **kwargs)

    def composite(self, freq: str = "1MS", stat: Any = "median") -> Any:
        """See :func:`eotoolkit.composite`."""
        from .ops.temporal import composite

        return composite(self._ds, freq=freq, stat=stat)

    def subset(self, **kwargs: Any) -> xr.Dataset:
        """See :func:`eotoolkit.subset`."""
        from .ops.selection import subset

        return subset(self._ds, **kwargs)

    def resample(self, **kwargs: Any) -> Any:
        """See :func:`eotoolkit.resample`."""
        from .ops.regrid import resample

        return resample(self._ds, **kwargs)

    def to_zarr(self, store: str, **kwargs: Any) -> str:
        """See :func:`eotoolkit.to_zarr`."""
        from .stores.zarr_store import to_zarr

        return to_zarr(self._ds, store, **kwargs)


@xr.register_dataarray_accessor("eo")
class EODataArrayAccessor:
    """``da.eo.composite()``, ``da.eo.to_cog(path)``, ``da.eo.to_zarr(store)``."""

    def __init__(self, da: xr.DataArray) -> None:
        self._da = da

    def composite(self, freq: str = "1MS", stat: Any = "median") -> Any:
        """See :func:`eotoolkit.composite`."""
        from .ops.temporal import composite

        return composite(self._da, freq=freq, stat=stat)

    def resample(self, **kwargs: Any) -> Any:
        """See :func:`eotoolkit.resample`."""
        from .ops.regrid import resample

        return resample(self._da, **kwargs)

    def to_zarr(self, store: str, **kwargs: Any) -> str:
        """See :func:`eotoolkit.to_zarr`."""
        from .stores.zarr_store import to_zarr

        return to_zarr(self._da, store, **kwargs)

    def to_cog(self, path: str, **kwargs: Any) -> str:
        """See :func:`eotoolkit.to_cog`."""
        from .stores.cog import to_cog

        return to_cog(self._da, path, **kwargs)
