"""``python -m benchmarks.run``: generate the data (cached) and run the benchmark suites.

Suites: ``workload`` (W four ways, interleaved, fresh subprocess per run), ``graph`` (lazy load
of 2,000 and 10,000 items), ``memory`` (W on a 2-worker LocalCluster with 1 GB per worker),
``scheduler`` (the scheduler's CPU per output chunk of W, fused and not), ``launcher``
(run_jupyter.py on the test SLURM cluster) and ``slurm`` (SLURMCluster.scale(2)).
Results go to benchmarks/results/*.json; ``python -m benchmarks.report`` renders the tables.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
from dataclasses import asdict
from pathlib import Path
from typing import Any

from . import dataset, measure
from .workload import IMPLS

SUITES = (
    "workload", "profile", "growth", "graph", "search", "phenology", "constants", "scheduler",
    "memory", "launcher", "slurm",
)  # fmt: skip
BASELINE = "numpy"


def warm_page_cache(root: Path) -> int:
    """Read every file under ``root`` once so that runs start with a warm OS page cache."""
    total = 0
    for path in root.rglob("*"):
        if path.is_file():
            with path.open("rb") as fh:
                while chunk := fh.read(1 << 22):
                    total += len(chunk)
    return total


def _workload_cmd(impl: str, cat: Path, out: Path, grid: dataset.Grid) -> list[str]:
    return [
        measure.python(), "-m", "benchmarks.workload", impl, "--catalog", str(cat),
        "--out", str(out), "--bounds", *map(str, grid.bounds), "--bbox",
        *map(str, grid.bbox_lonlat),
    ]  # fmt: skip


def _tree_bytes(path: Path) -> int:
    """Bytes of the files under ``path``."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _overlap_x(items: list[dict]) -> tuple[float, float] | None:
    boxes = sorted({tuple(it["properties"]["proj:bbox"]) for it in items})
    if len(boxes) < 2:
        return None
    return boxes[1][0], boxes[0][2]


def workload(args: argparse.Namespace) -> dict[str, Any]:
    """W with eotoolkit, odc-stac, stackstac and rasterio + numpy, interleaved."""
    from .compare import compare

    p = dataset.Params(size=args.size, dates=args.dates)
    cat = dataset.ensure(p)
    items = dataset.item_dicts(cat)
    grid = dataset.workload_grid(items)
    decoded = dataset.decoded_bytes(items, grid)
    warm_page_cache(cat.parent)
    outdir = dataset.DATA / "out"
    impls = [i for i in IMPLS if i in args.impls]
    stores = {i: outdir / f"W-{p.key()}-{i}.zarr" for i in impls}
    runs: dict[str, list[dict[str, Any]]] = {i: [] for i in impls}
    rounds = args.repeat + (0 if args.no_warmup else 1)
    for r in range(rounds):
        for impl in impls:
            if stores[impl].exists():
                shutil.rmtree(stores[impl])
            m = measure.run(_workload_cmd(impl, cat, stores[impl], grid))
            status = "ok" if m.returncode == 0 else f"FAILED ({m.returncode})"
            run = m.report.get("run", float("nan"))
            print(f"  round {r} {impl:10s} {status} run {run:.2f} s wall {m.wall:.2f} s "
                  f"cpu {m.cpu:.1f} s rss {m.peak_rss / 2**20:.0f} MiB", flush=True)  # fmt: skip
            if m.returncode != 0:
                print(m.stderr_tail, flush=True)
            if r == 0 and not args.no_warmup:
                continue  # warm-up round: imports compiled, files cached
            size = _tree_bytes(stores[impl]) if m.returncode == 0 else 0
            runs[impl].append({**asdict(m), "ok": m.returncode == 0, "store_bytes": size})
    summary = {}
    for impl, rs in runs.items():
        ok = [r for r in rs if r["ok"]]
        if not ok:
            summary[impl] = {"error": rs[-1]["stderr_tail"] if rs else "not run"}
            continue
        med = {
            k: statistics.median(r["report"][k] for r in ok if k in r["report"])
            for k in ("import", "items", "graph", "read", "compute", "run")
            if any(k in r["report"] for r in ok)
        }
        summary[impl] = {
            "run_s": med["run"],
            "import_s": med["import"],
            "items_s": med.get("items"),
            "graph_s": med.get("graph"),
            "read_s": med.get("read"),
            "process_wall_s": statistics.median(r["wall"] for r in ok),
            "cpu_s": statistics.median(r["cpu"] for r in ok),
            "peak_rss_mib": statistics.median(r["peak_rss"] for r in ok) / 2**20,
            "decoded_mb_per_s": decoded / 1e6 / med["run"],
            "store_mb": statistics.median(r.get("store_bytes", 0) for r in ok) / 1e6,
            "runs": len(ok),
        }
    base = summary.get(BASELINE, {}).get("run_s")
    for s in summary.values():
        if base and "run_s" in s:
            s["ratio_to_numpy"] = s["run_s"] / base
    agreement = compare(stores, _overlap_x(items))
    return {
        "params": asdict(p),
        "grid": asdict(grid),
        "decoded_mb": decoded / 1e6,
        "summary": summary,
        "agreement": agreement,
        "runs": runs,
    }


