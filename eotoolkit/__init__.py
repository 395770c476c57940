"""STAC catalogs to analysis-ready, chunked xarray data and Zarr stores.

Importing the package registers the ``.eo`` accessor and the error types; the public functions
are imported from their modules on first access, so that ``import eotoolkit`` (paid by every
Dask worker on its first task) does not load Dask arrays, Zarr, spyndex or the STAC clients.
"""

from __future__ import annotations

import importlib
from typing import Any

from . import accessor as _accessor  # noqa: F401  (registers the .eo accessor)
from .errors import (
    AssetReadError,
    AssetReadWarning,
    BandNotFoundError,
    EOToolkitError,
    IncompleteStoreError,
    InvalidParameterError,
    MissingProjectionError,
    MixedDtypeError,
    NoItemsError,
    OutsideDataError,
    StoreExistsError,
    StoreLayoutError,
)

#: Public function -> the module defining it (relative to the package), imported on first access.
_LAZY = {
    "build_catalog": "stac.catalog",
    "composite": "ops.temporal",
    "copy_assets": "stac.catalog",
    "generate_subcatalogs": "stac.catalog",
    "growing_degree_hours": "ops.phenology",
    "index": "ops.indices",
    "load": "loader",
    "mask_clouds": "ops.masking",
    "mask_landsat": "ops.masking",
    "open_daymet": "ops.daymet",
    "open_stac": "loader",
    "open_zarr": "stores.zarr_store",
    "progress": "progress_bars",
    "resample": "ops.regrid",
    "search": "stac.discovery",
    "spring_index": "ops.phenology",
    "spring_index_by_year": "ops.daymet",
    "subset": "ops.selection",
    "to_cog": "stores.cog",
    "to_zarr": "stores.zarr_store",
}

__all__ = [
    "AssetReadError",
    "AssetReadWarning",
    "BandNotFoundError",
    "EOToolkitError",
    "IncompleteStoreError",
    "InvalidParameterError",
    "MissingProjectionError",
    "MixedDtypeError",
    "NoItemsError",
    "OutsideDataError",
    "StoreExistsError",
    "StoreLayoutError",
    "__version__",
    "build_catalog",
    "composite",
    "copy_assets",
    "generate_subcatalogs",
    "growing_degree_hours",
    "index",
    "load",
    "mask_clouds",
    "mask_landsat",
    "open_daymet",
    "open_stac",
    "open_zarr",
    "progress",
    "resample",
    "search",
    "spring_index",
    "spring_index_by_year",
    "subset",
    "to_cog",
    "to_zarr",
]

#: The distribution that ships this package (its version is eotoolkit's).
DISTRIBUTION = "eo-hpc"


def _version() -> str:
    """The installed version of the distribution (``0+unknown`` when run from a bare tree)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "0+unknown"


def __getattr__(name: str) -> Any:
    """Import a public function from its module on first access."""
    if name == "__version__":
        globals()[name] = value = _version()
        return value
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """Module attributes including the functions not imported yet."""
    return sorted(set(globals()) | set(__all__))
