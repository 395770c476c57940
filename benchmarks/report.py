"""``python -m benchmarks.report``: render benchmarks/results/*.json as Markdown tables into
benchmarks/README.md (between the ``results`` markers) or print them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .measure import RESULTS

README = Path(__file__).resolve().parent / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"
NAMES = {
    "eotoolkit": "(a) eotoolkit",
    "eotoolkit-zstd": "(a') eotoolkit, zarr's default codec",
    "odc": "(b) odc-stac + xarray",
    "stackstac": "(c) stackstac + xarray",
    "numpy": "(d) rasterio + numpy",
}


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _f(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def machine_section(m: dict[str, Any]) -> str:
    """The machine, load and library versions of a result."""
    libs = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
    return (
        f"Measured {m['date']} on {m['nproc']} CPUs ({m['cpu']}), {m['memory_gb']} GB RAM, "
        f"Python {m['python']}, GDAL {m.get('gdal')}; load average "
        f"{m['loadavg_start'][0]} at the start, {m.get('loadavg_end', ['?'])[0]} at the end "
        f"(the machine is shared). Libraries: {libs}."
    )


def workload_section(w: dict[str, Any]) -> str:
    """Table of W and the pixel agreement."""
    p, g = w["params"], w["grid"]
    rows = []
    runs = w.get("runs", {})
    mins = {
        impl: min(r["report"]["run"] for r in rs if r["ok"])
        for impl, rs in runs.items()
        if any(r["ok"] for r in rs)
    }
    base_cpu = w["summary"].get("numpy", {}).get("cpu_s")
    base_min = mins.get("numpy")
    for impl, s in w["summary"].items():
        if "error" in s:
            rows.append([NAMES.get(impl, impl), "failed", *["-"] * 11])
            continue
        rows.append(
            [
                NAMES.get(impl, impl),
                _f(s["run_s"]),
                _f(s.get("ratio_to_numpy")) + "x",
                _f(mins.get(impl)),
                _f(mins[impl] / base_min) + "x" if base_min and impl in mins else "-",
                _f(s["import_s"]),
                _f(s.get("items_s")),
                _f(s["cpu_s"], 1),
                _f(s["cpu_s"] / base_cpu) + "x" if base_cpu else "-",
                _f(s["peak_rss_mib"], 0),
                _f(s["decoded_mb_per_s"], 0),
                _f(s.get("store_mb"), 0),
                str(s["runs"]),
            ]
        )
    head = [
        "implementation", "run median (s)", "vs (d)", "run min (s)", "min vs (d)",
        "imports (s)", "items (s)", "CPU (s)", "CPU vs (d)", "peak RSS (MiB)",
        "decoded MB/s", "Zarr (MB)", "runs",
    ]  # fmt: skip
    out = [
        f"W on {p['tiles']} tiles x {p['dates']} dates, {p['size']} px at 10 m; output grid "
        f"{g['shape'][0]} x {g['shape'][1]} at 20 m; {w['decoded_mb']:.0f} MB of decoded "
        "pixels. Run = items to Zarr, without imports (separate column); items = reading the "
        "catalog (included in run); CPU = user + system time of the whole subprocess, imports "
        "included; decoded MB/s uses the median run; Zarr = size of the written store. Under "
        "contention from other jobs on the machine the minimum and the CPU time are the "
        "steadier figures.",
        "",
        _table(head, rows),
    ]
    read = w["summary"].get("numpy", {}).get("read_s")
    if read:
        out += ["", f"Decode floor (d's threaded windowed reads and mosaic): {read:.2f} s."]
    agree = []
    for pair, a in w.get("agreement", {}).items():
        x, y = pair.split("~")
        if "error" in a:
            agree.append([f"{x} / {y}", a["error"], "", "", "", "", ""])
            continue
        agree.append(
            [
                f"{x} / {y}",
                str(a["differing"]),
                f"{a['differing'] / a['pixels']:.2e}",
                str(a["nan_mismatch"]),
                str(a["rounding_only"]),
                f"{a['max_abs_diff']:.2e}",
                str(a.get("in_tile_overlap", 0)),
            ]
        )
    out += [
        "",
        "Pixel agreement of the NDVI medians (NaN equals NaN; rounding = at most 4 float32 ulp):",
        "",
        _table(
            [
                "pair",
                "differing px",
                "fraction",
                "NaN vs value",
                "rounding only",
                "max abs diff",
                "in tile overlap",
            ],
            agree,
        ),
    ]
    return "\n".join(out)


def graph_section(gr: dict[str, Any]) -> str:
    """Table of the lazy-load graph construction."""
    rows = []
    for key, r in gr["table"].items():
        tool, n = key.split("@")
        if "error" in r:
            rows.append([tool, n, "failed", "", "", "", "", "", ""])
            continue
        rows.append(
            [
                tool,
                n,
                _f(r["json"]),
                _f(r["pystac"]),
                _f(r["load"]),
                _f(r["pystac"] + r["load"]),
                f"{r['tasks']:.0f}",
                _f(r.get("rss_before_load_mib"), 0),
                _f(r.get("rss_after_load_mib", float("nan")) - r.get("rss_before_load_mib", 0), 0),
                _f(r.get("peak_rss_mib"), 0),
            ]
        )
    return _table(
        ["tool", "items", "json (s)", "pystac (s)", "load (s)", "pystac + load (s)", "tasks",
         "RSS before load (MiB)", "load's RSS (MiB)", "peak RSS (MiB)"],
        rows,
    )  # fmt: skip


def profile_section(pr: dict[str, Any], png: str) -> str:
    """Thread-seconds per stage of one sampled run per implementation, and the plot."""
    from .profile_bench import STAGES

    rows = []
    for impl, r in pr["stages"].items():
        if "thread_s" not in r:
            rows.append([NAMES.get(impl, impl), "failed", *[""] * len(STAGES)])
            continue
        t = r["thread_s"]
        rows.append([NAMES.get(impl, impl), _f(sum(t.values())), *[_f(t[s]) for s in STAGES]])
    return "\n".join(
        [
            f"![where the time goes](results/{png})",
            "",
            _table(["implementation", "total", *STAGES], rows),
            "",
            f"Thread-seconds on CPU from py-spy at {pr['rate_hz']} Hz, one run each after the "
            "timed rounds (imports and idle threads excluded; see profile_bench.py for the rules).",
        ]
    )


def growth_section(g: dict[str, Any], png: str) -> str:
    """W at 1x, 4x and 16x the input."""
    rows = []
    for key, r in g["table"].items():
        impl = key.split("@")[0]
        rows.append(
            [
                NAMES.get(impl, impl), f"{r['factor']}x", str(r["items"]), _f(r["decoded_mb"], 0),
                "x".join(map(str, r["output_shape"])), _f(r["run_s"]), _f(r["ns_per_byte"]),
                _f(r.get("per_byte_vs_1x")), _f(r["peak_rss_mib"], 0), str(r["runs"]),
            ]
        )  # fmt: skip
    return "\n".join(
        [
            f"![growth](results/{png})",
            "",
            f"Tiles of {g['size']} px; 1x = 2 tiles x {g['dates']} dates, 4x = 4 tiles x "
            f"{2 * g['dates']} dates, 16x = 16 tiles x {2 * g['dates']} dates.",
            "",
            _table(
                ["implementation", "input", "items", "decoded MB", "output (px)", "run median (s)",
                 "ns per decoded byte", "per byte vs 1x", "peak RSS (MiB)", "runs"],
                rows,
            ),
        ]
    )  # fmt: skip


def search_section(se: dict[str, Any]) -> str:
    """STAC API search streamed into a lazy load."""
    if "skipped" in se:
        return f"Skipped: {se['skipped']}"
    rows = []
    for key, r in se["table"].items():
        tool, n = key.split("@")
        name = "eotoolkit.search + load" if tool == "eotoolkit" else "pystac_client + odc.stac.load"
        rows.append(
            [name, n, _f(r["search"]), _f(r["load"]), _f(r["total"]),
             _f(r.get("speedup_vs_odc")), _f(r["peak_rss_mib"], 0)]
        )  # fmt: skip
    return _table(
        ["tool", "items", "search (s)", "load (s)", "total (s)", "speed-up", "peak RSS (MiB)"],
        rows,
    )


def phenology_section(ph: dict[str, Any]) -> str:
    """SI-x throughput per core."""
    rows = [
        [k, _f(v["cpu_s_median"]), f"{v['pixel_years_per_s_per_core']:.0f}", _f(v["vs_plain"])]
        for k, v in ph["summary"].items()
    ]
    a = ph["agreement"]
    return "\n".join(
        [
            _table(["implementation", "CPU (s)", "pixel-years / s / core", "vs plain"], rows),
            "",
            f"{ph['pixels']} pixels x {ph['days']} days, one thread. Outputs identical: first "
            f"leaf {a['leaf_equal']}, first bloom {a['bloom_equal']} (max abs diff "
            f"{a['max_abs_diff']}).",
        ]
    )


def constants_section(c: dict[str, Any]) -> str:
    """The measured constants of SCALING.md."""
    g = c["w_graph"]
    rows = [
        ["threaded scheduler, s per task", f"{c['threaded_s_per_task'] * 1e6:.0f} us"],
        ["distributed scheduler, s per task", f"{c['distributed_s_per_task'] * 1e6:.0f} us"],
        ["W: tasks per output chunk", _f(g["tasks_per_output_chunk"], 1)],
        ["W: decoded input bytes per output byte", _f(g["decoded_bytes_per_output_byte"], 1)],
        ["file bytes per full-resolution pixel byte", _f(g["file_bytes_per_full_res_byte"])],
        ["eotoolkit decoded MB/s per core (W)", _f(c.get("eotoolkit_decoded_mb_per_s_per_core"))],
    ]
    return _table(["constant", "value"], rows)


def scheduler_section(sc: dict[str, Any]) -> str:
    """The scheduler's CPU per output chunk of W, fused and not."""
    p = sc["params"]
    rows = [
        [
            "fused (default)" if mode == "fused" else "separate (`eotoolkit.fuse: false`)",
            _f(s["tasks_per_output_chunk"], 1),
            _f(s["scheduler_ms_per_output_chunk"]),
            _f(s["scheduler_ms_per_task"]),
            _f(s["worker_ms_per_output_chunk"], 0),
            _f(s["wall_s"]),
            _f(s["cores_one_scheduler_keeps_busy"], 0),
        ]
        for mode, s in sc["summary"].items()
    ]
    head = (
        f"W on {p['size']} px tiles x {p['dates']} dates, output chunks of {p['chunk']} px, "
        f"a scheduler and 2 one-thread workers in processes of their own; medians of "
        f"{p['rounds']} interleaved runs. Cores fed = workers' CPU / scheduler's CPU."
    )
    header = [
        "graph", "tasks per output chunk", "scheduler CPU ms per chunk",
        "scheduler CPU ms per task", "worker CPU ms per chunk", "wall (s)", "cores fed",
    ]  # fmt: skip
    return head + "\n\n" + _table(header, rows)


