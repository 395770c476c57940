"""``open_stac``: search a STAC source and load the result."""

from __future__ import annotations

import inspect
from typing import Any

import xarray as xr

from .loader import load

LOAD_ARGS = set(inspect.signature(load).parameters) - {"items"}


def open_stac(source: Any, **kwargs: Any) -> xr.Dataset:
    """``search(source, ...)`` then ``load(items, ...)``: keyword arguments go to whichever
    accepts them (``bbox`` goes to both)."""
    from .search import search  # provided by eotoolkit/search.py

    load_kwargs = {k: v for k, v in kwargs.items() if k in LOAD_ARGS}
    search_kwargs = {k: v for k, v in kwargs.items() if k not in LOAD_ARGS or k == "bbox"}
    items = search(source, **search_kwargs)
    return load(items, **load_kwargs)
