"""Search STAC items in a STAC API or in a static STAC catalog with one function.

A STAC API (its root has ``conformsTo`` or a ``search`` link) is searched by pystac-client.
A static catalog is walked with pystac and its items are filtered locally with the same
semantics: collections, bbox, intersects, datetime, the query extension and CQL2 filters.
"""

from __future__ import annotations

import json
import re
import socket
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import pystac
import shapely.geometry
from shapely.geometry.base import BaseGeometry

from .errors import EmptySearchError, SearchParameterError, StacSourceError

TIMEOUT = 30.0
DATETIME_FIELDS = {"datetime", "start_datetime", "end_datetime", "created", "updated"}
QUERY_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: bool(a == b),
    "neq": lambda a, b: bool(a != b),
    "lt": lambda a, b: bool(a < b),
    "lte": lambda a, b: bool(a <= b),
    "gt": lambda a, b: bool(a > b),
    "gte": lambda a, b: bool(a >= b),
    "in": lambda a, b: a in b,
    "startsWith": lambda a, b: str(a).startswith(str(b)),
    "endsWith": lambda a, b: str(a).endswith(str(b)),
    "contains": lambda a, b: str(b) in str(a),
}
_QUERY_STRING_OPS = {
    ">=": "gte",
    "<=": "lte",
    "<>": "neq",
    "!=": "neq",
    "=": "eq",
    ">": "gt",
    "<": "lt",
}
_DATE_ONLY = re.compile(r"^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?$")

DatetimeLike = str | datetime | date | Sequence[str | datetime | date | None] | None
Interval = tuple[datetime | None, datetime | None]


def search(
    source: str | Path,
    *,
    collections: str | Sequence[str] | None = None,
    bbox: Sequence[float] | None = None,
    intersects: dict[str, Any] | BaseGeometry | Any | None = None,
    datetime: DatetimeLike = None,
    query: dict[str, Any] | Sequence[str] | None = None,
    filter: dict[str, Any] | str | None = None,
    filter_lang: str | None = None,
    max_items: int | None = None,
    limit: int | None = None,
    sortby: str | Sequence[str] | Sequence[dict[str, str]] | None = None,
) -> pystac.ItemCollection:
    """Search items of a STAC API URL or a static catalog (path or URL).

    Raises ``StacSourceError`` when the source is unreachable or not STAC,
    ``SearchParameterError`` for invalid parameters and ``EmptySearchError`` when nothing
    matched. Without ``sortby``, static results are ordered by datetime then id, newest first.
    """
    href, root = read_root(source)
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
    )
    if is_api_root(root):
        items = _search_api(href, root, params)
    else:
        items = _search_static(href, root, params)
    if not items:
        raise EmptySearchError(
            f"no items in {href} matched the search ({params.describe()}); widen the filters "
            "(larger bbox, longer datetime range, looser query/filter) or check the "
            "collection ids"
        )
    return pystac.ItemCollection(items, clone_items=False)


# --- source access ---------------------------------------------------------------------------


def _is_url(source: str) -> bool:
    return re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", source) is not None and not source.startswith(
        "file://"
    )


