"""Open Daymet(-like) daily NetCDF assets from STAC and write spring indices per year to Zarr.

Daymet publishes one NetCDF file per variable and year on a Lambert conformal conic grid whose
CRS is described by a CF grid-mapping variable (``lambert_conformal_conic``). ``open_daymet``
merges the variables of each year and concatenates the years along time into one lazy
(dask-backed) dataset carrying the CRS in rioxarray's form. ``spring_index_by_year`` computes
the SI-x indices of :mod:`eotoolkit.ops.phenology` for every year and stores each year as its own
Zarr group (``"2020"``, ``"2021"``, ...).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlparse

import fsspec
import numpy as np
import pyproj
import pystac
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr

from ..stores.zarr_store import to_zarr
from .phenology import spring_index

__all__ = ["open_daymet", "spring_index_by_year"]

DEFAULT_CHUNKS: dict[str, int] = {"time": -1, "y": 256, "x": 256}
DEFAULT_GRID_MAPPING = "lambert_conformal_conic"
_DROP = ("time_bnds", "yearday")


def _item_year(item: pystac.Item) -> int:
    """Year of a Daymet item, from its datetime or start_datetime."""
    when = item.datetime or item.common_metadata.start_datetime
    if when is None:
        raise ValueError(f"item {item.id!r} has no datetime or start_datetime")
    return when.year


def _as_items(catalog_or_items: pystac.Catalog | Iterable[pystac.Item]) -> list[pystac.Item]:
    """Items of a catalog (recursively) or the given items."""
    if isinstance(catalog_or_items, pystac.Catalog):
        return list(catalog_or_items.get_items(recursive=True))
    return list(catalog_or_items)


def _open_asset(href: str, chunks: Mapping[str, int] | None) -> xr.Dataset:
    """Open one NetCDF asset lazily: local paths directly, other URLs through fsspec."""
    scheme = urlparse(href).scheme
    kwargs: dict[str, Any] = {"engine": "h5netcdf", "decode_coords": "all"}
    if scheme in ("", "file") or len(scheme) == 1:  # one letter: a Windows drive
        target: Any = urlparse(href).path if scheme == "file" else href
    else:
        target = fsspec.open(href, mode="rb").open()
    ds = xr.open_dataset(target, **kwargs)
    if chunks is not None:
        ds = ds.chunk({k: v for k, v in chunks.items() if k in ds.dims})
    return ds


def _grid_mapping_name(ds: xr.Dataset, variables: Sequence[str]) -> str | None:
    """Name of the CF grid-mapping variable referenced by the data variables, if any."""
    for name in variables:
        gm = ds[name].encoding.get("grid_mapping") or ds[name].attrs.get("grid_mapping")
        if gm and gm in ds.variables:
            return str(gm)
    return DEFAULT_GRID_MAPPING if DEFAULT_GRID_MAPPING in ds.variables else None


def open_daymet(
    catalog_or_items: pystac.Catalog | Iterable[pystac.Item],
    *,
    variables: Sequence[str] = ("tmin", "tmax", "dayl"),
    years: Iterable[int] | None = None,
    chunks: Mapping[str, int] | None = None,
    coarsen: int | None = None,
) -> xr.Dataset:
    """Open Daymet daily assets of STAC items as one lazy dataset (time, y, x).

    Each item holds one year with one NetCDF asset per variable (asset keys = variable names);
    hrefs may be local paths or URLs readable by fsspec. ``chunks`` defaults to
    ``{"time": -1, "y": 256, "x": 256}`` (time in one chunk per year). ``coarsen`` averages
    blocks of ``coarsen`` x ``coarsen`` pixels (NaN-skipping mean, trailing pixels trimmed);
    spatial chunks are then rounded down to multiples of ``coarsen``.
    The CRS is read from the CF grid mapping and written with rioxarray (coordinate
    ``spatial_ref``, replacing the grid-mapping variable).
    """
    chunks = dict(DEFAULT_CHUNKS if chunks is None else chunks)
    if coarsen is not None and coarsen > 1:
        # Spatial chunks that are multiples of the factor give evenly chunked coarse output.
        for dim in ("y", "x"):
            size = chunks.get(dim, -1)
            if size > 0:
                chunks[dim] = max(coarsen, size // coarsen * coarsen)
    wanted = None if years is None else {int(y) for y in years}
    items = sorted(
        (it for it in _as_items(catalog_or_items) if wanted is None or _item_year(it) in wanted),
        key=_item_year,
    )
    if not items:
        raise ValueError("no Daymet items match the requested years")
    per_year = []
    for item in items:
        missing = [v for v in variables if v not in item.assets]
        if missing:
            raise KeyError(f"item {item.id!r} lacks assets {missing}")
        parts = []
        for var in variables:
            ds = _open_asset(item.assets[var].get_absolute_href() or item.assets[var].href, chunks)
            parts.append(ds[[var]].drop_vars([d for d in _DROP if d in ds.variables]))
        per_year.append(
            xr.merge(parts, compat="override", join="exact", combine_attrs="drop_conflicts")
        )
    out = xr.concat(
        per_year,
        dim="time",
        data_vars="minimal",
        coords="minimal",
        compat="override",
        join="exact",
        combine_attrs="drop_conflicts",
    )
    gm = _grid_mapping_name(out, variables)
    crs = pyproj.CRS.from_cf(out[gm].attrs) if gm is not None else None
    if gm is not None:
        out = out.drop_vars(gm)
    if coarsen is not None and coarsen > 1:
        out = out.coarsen(y=coarsen, x=coarsen, boundary="trim").mean(keep_attrs=True)
    if crs is not None:
        out = out.rio.write_crs(crs)
    return out


def spring_index_by_year(
    ds: xr.Dataset,
    store: Any,
    *,
    mode: str = "w",
    **kwargs: Any,
) -> list[str]:
    """Compute SI-x for each year of ``ds`` and write each year to Zarr group ``"<year>"``.

    ``ds`` needs ``tmin``, ``tmax`` and ``dayl`` on (time, y, x) covering whole years (as from
    :func:`open_daymet`); ``kwargs`` go to :func:`eotoolkit.ops.phenology.spring_index`. Each
    group is written by :func:`eotoolkit.to_zarr` with ``mode`` (default ``"w"``: replace that
    group; also ``"w-"`` and ``"resume"``). The CRS of ``ds`` is kept in a ``spatial_ref``
    coordinate (``crs_wkt``), which rioxarray and ``eotoolkit.open_zarr`` read back.
    Returns the group names written.
    """
    crs = ds.rio.crs
    gm = ds.rio.grid_mapping if crs is not None else None
    years = np.unique(ds["time"].dt.year.values)
    groups = []
    for year in years:
        sub = ds.isel(time=np.flatnonzero(ds["time"].dt.year.values == year))
        out = spring_index(sub["tmin"], sub["tmax"], sub["dayl"], **kwargs)
        out = out.drop_vars([gm] if gm in out.coords else [])
        # Variable-length strings have a stable Zarr v3 encoding; fixed-width unicode does not.
        out = out.assign_coords(plant=out["plant"].values.astype(object))
        for var in out.variables.values():
            var.encoding = {}
        if crs is not None:
            out = out.rio.write_crs(crs)
        out.attrs["year"] = int(year)
        group = str(int(year))
        to_zarr(out, store, group=group, mode=mode)
        groups.append(group)
    return groups
