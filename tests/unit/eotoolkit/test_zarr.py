"""Resumable, georeferenced Zarr writes: interruption, resume, layout checks."""

from __future__ import annotations

import json
from itertools import product
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import rioxarray  # noqa: F401
import xarray as xr
from dask.callbacks import Callback

import eotoolkit
from eotoolkit.errors import (
    IncompleteStoreError,
    InvalidParameterError,
    StoreExistsError,
    StoreLayoutError,
)
from eotoolkit.stores.zarr_store import batch_boxes, store_status

FAIL_AFTER = 12  # blocks produced before the simulated crash


def _dataset(calls: list[tuple[int, ...]], fail: dict[str, bool]) -> xr.Dataset:
    base = np.arange(4 * 32 * 48, dtype=np.float32).reshape(4, 32, 48)
    base[0, :3, :3] = np.nan

    def produce(block: np.ndarray, block_info: Any = None) -> np.ndarray:
        loc = tuple(block_info[0]["chunk-location"])
        calls.append(loc)
        if fail["on"] and len(calls) > FAIL_AFTER:
            raise RuntimeError("simulated worker crash")
        return block * 2

    data = da.from_array(base, chunks=(1, 16, 16)).map_blocks(produce, dtype=np.float32)
    ds = xr.Dataset(
        {
            "ndvi": (("time", "y", "x"), data),
            "count": (("time", "y", "x"), (data > 10).astype("u1")),
        },
        coords={
            "time": pd.date_range("2024-01-01", periods=4, freq="MS"),
            "y": 5_800_000 - 10 * np.arange(32) - 5.0,
            "x": 300_000 + 10 * np.arange(48) + 5.0,
        },
    )
    return ds.rio.write_crs("EPSG:32631")


def test_interrupted_write_resumes_missing_regions_only(tmp_path: Path) -> None:
    calls: list[tuple[int, ...]] = []
    fail = {"on": True}
    store = str(tmp_path / "out.zarr")
    with dask.config.set(scheduler="synchronous"):
        with pytest.raises(RuntimeError, match="simulated worker crash"):
            eotoolkit.to_zarr(_dataset(calls, fail), store)
        assert store_status(store) == "incomplete"
        with pytest.raises(IncompleteStoreError, match="mode='resume'"):
            eotoolkit.open_zarr(store)
        with pytest.raises(StoreExistsError, match="incomplete"):
            eotoolkit.to_zarr(_dataset(calls, fail), store)
        done_before = {p.name for p in (tmp_path / "out.zarr" / "_eotoolkit_done").iterdir()}
        assert 0 < len(done_before) < 2 * 4 * 2 * 3
        chunk_files = {p: p.stat().st_mtime_ns for p in (tmp_path / "out.zarr").glob("*/c/*/*/*")}
        fail["on"] = False
        calls.clear()
        eotoolkit.to_zarr(_dataset(calls, fail), store, mode="resume")
    # the blocks computed on resume are exactly those lacking a completion record
    everything = {(t, y, x) for t in range(4) for y in range(2) for x in range(3)}
    missing = {
        loc
        for loc in everything
        if any(f"{v}.{loc[0]}.{loc[1]}.{loc[2]}" not in done_before for v in ("ndvi", "count"))
    }
    assert set(calls) == missing
    # regions written before the crash are not rewritten
    written = {f"{p.parts[-5]}.{p.parts[-3]}.{p.parts[-2]}.{p.parts[-1]}" for p in chunk_files}
    assert written == done_before
    assert all(p.stat().st_mtime_ns == m for p, m in chunk_files.items())
    assert len(list((tmp_path / "out.zarr").glob("*/c/*/*/*"))) == 2 * len(everything)
    reference = str(tmp_path / "ref.zarr")
    eotoolkit.to_zarr(_dataset([], {"on": False}), reference)
    got, ref = eotoolkit.open_zarr(store), eotoolkit.open_zarr(reference)
    xr.testing.assert_identical(got.load(), ref.load())
    expected = np.arange(4 * 32 * 48, dtype=np.float32).reshape(4, 32, 48) * 2
    expected[0, :3, :3] = np.nan
    np.testing.assert_array_equal(got.ndvi.values, expected)
    assert got.rio.crs.to_epsg() == 32631
    assert store_status(store) == "complete"
    assert not (tmp_path / "out.zarr" / "_eotoolkit_done").exists()


