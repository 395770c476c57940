"""eotoolkit.search against a real STAC API (pgstac) and the static catalog of the same items."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pystac
import pytest

from eotoolkit.errors import EmptySearchError, SearchParameterError, StacSourceError
from eotoolkit.stac.discovery import search
from tests.stacapi.fixture import StacApi
from tests.stacapi.sample import COMPOSITE_ID, sample_items, write_sample_catalog
from tests.stacapi.server import free_port

pytestmark = pytest.mark.stacapi


@pytest.fixture(scope="module")
def sample(stac_api: StacApi, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """The sample catalog loaded into the API: (API URL, static catalog path)."""
    root = tmp_path_factory.mktemp("sample-catalog")
    catalog = write_sample_catalog(root)
    assert sorted(stac_api.load(catalog)) == ["sample-a", "sample-b"]
    return stac_api.url, root / "catalog.json"


def ids(items: pystac.ItemCollection) -> list[str]:
    return [item.id for item in items]


CASES: dict[str, tuple[dict[str, Any], int]] = {
    "all": ({}, 19),
    "collections": ({"collections": ["sample-b"]}, 7),
    "collections-str": ({"collections": "sample-a"}, 12),
    "ids": ({"ids": ["T32TLR-20240105", "T32TLS-20240224", COMPOSITE_ID]}, 3),
    "ids-and-collections": (
        {"ids": ["T32TLR-20240105", "T32TLS-20240224", COMPOSITE_ID], "collections": "sample-b"},
        2,
    ),
    "bbox": ({"bbox": [10.2, 45.2, 10.8, 45.8]}, 6),
    "bbox-two-tiles": ({"bbox": [10.5, 45.5, 11.5, 45.9]}, 12),
    "intersects": ({"intersects": {"type": "Point", "coordinates": [10.5, 46.5]}}, 7),
    "datetime-range": ({"datetime": "2024-01-10/2024-01-31"}, 7),
    "datetime-instant": ({"datetime": "2024-01-15T10:30:00Z"}, 2),
    "datetime-open-start": ({"datetime": "../2024-01-20"}, 7),
    "datetime-open-end": ({"datetime": "2024-02-10/.."}, 6),
    "datetime-month": ({"datetime": "2024-02"}, 9),
    "query": ({"query": {"eo:cloud_cover": {"lt": 40}}}, 8),
    "query-in": (
        {
            "query": {
                "s2:mgrs_tile": {"in": ["T32TMR", "T32TLS"]},
                "platform": {"eq": "sentinel-2b"},
            }
        },
        6,
    ),
    "query-strings": ({"query": ["eo:cloud_cover>=50", "eo:cloud_cover<80"]}, 5),
    "cql2-text": ({"filter": "\"eo:cloud_cover\" < 40 AND platform = 'sentinel-2a'"}, 5),
    "cql2-text-or": ({"filter": "s2:mgrs_tile = 'T32TMR' OR eo:cloud_cover = 0"}, 8),
    "cql2-json": (
        {
            "filter": {
                "op": "and",
                "args": [
                    {"op": "=", "args": [{"property": "s2:mgrs_tile"}, "T32TMR"]},
                    {"op": ">", "args": [{"property": "eo:cloud_cover"}, 30]},
                ],
            },
            "filter_lang": "cql2-json",
        },
        4,
    ),
    "combined": (
        {
            "collections": ["sample-a"],
            "bbox": [10.0, 45.0, 12.0, 46.0],
            "datetime": "2024-01-01/2024-02-05",
            "query": {"eo:cloud_cover": {"lte": 90}},
        },
        8,
    ),
    "query-startswith": (
        {"query": {"s2:mgrs_tile": {"startsWith": "T32TL"}, "eo:cloud_cover": {"gt": 50}}},
        6,
    ),
    "sortby": ({"sortby": ["-eo:cloud_cover", "+id"]}, 19),
}


@pytest.mark.parametrize("kwargs,count", CASES.values(), ids=CASES.keys())
def test_api_and_static_agree(sample: tuple[str, Path], kwargs: dict[str, Any], count: int) -> None:
    url, static = sample
    from_api = ids(search(url, **kwargs))
    from_static = ids(search(static, **kwargs))
    assert len(from_api) == count
    assert from_api == from_static


def test_datetime_range_matches_start_end_items(sample: tuple[str, Path]) -> None:
    url, static = sample
    for source in (url, static):
        found = ids(search(source, datetime="2024-01-30/2024-01-31", collections=["sample-b"]))
        assert found == [COMPOSITE_ID]


def test_paging_returns_every_item(sample: tuple[str, Path]) -> None:
    url, static = sample
    paged = ids(search(url, limit=4))
    assert len(paged) == 19 and len(set(paged)) == 19
    assert paged == ids(search(url, limit=100)) == ids(search(static))


def test_max_items_across_pages(sample: tuple[str, Path]) -> None:
    url, static = sample
    first = ids(search(url, limit=3, max_items=7))
    assert len(first) == 7
    assert first == ids(search(static, max_items=7)) == ids(search(url))[:7]


def test_items_come_back_complete(sample: tuple[str, Path]) -> None:
    url, _ = sample
    item = search(url, collections=["sample-a"], max_items=1)[0]
    assert item.collection_id == "sample-a"
    assert item.assets["B04"].href.endswith("_B04.tif")
    assert Path(item.assets["B04"].href).is_absolute()
    assert item.properties["s2:mgrs_tile"] in ("T32TLR", "T32TMR")


def test_empty_search_names_the_filters(sample: tuple[str, Path]) -> None:
    url, static = sample
    for source in (url, static):
        with pytest.raises(EmptySearchError) as info:
            search(source, collections=["sample-a"], datetime="2030-01-01/2030-12-31")
        message = str(info.value)
        assert "collections=['sample-a']" in message and "2030-01-01/2030-12-31" in message
        assert "widen" in message


def test_unreachable_api_names_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    with pytest.raises(StacSourceError) as info:
        search(url, collections=["sample-a"])
    assert url in str(info.value)
    assert "connection refused" in str(info.value)
    assert "check the URL" in str(info.value)


def test_non_stac_url_is_rejected(stac_api: StacApi) -> None:
    with pytest.raises(StacSourceError, match="HTTP 404"):
        search(f"{stac_api.url}/no-such-page")
    with pytest.raises(StacSourceError, match="not a STAC"):
        search(f"{stac_api.url}/api")


def test_invalid_filter_is_a_parameter_error(sample: tuple[str, Path]) -> None:
    url, _ = sample
    with pytest.raises(SearchParameterError, match="invalid CQL2 filter"):
        search(url, filter="eo:cloud_cover <")


def test_synthetic_s2_collection(stac_api: StacApi, tmp_path: Path) -> None:
    s2 = pytest.importorskip("eotoolkit.synthetic.s2")
    catalog = s2.write_s2_collection(tmp_path, tiles=2, dates=3, size=32)
    collection_ids = stac_api.load(catalog)
    static = tmp_path / "catalog.json"
    kwargs: dict[str, Any] = {"collections": collection_ids, "sortby": ["-datetime", "+id"]}
    from_api = ids(search(stac_api.url, **kwargs))
    assert len(from_api) == 6
    assert from_api == ids(search(static, **kwargs))
    item = search(stac_api.url, collections=collection_ids, max_items=1)[0]
    assert Path(item.assets["B04"].href).is_file()


def test_load_item_collection_creates_collection_with_extent(stac_api: StacApi) -> None:
    group = sample_items()["sample-a"]  # tile T32TLR at 10:30 then tile T32TMR at 10:33
    items = [group[i].clone() for i in (0, 1, 6, 7)]
    for item in items:
        item.collection_id = None
        item.id = f"loose-{item.id}"
    assert stac_api.load(pystac.ItemCollection(items), collection_id="loose") == ["loose"]
    with urllib.request.urlopen(f"{stac_api.url}/collections/loose", timeout=10) as resp:
        collection = json.load(resp)
    assert collection["extent"]["spatial"]["bbox"] == [[10.0, 45.0, 12.0, 46.0]]
    interval = collection["extent"]["temporal"]["interval"][0]
    assert interval[0].startswith("2024-01-05T10:30:00")
    assert interval[1].startswith("2024-01-15T10:33:00")
    found = search(stac_api.url, collections=["loose"])
    assert sorted(ids(found)) == sorted(item.id for item in items)
