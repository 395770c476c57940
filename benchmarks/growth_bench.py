"""How cost grows with the work: W at 1x, 4x and 16x the input, interleaved.

1x is the workload collection (2 tiles x ``--dates`` dates); 4x has 4 tiles (2 x 2) and twice
the dates; 16x has 16 tiles (4 x 4) and twice the dates. The output grid follows the same rule
as W (a lon/lat bbox over about 60 % of the tiles' union, at 20 m), so output pixels and
monthly composites grow with the input as well. Tile size is ``--growth-size`` (default 2048
px, so that 16x - 384 items, 1.2 GB of decoded 20 m pixels - runs in about a minute per
implementation on two cores). Rounds go 1x, 4x, 16x with every implementation in the same
order per size; reported: median run time per decoded input byte and peak RSS per size.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

from . import dataset, measure

FACTORS = {1: (2, 1), 4: (4, 2), 16: (16, 2)}  # factor: (tiles, dates multiplier)
IMPLS = ("eotoolkit", "odc", "numpy")


def params(factor: int, size: int, dates: int) -> dataset.Params:
    tiles, mult = FACTORS[factor]
    return dataset.Params(size=size, dates=dates * mult, tiles=tiles)


def bench(args: argparse.Namespace) -> dict[str, Any]:
    """Run every implementation at every size, ``args.repeat`` rounds (no warm-up round: the
    workload suite's warm-up compiled the bytecode; the files are read into the page cache)."""
    from .run import _workload_cmd, warm_page_cache

    size = int(getattr(args, "growth_size", 2048))
    impls = [i for i in IMPLS if i in args.impls] or list(IMPLS)
    setups = {}
    for f in FACTORS:
        p = params(f, size, args.dates)
        cat = dataset.ensure(p)
        items = dataset.item_dicts(cat)
        grid = dataset.workload_grid(items)
        setups[f] = (p, cat, grid, dataset.decoded_bytes(items, grid), len(items))
    runs: dict[str, dict[int, list[dict[str, float]]]] = {
        i: {f: [] for f in FACTORS} for i in impls
    }
    for r in range(max(1, args.repeat)):
        for f, (p, cat, grid, _, _) in setups.items():
            warm_page_cache(cat.parent)
            for impl in impls:
                out = dataset.DATA / "out" / f"G-{p.key()}-{impl}.zarr"
                m = measure.run(_workload_cmd(impl, cat, out, grid))
                ok = m.returncode == 0
                print(f"  round {r} {f:2d}x {impl:10s} {'ok' if ok else 'FAILED'} run "
                      f"{m.report.get('run', float('nan')):.2f} s rss {m.peak_rss / 2**20:.0f} MiB",
                      flush=True)  # fmt: skip
                if ok:
                    runs[impl][f].append({"run": m.report["run"], "rss": m.peak_rss, "cpu": m.cpu})
                else:
                    print(m.stderr_tail, flush=True)
    table: dict[str, dict[str, Any]] = {}
    for impl in impls:
        for f, (_, _, grid, decoded, nitems) in setups.items():
            rs = runs[impl][f]
            if not rs:
                continue
            run = statistics.median(x["run"] for x in rs)
            table[f"{impl}@{f}"] = {
                "factor": f, "items": nitems, "decoded_mb": decoded / 1e6,
                "output_shape": list(grid.shape), "run_s": run,
                "ns_per_byte": run / decoded * 1e9,
                "peak_rss_mib": statistics.median(x["rss"] for x in rs) / 2**20,
                "cpu_s": statistics.median(x["cpu"] for x in rs), "runs": len(rs),
            }  # fmt: skip
        one = table.get(f"{impl}@1")
        for f in FACTORS:
            row = table.get(f"{impl}@{f}")
            if one and row:
                row["per_byte_vs_1x"] = row["ns_per_byte"] / one["ns_per_byte"]
    return {"size": size, "dates": args.dates, "factors": list(FACTORS), "table": table}


def plot(result: dict[str, Any], path: Path) -> None:
    """Two panels: time per decoded byte and peak RSS against the input factor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3.3), dpi=90)
    impls = sorted({k.split("@")[0] for k in result["table"]})
    for impl in impls:
        rows = sorted(
            (r for k, r in result["table"].items() if k.split("@")[0] == impl),
            key=lambda r: r["factor"],
        )
        xs = [r["factor"] for r in rows]
        a1.plot(xs, [r["ns_per_byte"] for r in rows], "o-", label=impl)
        a2.plot(xs, [r["peak_rss_mib"] for r in rows], "o-", label=impl)
    for ax, label in ((a1, "run time per decoded byte (ns)"), (a2, "peak RSS (MiB)")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(result["factors"], [f"{f}x" for f in result["factors"]])
        ax.set_xlabel("input (x W at 1x)")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
    a1.legend(fontsize=8)
    fig.suptitle(f"W growth, {result['size']} px tiles", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