def test_zarr_format_chunks_and_consolidated(tmp_path: Path) -> None:
    store = tmp_path / "a.zarr"
    eotoolkit.to_zarr(_dataset([], {"on": False}), str(store))
    meta = json.loads((store / "zarr.json").read_text())
    assert meta["zarr_format"] == 3
    assert meta.get("consolidated_metadata")
    arr = json.loads((store / "ndvi" / "zarr.json").read_text())
    assert arr["chunk_grid"]["configuration"]["chunk_shape"] == [1, 16, 16]


def test_existing_store_with_other_layout_is_refused(tmp_path: Path) -> None:
    store = str(tmp_path / "b.zarr")
    ds = _dataset([], {"on": False})
    eotoolkit.to_zarr(ds, store)
    other = ds.isel(x=slice(0, 32))
    for mode in ("w-", "resume"):
        with pytest.raises(StoreLayoutError, match=r"another layout.*mode='w'"):
            eotoolkit.to_zarr(other, store, mode=mode)
    with pytest.raises(StoreExistsError, match="complete"):
        eotoolkit.to_zarr(ds, store)
    eotoolkit.to_zarr(ds, store, mode="resume")  # complete and same layout: nothing to do
    eotoolkit.to_zarr(other, store, mode="w")
    assert eotoolkit.open_zarr(store).sizes["x"] == 32


def test_fsspec_url_and_group() -> None:
    store = "memory://eotoolkit-test/c.zarr"
    ds = _dataset([], {"on": False})
    eotoolkit.to_zarr(ds.ndvi.rename("ndvi"), store, group="monthly")
    back = eotoolkit.open_zarr(store, group="monthly")
    np.testing.assert_array_equal(back.ndvi.values, ds.ndvi.values)
    assert back.rio.crs.to_epsg() == 32631


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("afile", "exists and is not a directory"),
        ("afile/out.zarr", "is not a writable directory"),
        ("/proc/out.zarr", "/proc is not a writable directory"),
    ],
)
def test_destination_that_cannot_be_a_store_is_named(
    tmp_path: Path, where: str, message: str
) -> None:
    (tmp_path / "afile").write_text("not a store\n")
    calls: list[tuple[int, ...]] = []
    ds = _dataset(calls, {"on": False})
    target = where if where.startswith("/") else str(tmp_path / where)
    with pytest.raises(InvalidParameterError, match=message):
        eotoolkit.to_zarr(ds, target)
    assert calls == []  # refused before anything was computed


