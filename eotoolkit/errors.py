"""Exception and warning types raised by eotoolkit."""

from __future__ import annotations


class EOToolkitError(Exception):
    """Base class of every error raised by eotoolkit."""


class InvalidParameterError(EOToolkitError, ValueError):
    """A parameter value is refused before any work starts; the message names the parameter,
    the value, what is allowed and how to fix it."""


class NoItemsError(EOToolkitError, ValueError):
    """A search or an item list produced nothing to load."""


class BandNotFoundError(EOToolkitError, KeyError):
    """A requested band is not an asset key or common name of the items."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class MissingProjectionError(EOToolkitError, ValueError):
    """Items carry no projection metadata and no crs/resolution was given."""


class AssetReadError(EOToolkitError, OSError):
    """An asset file could not be opened or read."""


class MixedDtypeError(EOToolkitError, TypeError):
    """One band has different data types across items."""


class OutsideDataError(EOToolkitError, ValueError):
    """A requested bbox or geometry does not intersect the data."""


class StoreLayoutError(EOToolkitError, ValueError):
    """A Zarr store exists with another layout (variables, shapes, chunks or coordinates)."""


class StoreExistsError(EOToolkitError, FileExistsError):
    """A Zarr store exists and the write mode does not allow touching it."""


class IncompleteStoreError(EOToolkitError, OSError):
    """A Zarr store was not completely written."""


class RecipeError(InvalidParameterError):
    """A recipe file is invalid."""


class SpectralIndexError(InvalidParameterError):
    """A spectral index is unknown or cannot be computed from the dataset."""


class AssetReadWarning(UserWarning):
    """An asset could not be read and its pixels were filled with nodata."""


class StacSourceError(EOToolkitError):
    """A STAC source (API URL or static catalog) is unreachable or is not STAC."""


class EmptySearchError(NoItemsError):
    """A STAC search matched no items."""


class SearchParameterError(InvalidParameterError):
    """A search parameter (bbox, datetime, query, filter, sortby) is invalid."""
