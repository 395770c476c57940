"""Searching a STAC API with pystac-client, checking the API supports what was asked."""

from __future__ import annotations

import warnings
from datetime import datetime, timezone
from typing import Any

import pystac
import shapely.geometry

from ._search_params import SearchParams
from ._stac_source import TIMEOUT
from .errors import SearchParameterError, StacSourceError

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
        "ids": params.ids,
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
