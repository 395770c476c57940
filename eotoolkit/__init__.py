"""STAC catalogs to analysis-ready, chunked xarray data and Zarr stores."""

from . import accessor as _accessor  # noqa: F401  (registers the .eo accessor)
from .api import open_stac
from .cog import to_cog
from .composite import composite
from .errors import (
    AssetReadError,
    AssetReadWarning,
    BandNotFoundError,
    EOToolkitError,
    IncompleteStoreError,
    MissingProjectionError,
    MixedDtypeError,
    NoItemsError,
    OutsideDataError,
    StoreExistsError,
    StoreLayoutError,
)
from .indices import index
from .io import open_zarr, to_zarr
from .loader import load
from .masking import mask_clouds, mask_landsat
from .resample import resample
from .search import search
from .subset import subset

__all__ = [
    "AssetReadError",
    "AssetReadWarning",
    "BandNotFoundError",
    "EOToolkitError",
    "IncompleteStoreError",
    "MissingProjectionError",
    "MixedDtypeError",
    "NoItemsError",
    "OutsideDataError",
    "StoreExistsError",
    "StoreLayoutError",
    "composite",
    "index",
    "load",
    "mask_clouds",
    "mask_landsat",
    "open_stac",
    "open_zarr",
    "resample",
    "search",
    "subset",
    "to_cog",
    "to_zarr",
]
