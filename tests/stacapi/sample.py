"""A small deterministic static STAC catalog (two collections, 19 items) for search tests.

Every item has its own acquisition time, so ordering by datetime has no ties.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pystac
import shapely.geometry

TILES = {  # tile -> (collection, bbox)
    "T32TLR": ("sample-a", (10.0, 45.0, 11.0, 46.0)),
    "T32TMR": ("sample-a", (11.0, 45.0, 12.0, 46.0)),
    "T32TLS": ("sample-b", (10.0, 46.0, 11.0, 47.0)),
}
START = datetime(2024, 1, 5, 10, 30, tzinfo=timezone.utc)
DATES = [START + timedelta(days=10 * k) for k in range(6)]
COMPOSITE_ID = "T32TLS-composite-2024-01"


def cloud_cover(tile_index: int, date_index: int) -> float:
    """Cloud cover of one sample item (deterministic, spread over 0..99)."""
    return float((date_index * 17 + tile_index * 29) % 100)


def _item(
    item_id: str,
    tile: str,
    bbox: tuple[float, ...],
    props: Mapping[str, object],
    when: datetime | None,
) -> pystac.Item:
    geometry = shapely.geometry.mapping(shapely.geometry.box(*bbox))
    item = pystac.Item(item_id, geometry, list(bbox), when, {**props, "s2:mgrs_tile": tile})
    item.add_asset(
        "B04", pystac.Asset(f"./{item_id}_B04.tif", media_type=pystac.MediaType.COG, roles=["data"])
    )
    return item


def sample_items() -> dict[str, list[pystac.Item]]:
    """Items grouped by collection id; one item has only start/end_datetime."""
    groups: dict[str, list[pystac.Item]] = {}
    for t, (tile, (cid, bbox)) in enumerate(TILES.items()):
        for d, when in enumerate(DATES):
            props = {
                "eo:cloud_cover": cloud_cover(t, d),
                "platform": "sentinel-2a" if d % 2 == 0 else "sentinel-2b",
            }
            item_id = f"{tile}-{when:%Y%m%d}"
            when = when + timedelta(minutes=3 * t)
            groups.setdefault(cid, []).append(_item(item_id, tile, bbox, props, when))
    composite = _item(
        COMPOSITE_ID,
        "T32TLS",
        TILES["T32TLS"][1],
        {
            "start_datetime": "2024-01-01T00:00:00Z",
            "end_datetime": "2024-01-31T23:59:59Z",
            "eo:cloud_cover": 0.0,
            "platform": "sentinel-2a",
        },
        None,
    )
    groups["sample-b"].append(composite)
    return groups


def write_sample_catalog(root: Path) -> pystac.Catalog:
    """Write the sample catalog under ``root`` (self-contained); return it."""
    catalog = pystac.Catalog("sample-root", "Sample catalog for eotoolkit search tests")
    for cid, items in sample_items().items():
        collection = pystac.Collection(
            cid, f"Sample collection {cid}", pystac.Extent.from_items(items), license="CC-BY-4.0"
        )
        collection.add_items(items)
        catalog.add_child(collection)
    catalog.normalize_hrefs(str(root))
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return catalog