def _outcome(r: dict[str, Any]) -> str:
    """A short reason for a memory run that did not complete."""
    if r.get("completed"):
        return "ok"
    error = str(r.get("error") or "")
    if "did not complete" in error and "paused" in error:
        return "stalled: every worker paused at the memory limit, idle"
    if "KilledWorker" in error:
        task = error.split("task ('", 1)[-1].split("-", 1)[0] if "task ('" in error else "a task"
        return f"KilledWorker: workers exceeded the limit running {task}"
    return error[:80] or "failed"


def memory_section(mem: dict[str, Any]) -> str:
    """Table of the LocalCluster memory run."""
    rows = []
    for spec, r in mem.items():
        if not isinstance(r, dict) or "completed" not in r:
            continue
        impl, _, variant = spec.partition("@")
        name = NAMES.get(impl, impl) + (f" with GDAL_CACHEMAX={variant[4:]}" if variant else "")
        rows.append(
            [
                name,
                _f(r.get("input_gb")),
                "yes" if r.get("completed") else "no",
                _f(r.get("wall_s"), 1),
                ", ".join(f"{v:.0f}" for v in r.get("peak_rss_per_worker_mib", [])),
                str(r.get("paused_samples", "-")),
                _outcome(r),
            ]
        )
    return (
        f"W over the whole extent at {mem['resolution']} m, {mem['workers']} workers x "
        f"{mem['memory_limit']}:\n\n"
        + _table(
            [
                "implementation",
                "input (GB)",
                "completed",
                "wall (s)",
                "peak RSS/worker (MiB)",
                "paused samples",
                "outcome",
            ],
            rows,
        )
    )


