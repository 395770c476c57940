"""The constants that benchmarks/SCALING.md projects from, measured on this machine.

- Dask scheduler cost per task: ``N`` no-op tasks (a chain-free bag of ``dask.delayed``
  calls, then one task that gathers them) on the threaded scheduler and on a
  ``distributed.LocalCluster`` (1 worker process, 1 thread), so that the per-task cost is
  (wall - the same with N/10 tasks) / (0.9 N);
- W's graph: tasks per output chunk (the monthly NDVI composite), by task kind;
- bytes: decoded 20 m input bytes and compressed file bytes per output byte;
- worker throughput: decoded MB/s per core of eotoolkit on W, from the workload result.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import time
from typing import Any

from . import dataset, measure


def _noop(*_: Any) -> int:
    return 0


def _scheduler_cost(n: int, get: Any, repeat: int) -> float:
    """Seconds per task: the difference of n and n/10 no-op tasks, over 0.9 n tasks."""
    import dask

    def once(k: int) -> float:
        tasks = [dask.delayed(_noop)(i) for i in range(k)]
        total = dask.delayed(_noop)(*tasks)
        t = time.perf_counter()
        total.compute(scheduler=get)
        return time.perf_counter() - t

    big = statistics.median(once(n) for _ in range(repeat))
    small = statistics.median(once(n // 10) for _ in range(repeat))
    return (big - small) / (0.9 * n)


def _graph_counts(p: dataset.Params) -> dict[str, Any]:
    """Tasks per output chunk of W's final array, by the prefix of the task names."""
    import eotoolkit

    cat = dataset.ensure(p)
    items = dataset.item_dicts(cat)
    grid = dataset.workload_grid(items)
    ds = eotoolkit.load(
        items, bands=["B04", "B08", "SCL"], resolution=20, crs="EPSG:32631",
        bbox=grid.bbox_lonlat, groupby="solar_day", chunks=1024,
        resampling={"B04": "average", "B08": "average", "SCL": "nearest"},
    )  # fmt: skip
    masked = eotoolkit.mask_clouds(ds, scl="SCL", classes=(0, 3, 8, 9, 10))
    monthly = eotoolkit.composite(eotoolkit.index(masked, "NDVI"), freq="1MS", stat="median")
    arr = monthly.data
    graph = arr.__dask_optimize__(arr.__dask_graph__(), arr.__dask_keys__())
    kinds: collections.Counter[str] = collections.Counter()
    for key in dict(graph):
        name = key[0] if isinstance(key, tuple) else str(key)
        kinds[name.split("-")[0]] += 1
    chunks = arr.npartitions
    decoded = dataset.decoded_bytes(items, grid)
    out_bytes = arr.size * arr.dtype.itemsize
    file_bytes = sum(f.stat().st_size for f in cat.parent.rglob("*.tif"))
    full_res = sum(
        a["proj:shape"][0] * a["proj:shape"][1] * (1 if k == "SCL" else 2)
        for it in items
        for k, a in it["assets"].items()
        if k in ("B04", "B08", "SCL")
    )
    return {
        "output_chunks": chunks,
        "tasks": sum(kinds.values()),
        "tasks_per_output_chunk": sum(kinds.values()) / chunks,
        "tasks_by_kind": dict(kinds),
        "decoded_bytes_per_output_byte": decoded / out_bytes,
        # files (full resolution and overviews) over their full-resolution pixels
        "file_bytes_per_full_res_byte": file_bytes / full_res,
        "items": len(items),
        "output_bytes": out_bytes,
    }


def bench(args: argparse.Namespace) -> dict[str, Any]:
    """Measure the constants (a few seconds each)."""
    import dask
    from distributed import Client, LocalCluster

    n = 20000
    result: dict[str, Any] = {"tasks": n}
    result["threaded_s_per_task"] = _scheduler_cost(n, dask.threaded.get, 3)
    cluster = LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
    )
    with cluster, Client(cluster) as client:
        result["distributed_s_per_task"] = _scheduler_cost(n, client.get, 3)
    result["w_graph"] = _graph_counts(dataset.Params(size=args.size, dates=args.dates))
    w = measure.RESULTS / f"workload-{args.size}px-{args.dates}d.json"
    if w.exists():
        s = json.loads(w.read_text())["summary"].get("eotoolkit", {})
        if "decoded_mb_per_s" in s:
            nproc = json.loads(w.read_text())["machine"]["nproc"]
            result["eotoolkit_decoded_mb_per_s_per_core"] = s["decoded_mb_per_s"] / nproc
    print(json.dumps(result, indent=1), flush=True)
    return result
