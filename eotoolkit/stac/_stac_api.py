"""Searching a STAC API with pystac-client, checking the API supports what was asked."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any

import shapely.geometry

from ..errors import SearchParameterError, StacSourceError
from ._search_params import Interval, SearchParams, split_interval
from ._stac_source import TIMEOUT

_EXTENSIONS = {"query": "#query", "filter": "#filter", "sortby": "#sort"}
#: A search of a STAC API over a datetime range longer than two of these pieces is cut into
#: pieces this long (at most SPLIT_MAX of them), searched by SPLIT_THREADS threads at a time.
SPLIT_DAYS = 90
SPLIT_MAX = 64
SPLIT_THREADS = 4


_CQL2_OPS = {"eq": "=", "neq": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">=", "in": "in"}
_LIKE = {"startsWith": "{}%", "endsWith": "%{}", "contains": "%{}%"}


def query_to_cql2(query: dict[str, Any]) -> dict[str, Any]:
    """Translate a query-extension dict into an equivalent cql2-json expression."""
    args: list[dict[str, Any]] = []
    for name, ops in query.items():
        prop = {"property": name}
        for op, value in ops.items():
            if op in _LIKE:
                text = str(value).replace("\\", "\\\\").replace("%", "\\%")
                pattern = _LIKE[op].format(text.replace("_", "\\_"))
                args.append({"op": "like", "args": [prop, pattern]})
            else:
                args.append({"op": _CQL2_OPS[op], "args": [prop, value]})
    return args[0] if len(args) == 1 else {"op": "and", "args": args}


def _conforms(root: dict[str, Any], suffix: str) -> bool:
    return any(str(c).endswith(suffix) for c in root.get("conformsTo") or [])


def _check_conformance(url: str, root: dict[str, Any], params: SearchParams) -> None:
    for name, suffix in _EXTENSIONS.items():
        if name == "query" and _conforms(root, "#filter"):
            continue
        if getattr(params, name) is not None and not _conforms(root, suffix):
            raise SearchParameterError(
                f"STAC API {url} does not advertise the {suffix[1:]} extension in conformsTo, "
                f"so it would ignore {name}=; drop {name} or search an API that supports it"
            )


def newest_first(params: SearchParams) -> bool | None:
    """The time order of the results of one search: True newest first (the order STAC APIs
    such as pgstac and stac-server give without sortby), False oldest first, None when sortby
    orders by something else first."""
    if not params.sortby:
        return True
    first = params.sortby[0]
    if first["field"].removeprefix("properties.") != "datetime":
        return None
    return first["direction"] == "desc"


def search_pieces(params: SearchParams) -> list[Interval | None]:
    """The datetime ranges a search runs as, in the order of its results: the whole range, or
    consecutive pieces of a long bounded one (never for ``ids``, ``max_items`` or an order not
    by time: each piece would fetch up to ``max_items`` of its own)."""
    order = newest_first(params)
    single = params.ids is not None or params.max_items is not None or order is None
    if params.datetime is None or single:
        return [params.datetime]
    pieces: list[Interval | None] = list(
        split_interval(params.datetime, timedelta(days=SPLIT_DAYS), SPLIT_MAX)
    )
    return pieces[::-1] if order else pieces


def merge_pieces(
    results: Sequence[Sequence[Any]], key: Callable[[Any], str], max_items: int | None
) -> list[Any]:
    """The results of the pieces of a search, in the pieces' order, each id kept once (where it
    comes first: an item whose time range spans two pieces is found by both), then cut to
    ``max_items``."""
    seen: set[str] = set()
    out = []
    for result in results:
        for item in result:
            k = key(item)
            if k not in seen:
                seen.add(k)
                out.append(item)
    return out[:max_items] if max_items is not None else out


def _fmt(dt: datetime | None) -> str:
    return ".." if dt is None else dt.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _search_api(
    url: str, root: dict[str, Any], params: SearchParams, as_dicts: bool = False
) -> list[Any]:
    """The items of a STAC API search: pystac Items, or item dicts (no pystac objects) with
    ``as_dicts``. A long datetime range is searched in pieces on threads, merged in order."""
    import threading

    import pystac_client
    import requests
    from pystac_client.exceptions import APIError
    from pystac_client.warnings import DoesNotConformTo

    _check_conformance(url, root, params)

    query, cql2_json = params.query, params.filter.to_json() if params.filter else None
    if query and _conforms(root, "#filter"):
        # Filters are more widely implemented than every query operator (e.g. "in").
        parts = [query_to_cql2(query), *([cql2_json] if cql2_json else [])]
        query, cql2_json = None, parts[0] if len(parts) == 1 else {"op": "and", "args": parts}
    kwargs: dict[str, Any] = {
        "collections": params.collections,
        "ids": params.ids,
        "bbox": params.bbox,
        "intersects": shapely.geometry.mapping(params.intersects) if params.intersects else None,
        "query": query,
        "filter": cql2_json,
        "filter_lang": "cql2-json" if cql2_json is not None else None,
        "sortby": params.sortby,
        "max_items": params.max_items,
        "limit": params.limit,
    }
    clients = threading.local()

    def run(piece: Interval | None) -> list[Any]:
        client = getattr(clients, "client", None)
        if client is None:  # one client (one HTTP session) per thread
            client = clients.client = pystac_client.Client.open(url, timeout=TIMEOUT)
        found = client.search(**kwargs, datetime="/".join(map(_fmt, piece)) if piece else None)
        return list(found.items_as_dicts() if as_dicts else found.items())

    pieces = search_pieces(params)
    try:
        with warnings.catch_warnings():
            # Conformance was checked above against any version of each extension.
            warnings.simplefilter("ignore", DoesNotConformTo)
            if len(pieces) == 1:
                return run(pieces[0])
            with ThreadPoolExecutor(min(SPLIT_THREADS, len(pieces))) as pool:
                results = list(pool.map(run, pieces))
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise StacSourceError(
            f"cannot reach STAC API {url}: {exc}; check the URL and that the server is running"
        ) from exc
    except APIError as exc:
        status = getattr(exc, "status_code", None)
        error = SearchParameterError if status and 400 <= status < 500 else StacSourceError
        raise error(
            f"STAC API {url} rejected the search (HTTP {status}; {params.describe()}): {exc}; "
            "check the parameters against the API's conformance classes and queryables"
        ) from exc
    key: Callable[[Any], str] = (lambda d: str(d.get("id"))) if as_dicts else (lambda i: i.id)
    return merge_pieces(results, key, params.max_items)