def profile(args: argparse.Namespace) -> dict[str, Any]:
    """One py-spy-sampled run of W per implementation: thread-seconds per stage."""
    from . import profile_bench

    p = dataset.Params(size=args.size, dates=args.dates)
    cat = dataset.ensure(p)
    grid = dataset.workload_grid(dataset.item_dicts(cat))
    warm_page_cache(cat.parent)
    result = {}
    for impl in [i for i in IMPLS if i in args.impls]:
        out = dataset.DATA / "out" / f"P-{p.key()}-{impl}.zarr"
        result[impl] = profile_bench.profile_one(_workload_cmd(impl, cat, out, grid))
        print(f"  {impl:16s} {result[impl]}", flush=True)
    return {"params": asdict(p), "rate_hz": profile_bench.RATE, "stages": result}


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run the selected suites."""
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--size", type=int, default=4096, help="10 m pixels per tile side")
    ap.add_argument("--dates", type=int, default=12)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--only",
        default=",".join(SUITES),
        help=f"comma-separated suites out of {','.join(SUITES)}",
    )
    ap.add_argument("--impls", default=",".join(IMPLS), help="workload implementations")
    ap.add_argument("--no-warmup", action="store_true", help="skip the untimed first round")
    ap.add_argument(
        "--items",
        default="2000,10000,100000",
        help="graph suite: item counts (beyond 20,000 eotoolkit only)",
    )
    ap.add_argument("--graph-tools", default="eotoolkit,eotoolkit-dicts,odc,stackstac")
    ap.add_argument(
        "--memory-impls",
        default="eotoolkit,eotoolkit@gdal128,odc",
        help="memory suite: implementations (IMPL@gdalN: workers with GDAL_CACHEMAX=N MB)",
    )
    ap.add_argument("--growth-size", type=int, default=2048, help="growth suite: tile size")
    ap.add_argument("--search-items", default="1000,10000", help="search suite: item counts")
    ap.add_argument("--pixels", type=int, default=20000, help="phenology suite: pixels")
    ap.add_argument("--tag", default="", help="suffix of the result file names")
    args = ap.parse_args(argv)
    args.impls = args.impls.split(",")
    only = [s for s in args.only.split(",") if s]
    unknown = set(only) - set(SUITES)
    if unknown:
        ap.error(f"unknown suite(s) {sorted(unknown)}; choose from {SUITES}")
    tag = f"-{args.tag}" if args.tag else ""
    try:
        for suite in only:
            print(f"== {suite}", flush=True)
            started = measure.machine()  # load average at the start of the suite
            if suite == "workload":
                result = workload(args)
                name = f"workload-{args.size}px-{args.dates}d{tag}"
            elif suite == "profile":
                from .profile_bench import plot as plot_profile

                result = profile(args)
                name = f"profile-{args.size}px-{args.dates}d{tag}"
                plot_profile(result["stages"], measure.RESULTS / f"{name}.png")
            elif suite == "growth":
                from .growth_bench import bench as growth
                from .growth_bench import plot as plot_growth

                result = growth(args)
                name = f"growth-{result['size']}px-{args.dates}d{tag}"
                plot_growth(result, measure.RESULTS / f"{name}.png")
            else:
                module = __import__(f"benchmarks.{suite}_bench", fromlist=["bench"])
                result = module.bench(args)
                name = f"{suite}{tag}" if suite != "graph" else f"graph-{args.size}px{tag}"
            result["machine"] = started
            path = measure.save(name, result)
            print(f"   -> {path.relative_to(measure.ROOT)}", flush=True)

    finally:
        from ._cluster import stop_started

        stop_started()


if __name__ == "__main__":
    main()
