"""Searching a static STAC catalog: walk it with pystac and filter items locally."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pystac
import shapely.geometry
from shapely.geometry.base import BaseGeometry

from ..errors import SearchParameterError, StacSourceError, StorageError
from ..stores.storage import StorageOptions, stac_io
from ._search_params import QUERY_OPS, Interval, SearchParams, bbox_geometry, to_utc

DATETIME_FIELDS = {"datetime", "start_datetime", "end_datetime", "created", "updated"}


def _walk(catalog: pystac.Catalog, wanted: set[str] | None) -> Iterator[pystac.Item]:
    skip = (
        wanted is not None and isinstance(catalog, pystac.Collection) and (catalog.id not in wanted)
    )
    if not skip:
        yield from catalog.get_items()
    for child in catalog.get_children():
        yield from _walk(child, wanted)


def _static_items(
    href: str,
    root: dict[str, Any],
    wanted: set[str] | None,
    storage_options: StorageOptions | None = None,
) -> list[pystac.Item]:
    io = stac_io(storage_options)
    try:
        if root.get("type") == "FeatureCollection":
            return list(pystac.ItemCollection.from_file(href, stac_io=io))
        catalog = pystac.read_file(href, stac_io=io)
    except StorageError:
        raise
    except Exception as exc:
        raise StacSourceError(f"cannot read static STAC catalog {href}: {exc}") from exc
    if not isinstance(catalog, pystac.Catalog):
        raise StacSourceError(f"{href} is not a STAC catalog or collection")
    return list(_walk(catalog, wanted))


def item_collection_id(item: pystac.Item) -> str | None:
    """Collection id of an item: its ``collection`` field, else its parent collection's id."""
    if item.collection_id:
        return item.collection_id
    parent = item.get_parent()
    return parent.id if isinstance(parent, pystac.Collection) else None


def item_interval(item: pystac.Item) -> Interval:
    """(start, end) of an item from start/end_datetime, falling back to datetime."""
    meta = item.common_metadata
    start = meta.start_datetime or item.datetime
    end = meta.end_datetime or item.datetime
    return (to_utc(start) if start else None, to_utc(end) if end else None)


def item_dict(item: pystac.Item) -> dict[str, Any]:
    """The item as a STAC item dict with absolute asset hrefs and its ``self`` link."""
    out = item.to_dict(include_self_link=True, transform_hrefs=False)
    for key, asset in item.assets.items():
        out["assets"][key]["href"] = asset.get_absolute_href() or asset.href
    return out


def item_geometry(item: pystac.Item) -> BaseGeometry | None:
    """Item footprint from its geometry, else from its bbox."""
    if item.geometry:
        return shapely.geometry.shape(item.geometry)
    if item.bbox:
        return bbox_geometry(item.bbox)
    return None


def _property(item: pystac.Item, name: str) -> Any:
    name = name.removeprefix("properties.")
    if name == "datetime":
        return to_utc(item.datetime) if item.datetime else None
    if name in item.properties:
        value = item.properties[name]
    elif name == "id":
        value = item.id
    elif name == "collection":
        value = item_collection_id(item)
    else:
        return None
    if name in DATETIME_FIELDS and isinstance(value, str):
        return to_utc(pystac.utils.str_to_datetime(value))
    return value


def _compare_value(name: str, value: Any) -> Any:
    if name.removeprefix("properties.") in DATETIME_FIELDS:
        if isinstance(value, str):
            return to_utc(pystac.utils.str_to_datetime(value))
        if isinstance(value, list):
            return [_compare_value(name, v) for v in value]
    return value


def matches_query(item: pystac.Item, query: dict[str, Any]) -> bool:
    """True when every query-extension condition holds; a missing property never matches."""
    for name, ops in query.items():
        actual = _property(item, name)
        if actual is None:
            return False
        for op, expected in ops.items():
            try:
                if not QUERY_OPS[op](actual, _compare_value(name, expected)):
                    return False
            except TypeError:
                return False
    return True


def matches_cql2(item: pystac.Item, expr: Any) -> bool:
    """True when a parsed CQL2 expression holds for the item; unknown properties never match."""
    try:
        return bool(expr.matches(item.to_dict(include_self_link=False, transform_hrefs=False)))
    except Exception as exc:
        if "Could not reduce" in str(exc):
            return False
        raise SearchParameterError(f"CQL2 filter cannot be evaluated locally: {exc}") from exc


def item_matcher(params: SearchParams) -> Callable[[pystac.Item], bool]:
    """Build a predicate applying every filter of ``params`` to one item."""
    wanted = set(params.collections) if params.collections is not None else None
    ids = set(params.ids) if params.ids is not None else None
    areas = [g for g in (params.bbox and bbox_geometry(params.bbox), params.intersects) if g]

    def matches(item: pystac.Item) -> bool:
        if wanted is not None and item_collection_id(item) not in wanted:
            return False
        if ids is not None and item.id not in ids:
            return False
        if areas:
            footprint = item_geometry(item)
            if footprint is None or not all(footprint.intersects(a) for a in areas):
                return False
        if params.datetime is not None:
            start, end = item_interval(item)
            lo, hi = params.datetime
            if start is None or end is None:
                return False
            if (hi is not None and start > hi) or (lo is not None and end < lo):
                return False
        if params.query and not matches_query(item, params.query):
            return False
        return params.filter is None or matches_cql2(item, params.filter)

    return matches


def sort_items(items: list[pystac.Item], sortby: list[dict[str, str]] | None) -> list[pystac.Item]:
    """Sort items by sortby fields (missing values last); default newest datetime, then id."""
    keys = sortby or [
        {"field": "datetime", "direction": "desc"},
        {"field": "id", "direction": "desc"},
    ]
    result = list(items)
    for key in reversed(keys):
        field = key["field"]
        present: list[tuple[Any, pystac.Item]]
        if field == "datetime":
            present = [(item_interval(i)[0], i) for i in result]
        else:
            present = [(_property(i, field), i) for i in result]
        have = [p for p in present if p[0] is not None]
        missing = [i for v, i in present if v is None]
        try:
            have.sort(key=lambda p: p[0], reverse=key["direction"] == "desc")
        except TypeError as exc:
            raise SearchParameterError(f"sortby field {field!r} has mixed value types") from exc
        result = [i for _, i in have] + missing
    return result


def _search_static(
    href: str,
    root: dict[str, Any],
    params: SearchParams,
    storage_options: StorageOptions | None = None,
) -> list[pystac.Item]:
    wanted = set(params.collections) if params.collections is not None else None
    matches = item_matcher(params)
    items = _static_items(href, root, wanted, storage_options)
    found = sort_items([i for i in items if matches(i)], params.sortby)
    return found[: params.max_items] if params.max_items is not None else found
