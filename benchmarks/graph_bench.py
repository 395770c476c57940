"""Graph construction: lazy load of many items with eotoolkit, odc-stac and stackstac.

The items are metadata clones of the generated ones with shifted datetimes (180 days per copy
of the collection, starting over a day later every 86,000 days), written once as a GeoJSON
FeatureCollection. Each (tool, count) runs in a fresh subprocess which times: reading the JSON,
parsing it with pystac, and the lazy load call. Beyond 20,000 items only eotoolkit runs.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from . import dataset, measure

TOOLS = ("eotoolkit", "eotoolkit-dicts", "odc", "stackstac")
BANDS = ["B04", "B08", "SCL"]
RESAMPLING = {"B04": "average", "B08": "average", "SCL": "nearest"}
WRAP_DAYS = 86_000


def clones(items: list[dict], n: int) -> dict[str, Any]:
    """A FeatureCollection of ``n`` items cycling through ``items`` with shifted datetimes."""
    features = []
    for j in range(n):
        base = items[j % len(items)]
        k = j // len(items)
        item = copy.deepcopy(base)
        when = dt.datetime.fromisoformat(base["properties"]["datetime"].replace("Z", "+00:00"))
        # 180 days per copy; past WRAP_DAYS (pandas' nanosecond range ends in 2262) the
        # copies start over one day later per round, so that solar days stay distinct
        wrap, shift = divmod(180 * k, WRAP_DAYS)
        when += dt.timedelta(days=shift + wrap)
        item["properties"]["datetime"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
        item["id"] = f"{base['id']}_{k}"
        item["links"] = []
        features.append(item)
    return {"type": "FeatureCollection", "features": features}


def _child(tool: str, path: str, bounds: list[float], bbox: list[float]) -> None:
    """Time one tool in this (fresh) process and print "BENCH {json}"."""
    out: dict[str, Any] = {}
    t = time.perf_counter()
    if tool.startswith("eotoolkit"):
        from .workload import _eo_api

        load = _eo_api()["load"]
    elif tool == "odc":
        import odc.stac
        from odc.geo.geobox import GeoBox
    else:
        import stackstac
    import pystac

    out["import"] = time.perf_counter() - t
    t = time.perf_counter()
    fc = json.loads(Path(path).read_text())
    out["json"] = time.perf_counter() - t
    t = time.perf_counter()
    if tool == "eotoolkit-dicts":
        items: Any = fc["features"]
    else:
        if tool == "stackstac":  # stackstac 0.5 needs proj:epsg (projection v1)
            for f in fc["features"]:
                f["properties"]["proj:epsg"] = int(f["properties"]["proj:code"][5:])
        items = [pystac.Item.from_dict(f, preserve_dict=False) for f in fc["features"]]
    out["pystac"] = time.perf_counter() - t
    import psutil

    proc = psutil.Process()
    out["rss_before_load_mib"] = proc.memory_info().rss / 2**20
    t = time.perf_counter()
    if tool.startswith("eotoolkit"):
        res = load(
            items,
            bands=BANDS,
            resolution=20,
            crs="EPSG:32631",
            bbox=tuple(bbox),
            groupby="solar_day",
            chunks=1024,
            resampling=RESAMPLING,
        )
    elif tool == "odc":
        res = odc.stac.load(
            items,
            bands=BANDS,
            geobox=GeoBox.from_bbox(tuple(bounds), "EPSG:32631", resolution=20),
            groupby="solar_day",
            chunks={"x": 1024, "y": 1024},
            resampling=RESAMPLING,
        )
    else:
        res = stackstac.stack(
            items,
            assets=BANDS,
            epsg=32631,
            resolution=20,
            bounds=tuple(bounds),
            snap_bounds=False,
            chunksize=1024,
        )
    out["load"] = time.perf_counter() - t
    out["rss_after_load_mib"] = proc.memory_info().rss / 2**20
    t = time.perf_counter()
    out["tasks"] = len(res.__dask_graph__())
    out["materialize"] = time.perf_counter() - t
    out["times"] = int(res.sizes["time"])
    print("BENCH " + json.dumps(out), flush=True)


def bench(args: argparse.Namespace) -> dict[str, Any]:
    """Run every tool at every item count, ``args.repeat`` times, in fresh subprocesses."""
    p = dataset.Params(size=args.size, dates=args.dates)
    items = dataset.item_dicts(dataset.ensure(p))
    grid = dataset.workload_grid(items)
    counts = [int(c) for c in str(args.items).split(",")]
    results: dict[str, Any] = {"params": {"size": p.size, "dates": p.dates}, "counts": counts}
    table: dict[str, dict[str, Any]] = {}
    for n in counts:
        path = dataset.DATA / f"graph-{p.key()}-{n}.json"
        if not path.exists():
            path.write_text(json.dumps(clones(items, n)))
        wanted = str(getattr(args, "graph_tools", ",".join(TOOLS))).split(",")
        tools = [t for t in TOOLS if t in wanted]
        if n > 20000:  # odc-stac and stackstac take minutes per run beyond this
            tools = [t for t in tools if t.startswith("eotoolkit")]
        for tool in tools:
            reports = []
            for _ in range(max(1, args.repeat)):
                cmd = [
                    measure.python(), "-m", "benchmarks.graph_bench", tool, str(path),
                    "--bounds", *map(str, grid.bounds), "--bbox", *map(str, grid.bbox_lonlat),
                ]  # fmt: skip
                m = measure.run(cmd)
                if m.returncode != 0:
                    print(f"  {tool} {n}: FAILED\n{m.stderr_tail}", flush=True)
                    break
                reports.append({**m.report, "peak_rss_mib": m.peak_rss / 2**20})
            if not reports:
                table[f"{tool}@{n}"] = {"error": "failed"}
                continue
            med = {k: statistics.median(r[k] for r in reports) for k in reports[0]}
            table[f"{tool}@{n}"] = med
            print(
                f"  {tool:16s} n={n:6d} json {med['json']:.2f} s pystac {med['pystac']:.2f} s "
                f"load {med['load']:.2f} s tasks {med['tasks']:.0f}",
                flush=True,
            )
    results["table"] = table
    return results


def main() -> None:
    """Child entry: ``python -m benchmarks.graph_bench TOOL ITEMS.json --bounds .. --bbox ..``."""
    ap = argparse.ArgumentParser()
    ap.add_argument("tool", choices=TOOLS)
    ap.add_argument("path")
    ap.add_argument("--bounds", type=float, nargs=4, required=True)
    ap.add_argument("--bbox", type=float, nargs=4, required=True)
    a = ap.parse_args()
    _child(a.tool, a.path, a.bounds, a.bbox)


if __name__ == "__main__":
    sys.exit(main())
