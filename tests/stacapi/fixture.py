"""Session-scoped pytest fixtures that run a real STAC API for the whole test session.

Register with ``pytest_plugins = ["tests.stacapi.fixture"]``. Fixtures:

- ``stac_api``: a :class:`StacApi` (``url``, ``dsn``, ``load(...)``), started once per session
  and torn down at its end. With env ``CI`` set, a server that cannot start fails the tests;
  locally a non-root user without the system packages gets a skip with the reason.
- ``stac_api_url``: the root URL of that API.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.stacapi.install import is_root
from tests.stacapi.load import StacSource, load_stac
from tests.stacapi.server import ServerInfo, start, stop


@dataclass(frozen=True)
class StacApi:
    """A running STAC API backed by pgstac."""

    info: ServerInfo

    @property
    def url(self) -> str:
        """Root URL of the STAC API."""
        return self.info.url

    @property
    def dsn(self) -> str:
        """Connection string of the pgstac database behind it."""
        return self.info.dsn

    def load(self, source: StacSource, *, collection_id: str | None = None) -> list[str]:
        """Upsert a pystac Catalog / ItemCollection / items into the API; return collection ids."""
        return load_stac(self.dsn, source, collection_id=collection_id)


class _Shared:
    """The one server of this process, shared if the fixture is registered twice."""

    info: ServerInfo | None = None
    users = 0


def _acquire() -> ServerInfo:
    if _Shared.info is None:
        try:
            _Shared.info = start()
        except Exception as exc:
            reason = f"STAC API server could not start: {type(exc).__name__}: {exc}"
            if os.environ.get("CI") or is_root():
                pytest.fail(reason, pytrace=False)
            pytest.skip(f"{reason} (not root: install postgresql-15-postgis-3 to run these tests)")
        print(
            f"\nSTAC API up at {_Shared.info.url} in {_Shared.info.started_in:.1f} s",
            file=sys.stderr,
        )
    _Shared.users += 1
    return _Shared.info


def _release() -> None:
    _Shared.users -= 1
    if _Shared.users == 0 and _Shared.info is not None:
        state_dir, _Shared.info = Path(_Shared.info.state_dir), None
        stop(state_dir)


@pytest.fixture(scope="session")
def stac_api() -> Iterator[StacApi]:
    """Start PostgreSQL + pgstac + stac-fastapi-pgstac once per session."""
    info = _acquire()
    try:
        yield StacApi(info)
    finally:
        _release()


@pytest.fixture(scope="session")
def stac_api_url(stac_api: StacApi) -> str:
    """Root URL of the session's STAC API."""
    return stac_api.url
