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


class AssetMetadataError(AssetReadError, ValueError):
    """An asset file disagrees with its item's metadata (proj:code/proj:epsg, proj:transform,
    proj:shape, proj:bbox, scale/offset): the message names the href, both values and the fix."""


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


class StorageError(EOToolkitError, OSError):
    """An object store (S3) refused or failed a request; ``bucket`` and ``key`` say where."""

    def __init__(
        self,
        message: str,
        *,
        bucket: str | None = None,
        key: str | None = None,
        reason: str | None = None,
        endpoint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.bucket = bucket
        self.key = key
        self.reason = reason
        self.endpoint = endpoint

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class StorageAccessError(StorageError, PermissionError):
    """Access denied: ``reason`` is "credentials" (wrong key or secret, expired token) or
    "permission" (valid credentials without the permission)."""


class StorageNotFoundError(StorageError, FileNotFoundError):
    """No such bucket, or no such object (possibly one that vanished during the run)."""


class StorageUnreachableError(StorageError, ConnectionError):
    """The S3 endpoint did not answer; ``endpoint`` is its host:port."""


class AssetAccessError(AssetReadError, StorageAccessError):
    """An asset on S3 could not be read: access denied."""


class AssetNotFoundError(AssetReadError, StorageNotFoundError):
    """An asset on S3 could not be read: no such bucket or object."""


class AssetUnreachableError(AssetReadError, StorageUnreachableError):
    """An asset on S3 could not be read: the endpoint did not answer."""


def asset_storage_error(error: StorageError, message: str) -> AssetReadError:
    """An AssetReadError that is also the StorageError type of ``error``, with ``message``."""
    cls: type[AssetReadError] = AssetReadError
    for base, combined in (
        (StorageAccessError, AssetAccessError),
        (StorageNotFoundError, AssetNotFoundError),
        (StorageUnreachableError, AssetUnreachableError),
    ):
        if isinstance(error, base):
            cls = combined
    if cls is AssetReadError:
        return AssetReadError(message)
    out = cls(message)
    out.__dict__.update(error.__dict__)
    return out
