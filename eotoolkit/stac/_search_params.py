"""Search parameters, parsed and validated once for both the STAC API and static catalogs."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import pystac
import shapely.geometry
from shapely.geometry.base import BaseGeometry

from ..errors import SearchParameterError

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


def to_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def _parse_instant(value: str | datetime | date | None, *, end: bool) -> datetime | None:
    """Parse one end of an interval; a date-only value covers its whole year/month/day."""
    if value is None or value in ("", ".."):
        return None
    if isinstance(value, datetime):
        return to_utc(value)
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
        return to_utc(pystac.utils.str_to_datetime(value.strip()))
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


def bbox_geometry(bbox: Sequence[float]) -> BaseGeometry:
    """The search area of a STAC ``bbox`` (4 or 6 numbers, lon/lat), checked as ``load`` does."""
    try:
        values = [float(v) for v in bbox]
    except (TypeError, ValueError):
        raise SearchParameterError(
            f"bbox {bbox!r} must be 4 numbers [west, south, east, north] in lon/lat degrees"
        ) from None
    if len(values) == 6:
        values = [values[0], values[1], values[3], values[4]]
    if len(values) != 4 or values[0] > values[2] or values[1] > values[3]:
        raise SearchParameterError(
            f"bbox {list(bbox)} must be [west, south, east, north] with west <= east and "
            "south <= north"
        )
    if not all(math.isfinite(v) for v in values):
        raise SearchParameterError(f"bbox {list(bbox)}: all values must be finite numbers")
    if values[1] < -90 or values[3] > 90:
        raise SearchParameterError(
            f"bbox {list(bbox)}: latitudes must be within [-90, 90] (bbox is "
            "[west, south, east, north] in lon/lat degrees)"
        )
    if values[0] < -360 or values[2] > 360 or values[2] - values[0] > 360:
        raise SearchParameterError(
            f"bbox {list(bbox)}: longitudes must be within [-180, 180] (east up to 360)"
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
    ids: list[str] | None
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
        ids: str | Sequence[str] | None = None,
    ) -> SearchParams:
        """Validate and normalise raw search arguments."""
        if isinstance(collections, str):
            collections = [c.strip() for c in collections.split(",") if c.strip()]
        if isinstance(ids, str):
            ids = [i.strip() for i in ids.split(",") if i.strip()]
        if ids is not None and (not ids or not all(isinstance(i, str) and i for i in ids)):
            raise SearchParameterError(f"ids must be a non-empty list of item ids, got {ids!r}")
        if max_items is not None and max_items < 1:
            raise SearchParameterError(f"max_items must be >= 1, got {max_items}")
        if limit is not None and limit < 1:
            raise SearchParameterError(f"limit must be >= 1, got {limit}")
        if bbox is not None:
            bbox_geometry(bbox)
        return cls(
            collections=list(collections) if collections is not None else None,
            ids=list(ids) if ids is not None else None,
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
        for name in ("collections", "ids", "bbox", "query", "max_items"):
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


def split_interval(interval: Interval | None, piece: timedelta, max_pieces: int) -> list[Interval]:
    """A bounded interval longer than two pieces of length ``piece`` cut into consecutive,
    disjoint pieces (oldest first; each ends a microsecond before the next starts, the last at
    the interval's end), at most ``max_pieces`` of them; any other interval as it is, alone."""
    if interval is None:
        return []
    start, end = interval
    if start is None or end is None or max_pieces < 2 or end - start <= 2 * piece:
        return [interval]
    count = min(max_pieces, math.ceil((end - start) / piece))
    step = (end - start) / count
    edges = [start + i * step for i in range(count)] + [end]
    tick = timedelta(microseconds=1)
    return [(edges[i], edges[i + 1] - tick if i + 1 < count else end) for i in range(count)]