def launcher_section(la: dict[str, Any]) -> str:
    """Table of the launcher phases."""
    if "skipped" in la:
        return f"Skipped: {la['skipped']}"
    s = la["summary"]
    rows = [[k.removesuffix("_s").replace("_", " "), _f(v)] for k, v in s.items()]
    return _table(["phase (median)", "seconds"], rows)


def slurm_section(sl: dict[str, Any]) -> str:
    """Table of SLURMCluster.scale(2)."""
    if "skipped" in sl or "error" in sl:
        return f"Skipped: {sl.get('skipped') or sl.get('error')}"
    s = sl["summary"]
    return _table(
        ["measure (median)", "seconds"],
        [[k.removesuffix("_s").replace("_", " "), _f(v)] for k, v in s.items()],
    )


def render(size: int, dates: int, tag: str) -> str:
    """All available sections as Markdown."""
    t = f"-{tag}" if tag else ""
    parts = []
    w = _load(f"workload-{size}px-{dates}d{t}")
    if w:
        parts += ["### Machine", "", machine_section(w["machine"]), "", "### Workload W", "",
                  workload_section(w)]  # fmt: skip
    pr = _load(f"profile-{size}px-{dates}d{t}")
    if pr:
        parts += ["", "### Where the time goes", "", profile_section(pr, f"profile-{size}px-"
                  f"{dates}d{t}.png")]  # fmt: skip
    for path in sorted(RESULTS.glob(f"growth-*px-{dates}d{t}.json")):
        g = json.loads(path.read_text())
        parts += ["", "### Growth with the input", "", growth_section(g, path.stem + ".png"),
                  "", f"(result of {g['machine']['date']}, load average "
                  f"{g['machine']['loadavg_start'][0]})"]  # fmt: skip
    for title, name, fn in (
        ("Search from a STAC API", f"search{t}", search_section),
        ("SI-x throughput", f"phenology{t}", phenology_section),
        ("Measured constants (for SCALING.md)", f"constants{t}", constants_section),
        ("The scheduler's CPU per output chunk", f"scheduler{t}", scheduler_section),
        ("Graph construction", f"graph-{size}px{t}", graph_section),
        ("Memory", f"memory{t}", memory_section),
        ("Launcher", f"launcher{t}", launcher_section),
        ("Dask on SLURM", f"slurm{t}", slurm_section),
    ):
        r = _load(name)
        if r:
            parts += ["", f"### {title}", "", fn(r), "", f"(result of {r['machine']['date']}, load "
                      f"average {r['machine']['loadavg_start'][0]})"]  # fmt: skip
    return "\n".join(parts)


def main() -> None:
    """Render the tables; ``--write`` puts them into benchmarks/README.md."""
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--dates", type=int, default=12)
    ap.add_argument("--tag", default="")
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    text = render(a.size, a.dates, a.tag)
    if not a.write:
        print(text)
        return
    readme = README.read_text()
    head, _, rest = readme.partition(START)
    _, _, tail = rest.partition(END)
    README.write_text(f"{head}{START}\n{text}\n{END}{tail}")


if __name__ == "__main__":
    main()
