"""Search STAC items in a STAC API or in a static STAC catalog with one function.

A STAC API (its root has ``conformsTo`` or a ``search`` link) is searched by pystac-client,
a long datetime range in pieces on threads. A static catalog is walked with pystac and its
items are filtered locally with the same semantics: collections, item ids, bbox, intersects,
datetime, the query extension and CQL2 filters. ``as_dicts=True`` hands the items over as
STAC item dicts, which ``load`` takes as they are (from an API no pystac object is made).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, cast, overload

import pystac
from shapely.geometry.base import BaseGeometry

from ..errors import EmptySearchError
from ..stores.storage import StorageOptions
from ._search_params import DatetimeLike, SearchParams
from ._stac_api import _search_api
from ._stac_source import is_api_root, read_root
from ._static_search import _search_static, item_dict

__all__ = ["is_api_root", "search"]


@overload
def search(
    source: str | Path,
    *,
    collections: str | Sequence[str] | None = None,
    ids: str | Sequence[str] | None = None,
    bbox: Sequence[float] | None = None,
    intersects: dict[str, Any] | BaseGeometry | Any | None = None,
    datetime: DatetimeLike = None,
    query: dict[str, Any] | Sequence[str] | None = None,
    filter: dict[str, Any] | str | None = None,
    filter_lang: str | None = None,
    max_items: int | None = None,
    limit: int | None = None,
    sortby: str | Sequence[str] | Sequence[dict[str, str]] | None = None,
    storage_options: StorageOptions | None = None,
    as_dicts: Literal[False] = False,
) -> pystac.ItemCollection: ...


@overload
def search(
    source: str | Path,
    *,
    collections: str | Sequence[str] | None = None,
    ids: str | Sequence[str] | None = None,
    bbox: Sequence[float] | None = None,
    intersects: dict[str, Any] | BaseGeometry | Any | None = None,
    datetime: DatetimeLike = None,
    query: dict[str, Any] | Sequence[str] | None = None,
    filter: dict[str, Any] | str | None = None,
    filter_lang: str | None = None,
    max_items: int | None = None,
    limit: int | None = None,
    sortby: str | Sequence[str] | Sequence[dict[str, str]] | None = None,
    storage_options: StorageOptions | None = None,
    as_dicts: Literal[True],
) -> list[dict[str, Any]]: ...


def search(
    source: str | Path,
    *,
    collections: str | Sequence[str] | None = None,
    ids: str | Sequence[str] | None = None,
    bbox: Sequence[float] | None = None,
    intersects: dict[str, Any] | BaseGeometry | Any | None = None,
    datetime: DatetimeLike = None,
    query: dict[str, Any] | Sequence[str] | None = None,
    filter: dict[str, Any] | str | None = None,
    filter_lang: str | None = None,
    max_items: int | None = None,
    limit: int | None = None,
    sortby: str | Sequence[str] | Sequence[dict[str, str]] | None = None,
    storage_options: StorageOptions | None = None,
    as_dicts: bool = False,
) -> pystac.ItemCollection | list[dict[str, Any]]:
    """Search items of a STAC API URL or a static catalog (path or URL).

    ``ids`` keeps only the items with these ids (a list, or one string of comma-separated ids);
    like every other filter it combines with the rest (an item must also be in
    ``collections``, intersect ``bbox``, ...). A STAC API gets it as the ``ids`` parameter of
    its item search; a static catalog is filtered by item id.

    Raises ``StacSourceError`` when the source is unreachable or not STAC,
    ``SearchParameterError`` for invalid parameters and ``EmptySearchError`` when nothing
    matched. Without ``sortby``, static results are ordered by datetime then id, newest first.
    A static catalog may live on S3 (``s3://bucket/.../catalog.json``), read with
    ``storage_options`` or the AWS environment and profile (see :mod:`eotoolkit.stores.storage`).

    ``as_dicts=True`` returns a list of STAC item dicts instead of a ``pystac.ItemCollection``,
    for :func:`eotoolkit.load`: a STAC API's items are never made pystac objects; a static
    catalog's are read with pystac and given with absolute asset hrefs and their ``self`` link.
    A STAC API search over a datetime range longer than 180 days is run as 90-day pieces, four
    at a time on threads, and merged in the order one search gives (newest first without
    ``sortby``, else in the order of a leading ``datetime`` sort), each item once; a search
    with ``ids`` or ``max_items``, or sorted by another field first, is run whole.
    """
    from .. import _validate

    if not isinstance(source, str | Path) or not str(source):
        raise _validate.invalid("source", source, "a STAC API URL or a static catalog path/URL")
    _validate.optional_int("max_items", max_items)
    _validate.optional_int("limit", limit)
    _validate.boolean("as_dicts", as_dicts)
    href, root = read_root(source, storage_options)
    params = SearchParams.build(
        collections,
        bbox,
        intersects,
        datetime,
        query,
        filter,
        filter_lang,
        sortby,
        max_items,
        limit,
        ids,
    )
    items: list[Any]
    if is_api_root(root):
        items = _search_api(href, root, params, as_dicts=as_dicts)
    else:
        items = _search_static(href, root, params, storage_options)
        if as_dicts:
            items = [item_dict(item) for item in items]
    if not items:
        raise EmptySearchError(
            f"no items in {href} matched the search ({params.describe()}); widen the filters "
            "(larger bbox, longer datetime range, looser query/filter) or check the "
            "collection ids"
        )
    if as_dicts:
        return cast(list[dict[str, Any]], items)
    return pystac.ItemCollection(items, clone_items=False)
