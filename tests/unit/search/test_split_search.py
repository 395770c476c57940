"""A long STAC API search in time pieces on threads, merged as one search gives; item dicts."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar

import pystac
import pytest

from eotoolkit.stac import _stac_api
from eotoolkit.stac._search_params import SearchParams, parse_datetime_range, split_interval
from eotoolkit.stac._stac_api import _search_api, merge_pieces, search_pieces
from eotoolkit.stac.discovery import search
from tests.stacapi.sample import write_sample_catalog

ROOT = {"conformsTo": ["https://api.stacspec.org/v1.0.0/item-search#sort"]}
URL = "https://stac.example.org"
T0 = datetime(2020, 1, 1, tzinfo=timezone.utc)


def _params(**kwargs: Any) -> SearchParams:
    args = {k: kwargs.get(k) for k in ("collections", "bbox", "intersects", "datetime")}
    return SearchParams.build(
        **args, query=None, filter=None, filter_lang=None, sortby=kwargs.get("sortby"),
        max_items=kwargs.get("max_items"), limit=None, ids=kwargs.get("ids"),
    )  # fmt: skip


def _item(n: int, when: datetime | None, start: datetime | None = None, end: Any = None) -> dict:
    props: dict[str, Any] = {"datetime": when.isoformat() if when else None}
    if start is not None:
        props |= {"start_datetime": start.isoformat(), "end_datetime": end.isoformat()}
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": f"item-{n:04d}", "properties": props,
        "geometry": None, "links": [],
        "assets": {"B04": {"href": f"https://data.example.org/{n}.tif"}},
    }  # fmt: skip


class _FakeSearch:
    """What a STAC API answers: items overlapping the datetime range, newest first (by their
    start; ties by id, descending) or as sortby says, at most max_items."""

    def __init__(self, items: list[dict], **kw: Any) -> None:
        lo, hi = parse_datetime_range(kw["datetime"]) or (None, None)

        def span(d: dict) -> tuple[datetime, datetime]:
            p = d["properties"]
            a = datetime.fromisoformat(p.get("start_datetime") or p["datetime"])
            return a, datetime.fromisoformat(p.get("end_datetime") or p["datetime"])

        found = [
            d
            for d in items
            if (lo is None or span(d)[1] >= lo) and (hi is None or span(d)[0] <= hi)
        ]
        desc = not kw["sortby"] or kw["sortby"][0]["direction"] == "desc"
        found.sort(key=lambda d: (span(d)[0], d["id"]), reverse=desc)
        self.found = found[: kw["max_items"]] if kw["max_items"] else found

    def items_as_dicts(self) -> Iterator[dict]:
        yield from (dict(d) for d in self.found)

    def items(self) -> Iterator[pystac.Item]:
        yield from (pystac.Item.from_dict(d) for d in self.found)


class _FakeClient:
    items: ClassVar[list[dict]] = []
    ranges: ClassVar[list[Any]] = []
    threads: ClassVar[set[int]] = set()
    opened = 0

    @classmethod
    def open(cls, url: str, timeout: Any = None) -> _FakeClient:
        cls.opened += 1
        return cls()

    def search(self, **kw: Any) -> _FakeSearch:
        type(self).ranges.append(kw["datetime"])
        type(self).threads.add(threading.get_ident())
        time.sleep(0.01)  # an answer takes a while: the other pieces go to other threads
        return _FakeSearch(type(self).items, **kw)


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> type[_FakeClient]:
    import pystac_client

    _FakeClient.items = [_item(n, T0 + timedelta(hours=37 * n)) for n in range(800)]
    _FakeClient.ranges, _FakeClient.threads, _FakeClient.opened = [], set(), 0
    monkeypatch.setattr(pystac_client, "Client", _FakeClient)
    return _FakeClient


def test_split_interval_covers_the_range_with_disjoint_pieces() -> None:
    whole = parse_datetime_range("2020-01-01/2022-12-31")
    assert whole is not None
    pieces = split_interval(whole, timedelta(days=90), 64)
    assert len(pieces) == 13 and pieces[0][0] == whole[0] and pieces[-1][1] == whole[1]
    for (_, end), (start, _) in itertools.pairwise(pieces):
        assert end is not None and start is not None and start - end == timedelta(microseconds=1)
    assert len(split_interval(whole, timedelta(days=10), 8)) == 8  # at most max_pieces
    short = parse_datetime_range("2020-01-01/2020-06-01")
    assert split_interval(short, timedelta(days=90), 64) == [short]
    half_open = parse_datetime_range("2020-01-01/..")
    assert split_interval(half_open, timedelta(days=1), 64) == [half_open]
    assert split_interval(None, timedelta(days=1), 64) == []


def test_pieces_follow_the_order_of_one_search() -> None:
    long = "2020-01-01/2022-12-31"
    newest = search_pieces(_params(datetime=long))
    assert len(newest) > 1 and newest[0][0] > newest[-1][0]  # type: ignore[index,operator]
    oldest = search_pieces(_params(datetime=long, sortby="datetime"))
    assert oldest == newest[::-1]
    # another order first, ids, or no range: one search
    whole = parse_datetime_range(long)
    assert search_pieces(_params(datetime=long, sortby="-eo:cloud_cover,datetime")) == [whole]
    assert search_pieces(_params(datetime=long, ids=["a"])) == [whole]
    assert search_pieces(_params(datetime=long, max_items=10)) == [whole]
    assert search_pieces(_params()) == [None]


def test_merge_keeps_order_and_the_first_of_each_id() -> None:
    got = merge_pieces([["c", "b"], ["b", "a"], ["a", "z"]], key=str, max_items=None)
    assert got == ["c", "b", "a", "z"]
    assert merge_pieces([["c", "b"], ["a"]], key=str, max_items=2) == ["c", "b"]


@pytest.mark.parametrize("as_dicts", [True, False])
@pytest.mark.parametrize(
    "extra",
    [{}, {"sortby": "datetime"}, {"sortby": "-datetime,id"}, {"sortby": "+datetime"}],
)
def test_split_search_gives_what_one_search_gives(
    api: type[_FakeClient], monkeypatch: pytest.MonkeyPatch, as_dicts: bool, extra: dict
) -> None:
    params = _params(datetime="2020-01-01/2023-03-31", **extra)
    split = _search_api(URL, ROOT, params, as_dicts=as_dicts)
    assert len(api.ranges) > 1 and len(api.threads) > 1  # pieces, on threads
    assert api.opened <= _stac_api.SPLIT_THREADS  # one client per thread
    monkeypatch.setattr(_stac_api, "SPLIT_MAX", 1)
    api.ranges.clear()
    whole = _search_api(URL, ROOT, params, as_dicts=as_dicts)
    assert len(api.ranges) == 1
    key = (lambda d: d["id"]) if as_dicts else (lambda i: i.id)
    assert [key(i) for i in split] == [key(i) for i in whole]
    assert all(isinstance(i, dict if as_dicts else pystac.Item) for i in split)
    assert len(split) > 700  # nearly all of the 800 items are in the range


def test_an_item_spanning_two_pieces_comes_once(api: type[_FakeClient]) -> None:
    params = _params(datetime="2020-01-01/2020-12-31")
    pieces = search_pieces(params)
    boundary = pieces[1][1]  # type: ignore[index]
    assert boundary is not None
    api.items = [
        _item(1, None, boundary - timedelta(days=3), boundary + timedelta(days=3)),
        _item(2, boundary - timedelta(days=20)),
        _item(3, boundary + timedelta(days=20)),
    ]
    got = _search_api(URL, ROOT, params, as_dicts=True)
    assert sorted(d["id"] for d in got) == ["item-0001", "item-0002", "item-0003"]


def test_static_catalog_as_dicts(tmp_path: Path) -> None:
    write_sample_catalog(tmp_path)
    items = search(tmp_path, datetime="2024-01")
    dicts = search(tmp_path, datetime="2024-01", as_dicts=True)
    assert isinstance(dicts, list) and all(isinstance(d, dict) for d in dicts)
    assert [d["id"] for d in dicts] == [i.id for i in items]
    first = dicts[0]
    assert first["type"] == "Feature"
    assert any(link["rel"] == "self" for link in first["links"])
    assert first["assets"]["B04"]["href"] == items[0].assets["B04"].get_absolute_href()
    assert Path(first["assets"]["B04"]["href"]).is_absolute()
    with pytest.raises(ValueError, match="as_dicts"):
        search(tmp_path, as_dicts="yes")  # type: ignore[call-overload]
