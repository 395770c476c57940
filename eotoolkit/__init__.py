"""STAC catalogs to analysis-ready, chunked xarray data and Zarr stores."""

from . import accessor as _accessor  # noqa: F401  (registers the .eo accessor)
from .api import open_stac
from .catalog import build_catalog, copy_assets, generate_subcatalogs
from .cog import to_cog
from .composite import composite
from .daymet import open_daymet, spring_index_by_year
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
from .phenology import growing_degree_hours, spring_index
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
    "resample",
    "search",
    "spring_index",
    "spring_index_by_year",
    "subset",
    "to_cog",
    "to_zarr",
]