class _Graphs(Callback):
    """The number of tasks of each graph the local scheduler runs."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def _start(self, dsk: Any) -> None:
        self.sizes.append(len(dsk))


def _records(store: Path) -> set[str]:
    return {p.name for p in (store / "_eotoolkit_done").iterdir()}


def test_batch_boxes_cut_time_first_and_cover_the_grid() -> None:
    shape = (4, 2, 3)
    for per_batch in (1, 2, 3, 5, 6, 7, 13, 24, 100):
        boxes = batch_boxes(shape, per_batch)
        blocks = [b for box in boxes for b in product(*(range(s.start, s.stop) for s in box))]
        assert sorted(blocks) == list(product(range(4), range(2), range(3)))  # each block once
        assert all(
            len(list(product(*(range(s.start, s.stop) for s in b)))) <= per_batch for b in boxes
        )
    assert batch_boxes(shape, 13) == [
        (slice(0, 2), slice(0, 2), slice(0, 3)),
        (slice(2, 4), slice(0, 2), slice(0, 3)),
    ]  # whole time steps where they fit
    assert batch_boxes(shape, 4)[:2] == [
        (slice(0, 1), slice(0, 1), slice(0, 3)),
        (slice(0, 1), slice(1, 2), slice(0, 3)),
    ]  # else rows of one time step
    assert batch_boxes((), 5) == [()]


def test_large_target_is_written_in_batches_and_resumes_after_a_failed_batch(
    tmp_path: Path,
) -> None:
    calls: list[tuple[int, ...]] = []
    fail = {"on": True}
    store = tmp_path / "out.zarr"
    progress: list[tuple[int, int]] = []
    graphs = _Graphs()
    with (
        dask.config.set(scheduler="synchronous"),
        graphs,
        pytest.raises(RuntimeError, match="simulated worker crash"),
    ):
        eotoolkit.to_zarr(
            _dataset(calls, fail), str(store), max_tasks=40, on_batch=lambda *a: progress.append(a)
        )
    # 24 blocks of 2 variables (96 tasks) in batches of one time step's block row (3 blocks)
    assert progress == [(0, 8), (1, 8), (2, 8), (3, 8), (4, 8)]
    assert len(graphs.sizes) == 5 and max(graphs.sizes) <= 40
    assert store_status(str(store)) == "incomplete"
    # the four finished batches (time steps 0 and 1) are recorded, the failed one is not
    finished = {(t, y, x) for t in range(2) for y in range(2) for x in range(3)}
    assert _records(store) == {
        f"{v}.{t}.{y}.{x}" for v in ("ndvi", "count") for t, y, x in finished
    }
    chunk_files = {p: p.stat().st_mtime_ns for p in store.glob("*/c/*/*/*")}
    fail["on"] = False
    calls.clear()
    progress.clear()
    graphs.sizes.clear()
    with dask.config.set(scheduler="synchronous"), graphs:
        eotoolkit.to_zarr(
            _dataset(calls, fail), str(store), mode="resume", max_tasks=40,
            on_batch=lambda *a: progress.append(a),
        )  # fmt: skip
    everything = set(product(range(4), range(2), range(3)))
    assert sorted(calls) == sorted(everything - finished)  # the finished batches not recomputed
    assert progress[0] == (0, 4) and progress[-1] == (4, 4)
    assert len(graphs.sizes) == 4 and max(graphs.sizes) <= 40
    assert all(p.stat().st_mtime_ns == m for p, m in chunk_files.items())
    reference = str(tmp_path / "ref.zarr")
    with _Graphs() as one:
        eotoolkit.to_zarr(_dataset([], {"on": False}), reference)
    assert len(one.sizes) == 1  # small graphs: one compute, as always
    got, ref = eotoolkit.open_zarr(str(store)), eotoolkit.open_zarr(reference)
    xr.testing.assert_identical(got.load(), ref.load())
    assert store_status(str(store)) == "complete"
    assert not (store / "_eotoolkit_done").exists()


@pytest.mark.parametrize("max_tasks", [1, 12, 20, 50, 95])
def test_every_graph_stays_within_max_tasks(tmp_path: Path, max_tasks: int) -> None:
    calls: list[tuple[int, ...]] = []
    store = str(tmp_path / "m.zarr")
    with dask.config.set(scheduler="synchronous"), _Graphs() as graphs:
        eotoolkit.to_zarr(_dataset(calls, {"on": False}), store, max_tasks=max_tasks)
    assert len(graphs.sizes) > 1
    if max_tasks > 1:  # one block's graph needs more than 1 task: computed alone, whole
        assert max(graphs.sizes) <= max_tasks
    assert sorted(calls) == sorted(product(range(4), range(2), range(3)))  # each block once
    reference = str(tmp_path / "ref.zarr")
    eotoolkit.to_zarr(_dataset([], {"on": False}), reference, max_tasks=None)
    xr.testing.assert_identical(
        eotoolkit.open_zarr(store).load(), eotoolkit.open_zarr(reference).load()
    )


def test_batches_on_a_distributed_client(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    calls: list[tuple[int, ...]] = []
    store = str(tmp_path / "d.zarr")
    progress: list[tuple[int, int]] = []
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster),
    ):
        eotoolkit.to_zarr(
            _dataset(calls, {"on": False}), store, max_tasks=60,
            on_batch=lambda *a: progress.append(a),
        )  # fmt: skip
    assert progress[0] == (0, progress[-1][1]) and progress[-1][0] == progress[-1][1] > 1
    reference = str(tmp_path / "ref.zarr")
    eotoolkit.to_zarr(_dataset([], {"on": False}), reference, max_tasks=None)
    xr.testing.assert_identical(
        eotoolkit.open_zarr(store).load(), eotoolkit.open_zarr(reference).load()
    )


@pytest.mark.parametrize("bad", [0, -5, 1.5, "many", True])
def test_max_tasks_is_checked(tmp_path: Path, bad: Any) -> None:
    calls: list[tuple[int, ...]] = []
    with pytest.raises(InvalidParameterError, match="max_tasks"):
        eotoolkit.to_zarr(_dataset(calls, {"on": False}), str(tmp_path / "x.zarr"), max_tasks=bad)
    assert calls == []
