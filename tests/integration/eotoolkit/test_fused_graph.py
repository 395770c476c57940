"""A composite over load -> mask_clouds -> index runs one task per output chunk and period.

The synthetic collection is read over HTTP; the fused graph's pixels are compared with the
same chain computed with fusion turned off (``eotoolkit.fuse: false``), which runs every read,
mask and index as a task of its own.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pystac
import pytest
import xarray as xr
from dask.callbacks import Callback
from distributed import Client

import eotoolkit
from tests.support.dask_clusters import local_cluster

CHUNK = 64
RESAMPLING = {"B04": "average", "B08": "average", "SCL": "nearest"}


def _monthly_ndvi(items: list[pystac.Item], stat: str = "median") -> xr.DataArray:
    ds = eotoolkit.load(
        items, bands=["B04", "B08", "SCL"], resolution=20, groupby="solar_day",
        chunks=CHUNK, resampling=RESAMPLING,
    )  # fmt: skip
    masked = eotoolkit.mask_clouds(ds, scl="SCL", classes=(0, 3, 8, 9, 10))
    return eotoolkit.composite(eotoolkit.index(masked, "NDVI"), freq="1MS", stat=stat)


class _TaskCount(Callback):
    """Counts the tasks the threaded scheduler runs, by the name of their key."""

    def __init__(self) -> None:
        super().__init__()
        self.kinds: Counter[str] = Counter()

    def _pretask(self, key: Any, dsk: Any, state: Any) -> None:
        name = key[0] if isinstance(key, tuple) else str(key)
        self.kinds[name.split("-")[0]] += 1


def _optimized_tasks(arr: Any) -> int:
    (opt,) = dask.optimize(arr)
    return len(dict(opt.__dask_graph__()))


def test_chain_is_one_task_per_chunk_and_period_and_the_pixels_are_the_same(
    s2_items: list[pystac.Item],
) -> None:
    fused = _monthly_ndvi(s2_items)
    with dask.config.set({"eotoolkit.fuse": False}):
        separate = _monthly_ndvi(s2_items)
    chunks = fused.data.npartitions
    assert _optimized_tasks(fused.data) <= 2 * chunks
    assert _optimized_tasks(separate.data) > 3 * chunks  # reads, masks and indices on their own
    with _TaskCount() as count:
        values = fused.values
    assert sum(count.kinds.values()) <= 2 * chunks + 1, count.kinds  # + xarray's finalize
    assert "load" not in count.kinds
    np.testing.assert_array_equal(values, separate.values)
    assert np.isfinite(values).any()


def test_write_of_the_fused_chain_is_at_most_three_tasks_per_chunk(
    s2_items: list[pystac.Item], tmp_path: Path
) -> None:
    monthly = _monthly_ndvi(s2_items)
    chunks = monthly.data.npartitions
    with _TaskCount() as count:
        eotoolkit.to_zarr(monthly.rename("ndvi").to_dataset(), str(tmp_path / "out.zarr"))
    assert sum(count.kinds.values()) <= 3 * chunks + 1, count.kinds
    written = eotoolkit.open_zarr(str(tmp_path / "out.zarr"))["ndvi"].values
    np.testing.assert_array_equal(written, monthly.values)


@pytest.mark.parametrize("stat", ["mean", "q0.9", "count"])
def test_every_stat_gives_the_same_pixels_fused(s2_items: list[pystac.Item], stat: str) -> None:
    fused = _monthly_ndvi(s2_items, stat)
    with dask.config.set({"eotoolkit.fuse": False}):
        separate = _monthly_ndvi(s2_items, stat)
    np.testing.assert_array_equal(fused.values, separate.values)


def test_input_whose_blocks_share_tasks_keeps_its_graph(s2_items: list[pystac.Item]) -> None:
    """A chain with a rechunk (blocks made from several read tasks) is not fused, and gives the
    composite numpy gives."""
    ds = eotoolkit.load(
        s2_items, bands=["B04", "B08"], resolution=20, chunks=CHUNK, resampling="average"
    )
    ndvi = eotoolkit.index(ds, "NDVI").chunk({"x": CHUNK // 2})
    monthly = eotoolkit.composite(ndvi, freq="1MS", stat="max")
    graph = dict(monthly.data.__dask_graph__())
    names = {k[0].split("-")[0] for k in graph if isinstance(k, tuple)}
    assert "load" in names
    expected = ndvi.resample(time="1MS").max().values
    np.testing.assert_allclose(monthly.values, expected, rtol=0, atol=0, equal_nan=True)


def test_fused_tasks_run_on_a_distributed_cluster(s2_items: list[pystac.Item]) -> None:
    expected = _monthly_ndvi(s2_items).values
    with local_cluster() as cluster, Client(cluster) as client:
        got = client.compute(_monthly_ndvi(s2_items).data).result()
    np.testing.assert_array_equal(got, expected)
