"""The process-wide pool of open datasets shared by threads, on real GeoTIFF files."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from eotoolkit._handles import HandlePool


def _tif(path: Path) -> str:
    with rasterio.open(
        path, "w", driver="GTiff", height=4, width=4, count=1, dtype="uint8",
        crs="EPSG:32631", transform=from_origin(0, 40, 10, 10),
    ) as dst:  # fmt: skip
        dst.write(np.arange(16, dtype=np.uint8).reshape(4, 4), 1)
    return str(path)


@pytest.fixture()
def files(tmp_path: Path) -> list[str]:
    return [_tif(tmp_path / f"f{i}.tif") for i in range(3)]


def test_a_handle_passes_from_thread_to_thread(files: list[str]) -> None:
    pool = HandlePool(8)
    opened: list[rasterio.DatasetReader] = []

    def opener() -> rasterio.DatasetReader:
        opened.append(rasterio.open(files[0]))
        return opened[-1]

    seen = []

    def use() -> None:
        with pool.take("a", opener) as src:
            seen.append(src)
            assert src.read(1)[1, 1] == 5

    for _ in range(3):  # one after the other, each in a new thread
        t = threading.Thread(target=use)
        t.start()
        t.join()
    assert len(opened) == 1 and seen == [opened[0]] * 3 and pool.idle() == 1


def test_concurrent_users_get_their_own_handle(files: list[str]) -> None:
    pool = HandlePool(8)
    with (
        pool.take("a", lambda: rasterio.open(files[0])) as first,
        pool.take("a", lambda: rasterio.open(files[0])) as second,
    ):
        assert first is not second
    assert pool.idle() == 2


def test_idle_handles_are_bounded_and_the_oldest_closed(files: list[str]) -> None:
    pool = HandlePool(2)
    handles = []
    for i, f in enumerate(files):
        with pool.take(i, lambda f=f: rasterio.open(f)) as src:
            handles.append(src)
    assert pool.idle() == 2
    assert handles[0].closed and not handles[1].closed and not handles[2].closed


def test_a_failed_read_closes_its_handle(files: list[str]) -> None:
    pool = HandlePool(8)
    with pytest.raises(RuntimeError), pool.take("a", lambda: rasterio.open(files[0])) as src:
        raise RuntimeError("corrupt block")
    assert src.closed and pool.idle() == 0


def test_discard_closes_matching_idle_handles(files: list[str]) -> None:
    pool = HandlePool(8)
    for f in files:
        with pool.take((f, None), lambda f=f: rasterio.open(f)) as src:
            last = src
    pool.discard(lambda key: key[0] == files[2])  # type: ignore[index]
    assert last.closed and pool.idle() == 2
