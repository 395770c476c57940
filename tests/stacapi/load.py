"""Load pystac catalogs, collections and item collections into a pgstac database."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pystac

STRUCTURAL_RELS = {"self", "root", "parent", "child", "item", "collection", "items"}

StacSource = pystac.Catalog | pystac.ItemCollection | Iterable[pystac.Item]


def _clean_links(data: dict[str, Any]) -> dict[str, Any]:
    links = data.get("links", [])
    data["links"] = [link for link in links if link.get("rel") not in STRUCTURAL_RELS]
    return data


def _item_dict(item: pystac.Item, collection_id: str) -> dict[str, Any]:
    clone = item.clone()
    if clone.get_self_href():
        clone.make_asset_hrefs_absolute()
    data = clone.to_dict(include_self_link=False, transform_hrefs=False)
    data["collection"] = collection_id
    return _clean_links(data)


def _collection_of(item: pystac.Item) -> str | None:
    if item.collection_id:
        return item.collection_id
    parent = item.get_collection()
    return parent.id if parent else None


def collection_for(collection_id: str, items: list[pystac.Item]) -> pystac.Collection:
    """Build a collection whose spatial and temporal extent covers ``items``."""
    return pystac.Collection(
        id=collection_id,
        description=f"Collection {collection_id} loaded for tests",
        extent=pystac.Extent.from_items(items),
        license="other",
    )


def _gather(
    source: StacSource, collection_id: str | None
) -> tuple[dict[str, pystac.Collection], dict[str, list[pystac.Item]]]:
    known: dict[str, pystac.Collection] = {}
    if isinstance(source, pystac.Catalog):
        if isinstance(source, pystac.Collection):
            known[source.id] = source
        known.update({c.id: c for c in source.get_all_collections()})
        items: Iterable[pystac.Item] = source.get_items(recursive=True)
    else:
        items = source
    grouped: dict[str, list[pystac.Item]] = {}
    for item in items:
        cid = collection_id or _collection_of(item)
        if cid is None:
            raise ValueError(f"item {item.id!r} has no collection; pass collection_id=")
        grouped.setdefault(cid, []).append(item)
    return known, grouped


def numeric_queryables(items: Iterable[pystac.Item]) -> dict[str, Any]:
    """JSON schema declaring the numeric properties of ``items`` as numbers.

    pgstac then compares and sorts them as numbers instead of as text.
    """
    names = sorted(
        {
            name
            for item in items
            for name, value in item.properties.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        }
    )
    return {"type": "object", "properties": {name: {"type": "number"} for name in names}}


def load_stac(dsn: str, source: StacSource, *, collection_id: str | None = None) -> list[str]:
    """Upsert the collections and items of ``source`` into pgstac; return the collection ids.

    Items keep their collection (or get ``collection_id`` when given). A collection missing
    from ``source`` is created with the extent of its items. Asset hrefs are made absolute and
    numeric properties are registered as number queryables.
    """
    from pypgstac.db import PgstacDB
    from pypgstac.load import Loader, Methods

    known, grouped = _gather(source, collection_id)
    collections = []
    for cid, items in grouped.items():
        collection = known.get(cid) or collection_for(cid, items)
        data = collection.to_dict(include_self_link=False, transform_hrefs=False)
        data["id"] = cid
        collections.append(_clean_links(data))
    item_dicts = [_item_dict(item, cid) for cid, items in grouped.items() for item in items]
    with PgstacDB(dsn=dsn) as db:
        loader = Loader(db)
        loader.load_collections(iter(collections), insert_mode=Methods.upsert)
        loader.load_items(iter(item_dicts), insert_mode=Methods.upsert)
        for cid, items in grouped.items():
            schema = numeric_queryables(items)
            if schema["properties"]:
                db.connect().execute(
                    "SELECT upsert_queryables(%s::jsonb, %s::text[], NULL::text[], false)",
                    [json.dumps(schema), [cid]],
                )
    return list(grouped)
