"""Where a STAC source lives: read its root document and tell a STAC API from a static catalog."""

from __future__ import annotations

import json
import re
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ..errors import StacSourceError, StorageNotFoundError
from ..stores import storage

TIMEOUT = 30.0


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


def _read_object(url: str, storage_options: storage.StorageOptions | None) -> tuple[str, bytes]:
    """(href, bytes) of the root document at an object-store URL (``s3://``, or another fsspec
    URL); a URL not ending in .json names the catalog.json or collection.json under it."""
    io = storage.stac_io(storage_options)
    if not url.endswith(".json"):
        base = url.rstrip("/")
        for name in ("catalog.json", "collection.json"):
            try:
                return f"{base}/{name}", str(io.read_text(f"{base}/{name}")).encode()
            except (StorageNotFoundError, FileNotFoundError):
                continue
    return url, str(io.read_text(url)).encode()


def read_root(
    source: str | Path, storage_options: storage.StorageOptions | None = None
) -> tuple[str, dict[str, Any]]:
    """Return the resolved href and the parsed JSON of a source's root document."""
    if isinstance(source, str) and _is_url(source) and not source.startswith(("http:", "https:")):
        href, raw = _read_object(source, storage_options)
    elif isinstance(source, str) and _is_url(source):
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
