"""Search at scale: a STAC API query streamed into a lazy load, 1k to 10k items.

Starts a private STAC API (PostgreSQL + pgstac + stac-fastapi-pgstac, ``tests/stacapi``) in a
temporary state directory, loads metadata clones of the workload items (as the graph suite
makes them) into one collection per count, and times in fresh subprocesses, alternately:

- ``eotoolkit``: ``eotoolkit.search(url, collections=[...], limit=...)`` then ``load``;
- ``odc``: ``pystac_client.Client.open(url).search(...).item_collection()`` then
  ``odc.stac.load`` with the same grid, bands, grouping and chunks.

Both ask for pages of ``PAGE`` items. The server is stopped afterwards. Needs root (the
server's installer) or an existing PostgreSQL; skipped with a message otherwise.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import dataset, measure
from .graph_bench import BANDS, RESAMPLING, clones

TOOLS = ("eotoolkit", "odc")
PAGE = 1000


def _child(tool: str, url: str, collection: str, bounds: list[float], bbox: list[float]) -> None:
    out: dict[str, Any] = {}
    t = time.perf_counter()
    import pystac_client  # both use it; eotoolkit imports it (and its loader) on first use

    if tool == "eotoolkit":
        import eotoolkit
        import eotoolkit.loader
        import eotoolkit.stac.discovery
    else:
        import odc.stac
        from odc.geo.geobox import GeoBox
    out["import"] = time.perf_counter() - t
    t = time.perf_counter()
    if tool == "eotoolkit":
        items: Any = eotoolkit.search(url, collections=[collection], limit=PAGE)
    else:
        client = pystac_client.Client.open(url)
        items = client.search(collections=[collection], limit=PAGE).item_collection()
    out["search"] = time.perf_counter() - t
    t2 = time.perf_counter()
    if tool == "eotoolkit":
        res = eotoolkit.load(
            items, bands=BANDS, resolution=20, crs="EPSG:32631", bbox=tuple(bbox),
            groupby="solar_day", chunks=1024, resampling=RESAMPLING,
        )  # fmt: skip
    else:
        res = odc.stac.load(
            items, bands=BANDS, groupby="solar_day", chunks={"x": 1024, "y": 1024},
            geobox=GeoBox.from_bbox(tuple(bounds), "EPSG:32631", resolution=20),
            resampling=RESAMPLING,
        )  # fmt: skip
    out["load"] = time.perf_counter() - t2
    out["total"] = time.perf_counter() - t
    out["items"] = len(items)
    out["times"] = int(res.sizes["time"])
    print("BENCH " + json.dumps(out), flush=True)


def bench(args: argparse.Namespace) -> dict[str, Any]:
    """Start the server, load the clones, time both tools per count, stop the server."""
    import pystac

    try:
        from tests.stacapi import load as stacload
        from tests.stacapi import server
    except ImportError as exc:
        return {"skipped": f"tests.stacapi not importable: {exc}"}
    p = dataset.Params(size=args.size, dates=args.dates)
    base = dataset.item_dicts(dataset.ensure(p))
    grid = dataset.workload_grid(base)
    counts = [int(c) for c in str(getattr(args, "search_items", "1000,10000")).split(",")]
    state = Path(tempfile.mkdtemp(prefix="bench-stacapi-"))
    try:
        info = server.start(state)
    except Exception as exc:
        shutil.rmtree(state, ignore_errors=True)
        return {"skipped": f"STAC API could not start: {exc}"}
    table: dict[str, Any] = {}
    try:
        for n in counts:
            cid = f"bench-{n}"
            items = [pystac.Item.from_dict(f) for f in clones(base, n)["features"]]
            t = time.perf_counter()
            stacload.load_stac(info.dsn, items, collection_id=cid)
            print(f"  loaded {n} items into pgstac in {time.perf_counter() - t:.1f} s", flush=True)
            reports: dict[str, list[dict[str, Any]]] = {tool: [] for tool in TOOLS}
            for _ in range(max(1, args.repeat)):
                for tool in TOOLS:
                    cmd = [
                        measure.python(), "-m", "benchmarks.search_bench", tool, info.url, cid,
                        "--bounds", *map(str, grid.bounds), "--bbox", *map(str, grid.bbox_lonlat),
                    ]  # fmt: skip
                    m = measure.run(cmd)
                    if m.returncode != 0:
                        print(f"  {tool} {n}: FAILED\n{m.stderr_tail}", flush=True)
                        continue
                    reports[tool].append({**m.report, "peak_rss_mib": m.peak_rss / 2**20})
                    print(f"  {tool:10s} n={n:6d} search {m.report['search']:.2f} s load "
                          f"{m.report['load']:.2f} s", flush=True)  # fmt: skip
            for tool, rs in reports.items():
                if rs:
                    table[f"{tool}@{n}"] = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
            e, o = table.get(f"eotoolkit@{n}"), table.get(f"odc@{n}")
            if e and o:
                e["speedup_vs_odc"] = o["total"] / e["total"]
    finally:
        server.stop(state)
        shutil.rmtree(state, ignore_errors=True)
    return {"counts": counts, "page": PAGE, "table": table}


def main() -> None:
    """Child entry: ``python -m benchmarks.search_bench TOOL URL COLLECTION --bounds --bbox``."""
    ap = argparse.ArgumentParser()
    ap.add_argument("tool", choices=TOOLS)
    ap.add_argument("url")
    ap.add_argument("collection")
    ap.add_argument("--bounds", type=float, nargs=4, required=True)
    ap.add_argument("--bbox", type=float, nargs=4, required=True)
    a = ap.parse_args()
    _child(a.tool, a.url, a.collection, a.bounds, a.bbox)


if __name__ == "__main__":
    sys.exit(main())
