"""Local evaluation of STAC search filters (the static-catalog path of eotoolkit.search)."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

import pystac
import pytest
import shapely.geometry

from eotoolkit.errors import SearchParameterError
from eotoolkit.stac._search_params import (
    SearchParams,
    normalize_query,
    normalize_sortby,
    parse_cql2,
    parse_datetime_range,
)
from eotoolkit.stac._stac_api import query_to_cql2
from eotoolkit.stac._static_search import item_matcher, matches_cql2, matches_query, sort_items

UTC = timezone.utc


def make_item(
    item_id: str = "a",
    *,
    when: str | None = "2024-03-10T10:00:00Z",
    bbox: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0),
    geometry: bool = True,
    collection: str | None = "c1",
    **props: Any,
) -> pystac.Item:
    geom = shapely.geometry.mapping(shapely.geometry.box(*bbox)) if geometry else None
    dt = pystac.utils.str_to_datetime(when) if when else None
    return pystac.Item(item_id, geom, list(bbox), dt, dict(props), collection=collection)


def params(**kwargs: Any) -> SearchParams:
    base: dict[str, Any] = dict(
        collections=None,
        bbox=None,
        intersects=None,
        datetime=None,
        query=None,
        filter=None,
        filter_lang=None,
        sortby=None,
        max_items=None,
        limit=None,
    )
    base.update(kwargs)
    return SearchParams.build(**base)


def matches(item: pystac.Item, **kwargs: Any) -> bool:
    return item_matcher(params(**kwargs))(item)


# --- datetime parameter ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "value,start,end",
    [
        (
            "2024-03-10T10:00:00Z",
            datetime(2024, 3, 10, 10, tzinfo=UTC),
            datetime(2024, 3, 10, 10, tzinfo=UTC),
        ),
        (
            "2024-03-10",
            datetime(2024, 3, 10, tzinfo=UTC),
            datetime(2024, 3, 10, 23, 59, 59, 999999, tzinfo=UTC),
        ),
        (
            "2024-02",
            datetime(2024, 2, 1, tzinfo=UTC),
            datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
        ),
        (
            "2023",
            datetime(2023, 1, 1, tzinfo=UTC),
            datetime(2023, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        ),
        (
            "2024-01-01/2024-01-31",
            datetime(2024, 1, 1, tzinfo=UTC),
            datetime(2024, 1, 31, 23, 59, 59, 999999, tzinfo=UTC),
        ),
        ("../2024-01-31T00:00:00Z", None, datetime(2024, 1, 31, tzinfo=UTC)),
        ("2024-01-01T00:00:00+02:00/..", datetime(2023, 12, 31, 22, tzinfo=UTC), None),
        ("/2024-01-31T00:00:00Z", None, datetime(2024, 1, 31, tzinfo=UTC)),
        (datetime(2024, 1, 5), datetime(2024, 1, 5, tzinfo=UTC), datetime(2024, 1, 5, tzinfo=UTC)),
        (
            date(2024, 1, 5),
            datetime(2024, 1, 5, tzinfo=UTC),
            datetime(2024, 1, 5, 23, 59, 59, 999999, tzinfo=UTC),
        ),
        ((None, "2024-01-05T00:00:00Z"), None, datetime(2024, 1, 5, tzinfo=UTC)),
        (["2024-01-05T00:00:00Z", None], datetime(2024, 1, 5, tzinfo=UTC), None),
    ],
)
def test_parse_datetime_range(value: Any, start: datetime | None, end: datetime | None) -> None:
    assert parse_datetime_range(value) == (start, end)


def test_parse_datetime_none() -> None:
    assert parse_datetime_range(None) is None


@pytest.mark.parametrize(
    "value,message",
    [
        ("../..", "open at both ends"),
        ("..", "single open end"),
        ("2024-02-01/2024-01-01", "ends before it starts"),
        ("yesterday", "invalid datetime"),
        ("2024-01-01/2024-02-01/2024-03-01", "one instant or 'start/end'"),
    ],
)
def test_parse_datetime_errors(value: str, message: str) -> None:
    with pytest.raises(SearchParameterError, match=message):
        parse_datetime_range(value)


def test_datetime_filter_on_instants() -> None:
    item = make_item(when="2024-03-10T10:00:00Z")
    assert matches(item, datetime="2024-03-10T10:00:00Z")
    assert matches(item, datetime="2024-03-10")
    assert matches(item, datetime="2024-03")
    assert matches(item, datetime="2024-03-10T10:00:00Z/..")
    assert matches(item, datetime="../2024-03-10T10:00:00Z")
    assert not matches(item, datetime="2024-03-10T10:00:01Z/..")
    assert not matches(item, datetime="../2024-03-10T09:59:59Z")
    assert not matches(item, datetime="2024-04")


def test_datetime_filter_on_start_end_items() -> None:
    item = make_item(
        when=None, start_datetime="2024-01-01T00:00:00Z", end_datetime="2024-01-31T23:59:59Z"
    )
    assert matches(item, datetime="2024-01-15T00:00:00Z")
    assert matches(item, datetime="2023-12-01/2024-01-01")
    assert matches(item, datetime="2024-01-31T23:59:59Z/..")
    assert not matches(item, datetime="2024-02-01/..")
    assert not matches(item, datetime="../2023-12-31")


def test_datetime_filter_skips_items_without_time() -> None:
    item = make_item(
        when=None, start_datetime="2024-01-01T00:00:00Z", end_datetime="2024-01-02T00:00:00Z"
    )
    assert matches(item, datetime="2024")
    item.properties.pop("start_datetime")
    assert not matches(item, datetime="2024")


# --- spatial and collections -----------------------------------------------------------------


def test_bbox_filter() -> None:
    item = make_item(bbox=(10.0, 45.0, 11.0, 46.0))
    assert matches(item, bbox=[10.5, 45.5, 12.0, 47.0])
    assert matches(item, bbox=[11.0, 46.0, 12.0, 47.0])  # touching corner
    assert matches(item, bbox=[10.5, 45.5, 0, 12.0, 47.0, 100])  # 3D bbox
    assert not matches(item, bbox=[11.1, 45.0, 12.0, 46.0])


def test_bbox_filter_uses_item_bbox_without_geometry() -> None:
    item = make_item(bbox=(10.0, 45.0, 11.0, 46.0), geometry=False)
    assert matches(item, bbox=[10.5, 45.5, 12.0, 47.0])
    assert not matches(item, bbox=[20.0, 45.0, 21.0, 46.0])


@pytest.mark.parametrize(
    ("bbox", "message"),
    [
        ([14, 52, 15.5, 95], "latitudes must be within"),
        ([14, -91, 15.5, 52], "latitudes must be within"),
        ([14, 52, 0, 15.5, 95, 10], "latitudes must be within"),
        ([-200, 52, 400, 53], "longitudes must be within"),
        ([14, 52, float("nan"), 53], "finite"),
        ([14, 52, "east", 53], "must be 4 numbers"),
    ],
)
def test_bbox_is_checked_as_load_checks_it(bbox: list[object], message: str) -> None:
    with pytest.raises(SearchParameterError, match=message):
        params(bbox=bbox)


def test_bbox_must_be_ordered() -> None:
    with pytest.raises(SearchParameterError, match="west <= east"):
        params(bbox=[11.0, 45.0, 10.0, 46.0])


def test_intersects_filter() -> None:
    triangle = shapely.geometry.Polygon([(0, 0), (2, 0), (0, 2)])
    item = make_item(bbox=(0.9, 0.9, 1.5, 1.5))
    assert matches(item, intersects=shapely.geometry.Point(1.2, 1.2))
    assert not matches(item, intersects=triangle.buffer(-0.2))
    assert matches(item, intersects=shapely.geometry.mapping(triangle))
    assert matches(item, intersects='{"type": "Point", "coordinates": [1, 1]}')
    with pytest.raises(SearchParameterError, match="GeoJSON"):
        params(intersects={"type": "Nope"})


def test_collections_filter_uses_parent_collection() -> None:
    item = make_item(collection=None)
    parent = pystac.Collection("parent", "d", pystac.Extent.from_items([item]))
    parent.add_item(item)
    item.collection_id = None
    assert matches(item, collections=["parent"])
    assert matches(item, collections="other,parent")
    assert not matches(item, collections=["other"])


# --- query extension -------------------------------------------------------------------------


ITEM_PROPS: dict[str, Any] = {
    "eo:cloud_cover": 12.5,
    "platform": "sentinel-2a",
    "s2:mgrs_tile": "T32TLR",
    "created": "2024-03-11T00:00:00Z",
}


@pytest.mark.parametrize(
    "query,expected",
    [
        ({"eo:cloud_cover": {"eq": 12.5}}, True),
        ({"eo:cloud_cover": {"neq": 12.5}}, False),
        ({"eo:cloud_cover": {"lt": 12.5}}, False),
        ({"eo:cloud_cover": {"lte": 12.5}}, True),
        ({"eo:cloud_cover": {"gt": 10, "lt": 20}}, True),
        ({"eo:cloud_cover": {"gte": 13}}, False),
        ({"platform": {"in": ["sentinel-2a", "sentinel-2b"]}}, True),
        ({"platform": {"in": ["landsat-8"]}}, False),
        ({"s2:mgrs_tile": {"startsWith": "T32"}}, True),
        ({"s2:mgrs_tile": {"endsWith": "TLR"}, "platform": {"contains": "2a"}}, True),
        ({"missing": {"neq": 1}}, False),
        ({"platform": {"lt": 3}}, False),
        ({"created": {"gt": "2024-03-10T23:00:00+00:00"}}, True),
        ({"id": {"eq": "a"}, "collection": {"eq": "c1"}}, True),
    ],
)
def test_query_operators(query: dict[str, Any], expected: bool) -> None:
    item = make_item(**ITEM_PROPS)
    assert matches_query(item, normalize_query(query) or {}) is expected
    assert matches(item, query=query) is expected


@pytest.mark.parametrize(
    "query",
    [
        {"eo:cloud_cover": {"lte": 12.5}},
        {"eo:cloud_cover": {"gt": 10, "lt": 20}, "platform": {"neq": "sentinel-2b"}},
        {"platform": {"in": ["sentinel-2a", "x"]}},
        {"s2:mgrs_tile": {"startsWith": "T32T"}, "eo:cloud_cover": {"gte": 13}},
        {"s2:mgrs_tile": {"contains": "2T_L"}},
    ],
)
def test_query_translation_to_cql2_is_equivalent(query: dict[str, Any]) -> None:
    item = make_item(**ITEM_PROPS)
    translated = parse_cql2(query_to_cql2(query))
    assert matches_cql2(item, translated) is matches_query(item, query)


def test_query_strings() -> None:
    assert normalize_query(
        ["eo:cloud_cover>=10", "eo:cloud_cover<20", "platform=sentinel-2a", "x<>3"]
    ) == {
        "eo:cloud_cover": {"gte": 10, "lt": 20},
        "platform": {"eq": "sentinel-2a"},
        "x": {"neq": 3},
    }


@pytest.mark.parametrize(
    "query,message",
    [
        ({"eo:cloud_cover": {"below": 3}}, "unknown query operator"),
        ({"eo:cloud_cover": 3}, "must map operators"),
        (["cloudy"], "no comparison"),
    ],
)
def test_query_errors(query: Any, message: str) -> None:
    with pytest.raises(SearchParameterError, match=message):
        normalize_query(query)


# --- CQL2 filter -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,expected",
    [
        ('"eo:cloud_cover" < 20', True),
        ("eo:cloud_cover < 20 AND platform = 'sentinel-2b'", False),
        ("eo:cloud_cover > 20 OR platform = 'sentinel-2a'", True),
        ("NOT (eo:cloud_cover BETWEEN 10 AND 15)", False),
        ("platform IN ('sentinel-2a', 'sentinel-2b')", True),
        ("s2:mgrs_tile LIKE 'T32%'", True),
        ("id = 'a' AND collection = 'c1'", True),
        ("datetime >= TIMESTAMP('2024-03-10T00:00:00Z')", True),
        ("S_INTERSECTS(geometry, POINT(0.5 0.5))", True),
        ("S_INTERSECTS(geometry, POINT(5 5))", False),
        ("missing > 3", False),
        ("missing > 3 OR platform = 'sentinel-2a'", True),
    ],
)
def test_cql2_text(text: str, expected: bool) -> None:
    item = make_item(**ITEM_PROPS)
    assert matches_cql2(item, parse_cql2(text)) is expected
    assert matches(item, filter=text, filter_lang="cql2-text") is expected


def test_cql2_json_dict_and_string() -> None:
    item = make_item(**ITEM_PROPS)
    expr: dict[str, Any] = {
        "op": "and",
        "args": [
            {"op": "<", "args": [{"property": "eo:cloud_cover"}, 20]},
            {"op": "=", "args": [{"property": "platform"}, "sentinel-2a"]},
        ],
    }
    assert matches(item, filter=expr)
    assert matches(item, filter=expr, filter_lang="cql2-json")
    import json

    assert matches(item, filter=json.dumps(expr), filter_lang="cql2-json")
    expr["args"][0]["args"][1] = 10
    assert not matches(item, filter=expr)


def test_cql2_errors() -> None:
    with pytest.raises(SearchParameterError, match="invalid CQL2 filter"):
        parse_cql2("eo:cloud_cover <")
    with pytest.raises(SearchParameterError, match="filter_lang"):
        parse_cql2("a = 1", "cql-text")


# --- sorting ---------------------------------------------------------------------------------


def test_sort_default_is_newest_first_then_id_desc() -> None:
    items = [
        make_item("b", when="2024-01-01T00:00:00Z"),
        make_item("a", when="2024-02-01T00:00:00Z"),
        make_item("c", when="2024-01-01T00:00:00Z"),
    ]
    assert [i.id for i in sort_items(items, None)] == ["a", "c", "b"]


def test_sortby_fields_and_missing_values_last() -> None:
    items = [make_item("a", cc=5), make_item("b", cc=1), make_item("c"), make_item("d", cc=5)]
    asc = sort_items(items, normalize_sortby("cc,-id"))
    assert [i.id for i in asc] == ["b", "d", "a", "c"]
    desc = sort_items(items, normalize_sortby([{"field": "properties.cc", "direction": "desc"}]))
    assert [i.id for i in desc] == ["a", "d", "b", "c"]


def test_sortby_errors() -> None:
    with pytest.raises(SearchParameterError, match="invalid sortby"):
        normalize_sortby([{"field": "cc", "direction": "up"}])
    with pytest.raises(SearchParameterError, match="mixed value types"):
        sort_items([make_item("a", cc=1), make_item("b", cc="x")], normalize_sortby("cc"))
