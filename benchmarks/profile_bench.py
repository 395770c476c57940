"""Where the run time of W goes, per implementation: py-spy samples classified by stage.

Each implementation runs once more (after the timed rounds, same data, warm page cache) under
``py-spy record --format raw`` (Python frames, idle threads excluded). A sample is one thread
on CPU (or in a blocking C call py-spy does not see as idle) for 1/rate s. Its stack is put in
the first stage whose pattern matches, looking from the innermost frame outwards:

decode (GDAL reads, opening files), warp (WarpedVRT), mosaic (first-valid fill), mask+index
(masking, NDVI and the scale/offset arithmetic), reduce (the monthly median), encode (Zarr
codecs), write (Zarr stores and files), scheduler (Dask's scheduler loop, queues, thread pool
hand-offs), Python (everything else in the run: graph construction, xarray, item parsing).
A C function called directly by a Dask task (the ufuncs of fused blockwise operations) counts
as mask+index.
Import samples are left out (imports are timed separately).
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from . import measure

STAGES = (
    "decode", "warp", "mosaic", "mask+index", "reduce", "encode", "write", "scheduler", "Python",
)  # fmt: skip
RATE = 200
# (stage, pattern on "function (file:line)") checked innermost frame first
IDLE = re.compile(
    r"^(Condition\.wait|Event\.wait|EpollSelector\.select|_worker \(concurrent/futures/thread"
    r"|Queue\.get|SimpleQueue\.get|Thread\.join|Lock\.acquire|sleep)"
)
# (stage, pattern on "function (file:line)") checked innermost frame first
RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (stage, re.compile(p))
    for stage, p in (
        # eotoolkit/_warp.py also holds the window reads of aligned grids (decode, below)
        ("warp", r"WarpedVRT|_read_warped|_warp_exact|_covers_valid|reproject|rasterio/warp"),
        ("encode", r"numcodecs|codecs/|blosc|zstd|_encode|encode_chunk|compress"),
        (
            "write",
            r"zarr/storage|/store/|LocalStore|_write_chunk|write_bytes|rmtree|"
            r"put \(benchmarks/workload",
        ),
        (
            "reduce",
            r"nanquantile|_quantile_rows|_sorted_rows|_sort_small|_reduce|nanmedian|"
            r"_sort_network|_midpoint|_order_statistic|xarray/core/resample|flox|nanfunctions",
        ),
        ("mosaic", r"_Mosaic|mosaic|read \(benchmarks/workload.py:35[01]\)|_fuse \(|fuser|paste"),
        (
            "decode",
            r"rasterio/|_read_same_crs|_read_source|_read_aligned|_to_source_type|_dataset|"
            r"opener|rio_reader|"
            r"odc/loader/_rio|read \(benchmarks/workload|_handles",
        ),
        (
            "mask+index",
            r"masking|indices|spyndex|_set_nan|_scale |isin|duck_array_ops|"
            r"_binary_op|arithmetic|block \(benchmarks/workload|numpy/_core/",
        ),
        (
            "scheduler",
            r"dask/local|_task_spec|dask/threaded|dask/order|dask/optimization|"
            r"dask/core|get_async|concurrent/futures|threading\.py",
        ),
    )
)


def classify(stack: str) -> str | None:
    """The stage of one raw py-spy stack (frames joined by ';', outermost first); None for
    imports, waiting threads and threads without Python frames."""
    if "_find_and_load" in stack or not stack.strip():
        return None
    frames = stack.split(";")
    if any(f.startswith(("import_", "_dask_stack")) for f in frames):
        return None
    if IDLE.search(frames[-1]):
        return None
    if frames[-1].startswith("Task.__call__"):
        return "mask+index"  # a C function called by a task: ufuncs, slicing of fused blocks
    for frame in reversed(frames):
        for stage, pat in RULES:
            if pat.search(frame):
                return stage
    return "Python"


def profile_one(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``cmd`` under py-spy; thread-seconds per stage."""
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        return {"error": "py-spy not installed (pip install py-spy)"}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "raw.txt"
        proc = subprocess.run(
            [spy, "record", "-r", str(RATE), "-f", "raw", "-o", str(out), "--", *cmd],
            cwd=measure.ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True,
        )  # fmt: skip
        if proc.returncode != 0 or not out.exists():
            return {"error": proc.stderr[-2000:]}
        seconds: dict[str, float] = collections.defaultdict(float)
        for line in out.read_text().splitlines():
            stack, _, n = line.rpartition(" ")
            stage = classify(stack)
            if stage is not None:
                seconds[stage] += int(n) / RATE
    return {"thread_s": {s: round(seconds.get(s, 0.0), 3) for s in STAGES}}


def plot(result: dict[str, Any], path: Path) -> None:
    """A stacked bar per implementation: thread-seconds per stage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    impls = [i for i, r in result.items() if "thread_s" in r]
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=90)
    bottom = [0.0] * len(impls)
    colors = plt.get_cmap("tab10").colors
    for k, stage in enumerate(STAGES):
        vals = [result[i]["thread_s"][stage] for i in impls]
        ax.bar(impls, vals, bottom=bottom, label=stage, color=colors[k % 10])
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set_ylabel("thread-seconds on CPU (py-spy)")
    ax.set_title("W: where the run time goes (imports excluded)")
    ax.legend(fontsize=7, loc="upper left", ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
