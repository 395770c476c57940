"""Memory: W over the whole extent at 10 m on a 2-worker LocalCluster with 1 GB per worker.

The loaded input (float32 reflectances and uint8 SCL, all dates) is several times a worker's
memory limit. Each worker's RSS is sampled with ``client.run`` every 0.25 s; the result holds
the peak per worker, the wall time, and whether workers were restarted (a nanny kill).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from . import dataset, measure

WORKERS = 2
LIMIT = "1GB"
IMPLS = ("eotoolkit", "odc")


TIMEOUT = float(os.environ.get("BENCH_MEMORY_TIMEOUT", 600))


def _rss(dask_worker: Any = None) -> tuple[int, str]:
    import psutil

    status = getattr(getattr(dask_worker, "status", None), "name", "?")
    return int(psutil.Process().memory_info().rss), status


def _child(impl: str, catalog: str, out: str, resolution: float) -> None:
    """Run W with ``impl`` on a LocalCluster in this process; print "BENCH {json}"."""
    from distributed import Client, LocalCluster

    from . import workload

    items = dataset.item_dicts(Path(catalog))
    left, bottom, right, top = dataset.data_bounds(items)
    lons = [v for it in items for v in it["bbox"][0::2]]
    lats = [v for it in items for v in it["bbox"][1::2]]
    bbox = (min(lons) - 0.01, min(lats) - 0.01, max(lons) + 0.01, max(lats) + 0.01)
    args = argparse.Namespace(
        catalog=catalog, out=out, bounds=(left, bottom, right, top), bbox=bbox,
        resolution=resolution,
    )  # fmt: skip
    cluster = LocalCluster(
        n_workers=WORKERS, threads_per_worker=1, memory_limit=LIMIT, processes=True,
        dashboard_address=None,
    )  # fmt: skip
    client = Client(cluster)
    peaks: dict[str, int] = {}
    names: set[str] = set()
    last: dict[str, Any] = {}
    paused_samples = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal paused_samples
        while not done.is_set():
            try:
                for addr, (rss, status) in client.run(_rss).items():
                    peaks[addr] = max(peaks.get(addr, 0), rss)
                    names.add(addr)
                    last[addr] = {"rss_mib": rss / 2**20, "status": status}
                    paused_samples += status == "paused"
            except Exception:
                pass
            time.sleep(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    timings: dict[str, float] = {}
    t = time.perf_counter()
    error = None

    def work() -> None:
        nonlocal error
        try:
            workload.RUNS[impl](args, timings)
        except Exception as exc:  # report, do not hide, a failure to complete
            error = f"{type(exc).__name__}: {exc}"

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(TIMEOUT)
    if worker.is_alive():
        error = f"did not complete within {TIMEOUT:.0f} s; last worker states {last}"
    wall = time.perf_counter() - t
    done.set()
    sampler.join()
    import xarray as xr

    input_bytes = None
    try:
        eo = workload._eo_api()
        ds = eo["load"](
            items, bands=["B04", "B08", "SCL"], resolution=resolution, crs="EPSG:32631",
            bbox=bbox, groupby="solar_day", chunks=workload.CHUNK,
        )  # fmt: skip
        input_bytes = int(ds.nbytes)
    except Exception:
        pass
    ok = error is None and Path(out).exists() and bool(xr.open_zarr(out).sizes)
    report = {
        "wall_s": wall,
        "completed": ok,
        "error": error,
        "peak_rss_per_worker_mib": sorted(v / 2**20 for v in peaks.values()),
        "worker_addresses_seen": len(names),
        "paused_samples": paused_samples,
        "gdal_cachemax": os.environ.get("GDAL_CACHEMAX"),
        "input_gb": None if input_bytes is None else input_bytes / 1e9,
    }
    print("BENCH " + json.dumps(report), flush=True)
    if not ok:
        os._exit(0)  # a stuck computation would keep the cluster from closing
    client.close()
    cluster.close()


def bench(args: argparse.Namespace) -> dict[str, Any]:
    """Run the memory workload in a fresh subprocess per implementation."""
    p = dataset.Params(size=args.size, dates=args.dates)
    cat = dataset.ensure(p)
    impls = [i for i in args.impls if i in IMPLS] or ["eotoolkit"]
    if args.memory_impls:
        impls = args.memory_impls.split(",")
    results: dict[str, Any] = {"workers": WORKERS, "memory_limit": LIMIT, "resolution": 10}
    for spec in impls:
        # "eotoolkit@gdal128": eotoolkit with GDAL_CACHEMAX=128 (MB) in the workers
        impl, _, variant = spec.partition("@")
        env = {"GDAL_CACHEMAX": variant[4:]} if variant.startswith("gdal") else {}
        out = dataset.DATA / "out" / f"M-{p.key()}-{spec}.zarr"
        cmd = [
            measure.python(), "-m", "benchmarks.memory_bench", impl, str(cat), str(out),
        ]  # fmt: skip
        m = measure.run(cmd, env=env, interval=0.1)
        report = m.report or {"error": m.stderr_tail}
        report["process_tree_peak_rss_mib"] = m.peak_rss / 2**20
        results[spec] = report
        print(
            f"  {spec}: completed={report.get('completed')} wall {report.get('wall_s', 0):.1f} s "
            f"input {report.get('input_gb') or 0:.2f} GB, peak RSS per worker "
            f"{[round(v) for v in report.get('peak_rss_per_worker_mib', [])]} MiB",
            flush=True,
        )
    return results


def main() -> None:
    """Child entry: ``python -m benchmarks.memory_bench IMPL CATALOG OUT``."""
    impl, catalog, out = sys.argv[1:4]
    _child(impl, catalog, out, 10.0)


if __name__ == "__main__":
    main()
