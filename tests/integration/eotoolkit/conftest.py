"""Shared fixtures: a synthetic Sentinel-2 collection served over HTTP with Range support."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pystac
import pytest
from RangeHTTPServer import RangeRequestHandler

from eotoolkit._reader import clear_cache
from eotoolkit.synthetic.s2 import write_s2_collection
from tests.support.s2_collection import DATES, SIZE


class _QuietHandler(RangeRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def serve() -> Iterator[Callable[[Path], str]]:
    """Serve a directory on a free 127.0.0.1 port; returns its base URL."""
    servers: list[ThreadingHTTPServer] = []

    def start(root: Path) -> str:
        handler = functools.partial(_QuietHandler, directory=str(root))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def s2_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-tile, 3-date synthetic collection on disk (128 px tiles at 10 m)."""
    root = tmp_path_factory.mktemp("s2")
    write_s2_collection(root, tiles=2, dates=DATES, size=SIZE, seed=1)
    return root


@pytest.fixture(scope="session")
def s2_url(s2_root: Path, serve: Callable[[Path], str]) -> str:
    """Base URL of the synthetic collection served over HTTP."""
    return serve(s2_root)


@pytest.fixture()
def s2_items(s2_url: str) -> list[pystac.Item]:
    """The synthetic items read over HTTP (asset hrefs are http URLs)."""
    clear_cache()
    catalog = pystac.Catalog.from_file(f"{s2_url}/catalog.json")
    return list(catalog.get_items(recursive=True))