def _read_url(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as resp:
            return bytes(resp.read())
    except urllib.error.HTTPError as exc:
        raise StacSourceError(
            f"STAC source {url} answered HTTP {exc.code} {exc.reason}; check the URL "
            "(it must point at a STAC API root or a catalog.json/collection.json)"
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(reason, (socket.timeout, TimeoutError)):
            why = f"no answer within {TIMEOUT:.0f} s (timeout)"
        elif isinstance(reason, ConnectionRefusedError):
            why = "connection refused"
        else:
            why = str(reason)
        raise StacSourceError(
            f"cannot reach STAC source {url}: {why}; check the URL and that the server is "
            "running and reachable from this machine"
        ) from exc


def _local_root(source: str | Path) -> Path:
    path = Path(str(source).removeprefix("file://")).expanduser()
    if path.is_dir():
        for name in ("catalog.json", "collection.json"):
            if (path / name).is_file():
                return path / name
        raise StacSourceError(
            f"{path} is a directory without catalog.json or collection.json; pass the path of "
            "the root catalog file or a STAC API URL"
        )
    if not path.is_file():
        raise StacSourceError(
            f"STAC source {path} does not exist; pass an existing catalog.json path or a "
            "STAC API URL"
        )
    return path


def read_root(source: str | Path) -> tuple[str, dict[str, Any]]:
    """Return the resolved href and the parsed JSON of a source's root document."""
    if isinstance(source, str) and _is_url(source):
        href, raw = source, _read_url(source)
    else:
        path = _local_root(source)
        href, raw = str(path.resolve()), path.read_bytes()
    try:
        root = json.loads(raw)
    except ValueError as exc:
        raise StacSourceError(
            f"{href} is not JSON, so not a STAC catalog or API; pass a STAC API root URL "
            "or a catalog.json/collection.json"
        ) from exc
    if not isinstance(root, dict) or not (
        is_api_root(root) or root.get("type") in ("Catalog", "Collection", "FeatureCollection")
    ):
        raise StacSourceError(
            f"{href} is not a STAC catalog, collection, item collection or API root "
            "(no 'type': 'Catalog'/'Collection' nor 'conformsTo'); pass the root of one"
        )
    return href, root


def is_api_root(root: dict[str, Any]) -> bool:
    """True when a root document is a STAC API landing page (conformance or search link)."""
    links = root.get("links") or []
    return "conformsTo" in root or any(
        isinstance(link, dict) and link.get("rel") == "search" for link in links
    )


# --- parameters ------------------------------------------------------------------------------


def _to_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def _parse_instant(value: str | datetime | date | None, *, end: bool) -> datetime | None:
    """Parse one end of an interval; a date-only value covers its whole year/month/day."""
    if value is None or value in ("", ".."):
        return None
    if isinstance(value, datetime):
        return _to_utc(value)
    if isinstance(value, date):
        return datetime.combine(value, time.max if end else time.min, timezone.utc)
    match = _DATE_ONLY.match(value.strip())
    if match:
        year, month, day = (int(g) if g else None for g in match.groups())
        assert year is not None
        first = date(year, month or 1, day or 1)
        if not end:
            return datetime.combine(first, time.min, timezone.utc)
        if day is not None:
            last = first
        elif month is not None:
            last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
        else:
            last = date(year, 12, 31)
        return datetime.combine(last, time.max, timezone.utc)
    try:
        return _to_utc(pystac.utils.str_to_datetime(value.strip()))
    except ValueError as exc:
        raise SearchParameterError(
            f"invalid datetime {value!r}; use RFC 3339 like '2024-05-01T00:00:00Z', a date "
            "like '2024-05', or a range 'start/end' with '..' for an open end"
        ) from exc


def parse_datetime_range(value: DatetimeLike) -> Interval | None:
    """Parse a STAC datetime parameter into an inclusive (start, end) UTC interval.

    Accepts a datetime, a date, 'a', 'a/b', '../b', 'a/..', or a pair (None for an open end).
    """
    if value is None:
        return None
    if isinstance(value, (datetime, date)):
        return _parse_instant(value, end=False), _parse_instant(value, end=True)
    parts: list[Any] = value.split("/") if isinstance(value, str) else list(value)
    if len(parts) == 1:
        if parts[0] in (None, "", ".."):
            raise SearchParameterError("datetime cannot be a single open end; give a date")
        return _parse_instant(parts[0], end=False), _parse_instant(parts[0], end=True)
    if len(parts) != 2:
        raise SearchParameterError(f"datetime {value!r} must be one instant or 'start/end'")
    start, stop = _parse_instant(parts[0], end=False), _parse_instant(parts[1], end=True)
    if start is None and stop is None:
        raise SearchParameterError("datetime cannot be open at both ends ('../..')")
    if start and stop and start > stop:
        raise SearchParameterError(f"datetime range {value!r} ends before it starts")
    return start, stop


def _query_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text.strip().strip("'\"")


def normalize_query(query: dict[str, Any] | Sequence[str] | None) -> dict[str, Any] | None:
    """Return a query-extension dict; strings like 'eo:cloud_cover<=20' are converted."""
    if query is None or isinstance(query, dict):
        result = query
    else:
        result = {}
        for text in query:
            for symbol, op in _QUERY_STRING_OPS.items():
                name, sep, value = text.partition(symbol)
                if sep:
                    result.setdefault(name.strip(), {})[op] = _query_value(value)
                    break
            else:
                raise SearchParameterError(f"query {text!r} has no comparison like 'a<=10'")
    for name, ops in (result or {}).items():
        if not isinstance(ops, dict) or not ops:
            raise SearchParameterError(
                f"query for {name!r} must map operators to values, like {{'lte': 20}}"
            )
        unknown = set(ops) - set(QUERY_OPS)
        if unknown:
            raise SearchParameterError(
                f"unknown query operator(s) {sorted(unknown)} for {name!r}; use {list(QUERY_OPS)}"
            )
    return result


def parse_cql2(filter: dict[str, Any] | str, filter_lang: str | None = None) -> Any:
    """Parse a cql2-json (dict or JSON text) or cql2-text filter into a ``cql2.Expr``."""
    import cql2

    if filter_lang not in (None, "cql2-json", "cql2-text"):
        raise SearchParameterError(f"filter_lang {filter_lang!r} must be cql2-json or cql2-text")
    try:
        if isinstance(filter, dict):
            return cql2.parse_json(json.dumps(filter))
        if filter_lang == "cql2-json":
            return cql2.parse_json(filter)
        return cql2.Expr(filter)
    except Exception as exc:
        raise SearchParameterError(f"invalid CQL2 filter {filter!r}: {exc}") from exc


def _geometry(value: Any) -> BaseGeometry:
    if isinstance(value, BaseGeometry):
        return value
    if isinstance(value, str):
        value = json.loads(value)
    try:
        return shapely.geometry.shape(value)
    except Exception as exc:
        raise SearchParameterError(
            f"intersects must be a GeoJSON geometry or shapely geometry: {exc}"
        ) from exc


def _bbox_geometry(bbox: Sequence[float]) -> BaseGeometry:
    values = [float(v) for v in bbox]
    if len(values) == 6:
        values = [values[0], values[1], values[3], values[4]]
    if len(values) != 4 or values[0] > values[2] or values[1] > values[3]:
        raise SearchParameterError(
            f"bbox {list(bbox)} must be [west, south, east, north] with west <= east and "
            "south <= north"
        )
    return shapely.geometry.box(*values)


def normalize_sortby(
    sortby: str | Sequence[str] | Sequence[dict[str, str]] | None,
) -> list[dict[str, str]] | None:
    """Return sortby as [{'field', 'direction'}]; accepts '-datetime,+id' or lists."""
    if sortby is None:
        return None
    parts: Iterable[Any] = sortby.split(",") if isinstance(sortby, str) else sortby
    result = []
    for part in parts:
        if isinstance(part, dict):
            field, direction = part.get("field", ""), part.get("direction", "asc")
        else:
            part = str(part).strip()
            direction = "desc" if part.startswith("-") else "asc"
            field = part.lstrip("+-")
        if not field or direction not in ("asc", "desc"):
            raise SearchParameterError(f"invalid sortby entry {part!r}")
        result.append({"field": field, "direction": direction})
    return result


@dataclass(frozen=True)
class SearchParams:
    """Validated search parameters, shared by the API and static paths."""

    collections: list[str] | None
    bbox: list[float] | None
    intersects: BaseGeometry | None
    datetime: Interval | None
    datetime_text: Any
    query: dict[str, Any] | None
    filter: Any  # a parsed cql2.Expr
    sortby: list[dict[str, str]] | None
    max_items: int | None
    limit: int | None

    @classmethod
    def build(
        cls,
        collections: str | Sequence[str] | None,
        bbox: Sequence[float] | None,
        intersects: Any,
        datetime: DatetimeLike,
        query: Any,
        filter: Any,
        filter_lang: str | None,
        sortby: Any,
        max_items: int | None,
        limit: int | None,
    ) -> SearchParams:
        """Validate and normalise raw search arguments."""
        if isinstance(collections, str):
            collections = [c.strip() for c in collections.split(",") if c.strip()]
        if max_items is not None and max_items < 1:
            raise SearchParameterError(f"max_items must be >= 1, got {max_items}")
        if limit is not None and limit < 1:
            raise SearchParameterError(f"limit must be >= 1, got {limit}")
        if bbox is not None:
            _bbox_geometry(bbox)
        return cls(
            collections=list(collections) if collections is not None else None,
            bbox=[float(v) for v in bbox] if bbox is not None else None,
            intersects=_geometry(intersects) if intersects is not None else None,
            datetime=parse_datetime_range(datetime),
            datetime_text=datetime,
            query=normalize_query(query),
            filter=parse_cql2(filter, filter_lang) if filter is not None else None,
            sortby=normalize_sortby(sortby),
            max_items=max_items,
            limit=limit,
        )

    def describe(self) -> str:
        """Human-readable list of the filters that were applied."""
        parts = []
        for name in ("collections", "bbox", "query", "max_items"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name}={value}")
        if self.intersects is not None:
            parts.append(f"intersects={self.intersects.wkt[:80]}")
        if self.datetime_text is not None:
            parts.append(f"datetime={self.datetime_text!r}")
        if self.filter is not None:
            parts.append(f"filter={self.filter.to_text()!r}")
        return ", ".join(parts) or "no filters"


# --- STAC API --------------------------------------------------------------------------------


_EXTENSIONS = {"query": "#query", "filter": "#filter", "sortby": "#sort"}


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


def _search_api(url: str, root: dict[str, Any], params: SearchParams) -> list[pystac.Item]:
    import pystac_client
    import requests
    from pystac_client.exceptions import APIError
    from pystac_client.warnings import DoesNotConformTo

    _check_conformance(url, root, params)

    def fmt(dt: datetime | None) -> str:
        return (
            ".." if dt is None else dt.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
        )

    query, cql2_json = params.query, params.filter.to_json() if params.filter else None
    if query and _conforms(root, "#filter"):
        # Filters are more widely implemented than every query operator (e.g. "in").
        parts = [query_to_cql2(query), *([cql2_json] if cql2_json else [])]
        query, cql2_json = None, parts[0] if len(parts) == 1 else {"op": "and", "args": parts}
    kwargs: dict[str, Any] = {
        "collections": params.collections,
        "bbox": params.bbox,
        "intersects": shapely.geometry.mapping(params.intersects) if params.intersects else None,
        "datetime": "/".join(map(fmt, params.datetime)) if params.datetime else None,
        "query": query,
        "filter": cql2_json,
        "filter_lang": "cql2-json" if cql2_json is not None else None,
        "sortby": params.sortby,
        "max_items": params.max_items,
        "limit": params.limit,
    }
    try:
        with warnings.catch_warnings():
            # Conformance was checked above against any version of each extension.
            warnings.simplefilter("ignore", DoesNotConformTo)
            client = pystac_client.Client.open(url, timeout=TIMEOUT)
            return list(client.search(**kwargs).items())
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


# --- static catalog --------------------------------------------------------------------------


def _walk(catalog: pystac.Catalog, wanted: set[str] | None) -> Iterator[pystac.Item]:
    skip = (
        wanted is not None and isinstance(catalog, pystac.Collection) and (catalog.id not in wanted)
    )
    if not skip:
        yield from catalog.get_items()
    for child in catalog.get_children():
        yield from _walk(child, wanted)


def _static_items(href: str, root: dict[str, Any], wanted: set[str] | None) -> list[pystac.Item]:
    try:
        if root.get("type") == "FeatureCollection":
            return list(pystac.ItemCollection.from_file(href))
        catalog = pystac.read_file(href)
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
    return (_to_utc(start) if start else None, _to_utc(end) if end else None)


def item_geometry(item: pystac.Item) -> BaseGeometry | None:
    """Item footprint from its geometry, else from its bbox."""
    if item.geometry:
        return shapely.geometry.shape(item.geometry)
    if item.bbox:
        return _bbox_geometry(item.bbox)
    return None


def _property(item: pystac.Item, name: str) -> Any:
    name = name.removeprefix("properties.")
    if name == "datetime":
        return _to_utc(item.datetime) if item.datetime else None
    if name in item.properties:
        value = item.properties[name]
    elif name == "id":
        value = item.id
    elif name == "collection":
        value = item_collection_id(item)
    else:
        return None
    if name in DATETIME_FIELDS and isinstance(value, str):
        return _to_utc(pystac.utils.str_to_datetime(value))
    return value


def _compare_value(name: str, value: Any) -> Any:
    if name.removeprefix("properties.") in DATETIME_FIELDS:
        if isinstance(value, str):
            return _to_utc(pystac.utils.str_to_datetime(value))
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
    areas = [g for g in (params.bbox and _bbox_geometry(params.bbox), params.intersects) if g]

    def matches(item: pystac.Item) -> bool:
        if wanted is not None and item_collection_id(item) not in wanted:
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


def _search_static(href: str, root: dict[str, Any], params: SearchParams) -> list[pystac.Item]:
    wanted = set(params.collections) if params.collections is not None else None
    matches = item_matcher(params)
    found = sort_items([i for i in _static_items(href, root, wanted) if matches(i)], params.sortby)
    return found[: params.max_items] if params.max_items is not None else found
