"""Run a command in a fresh subprocess and measure wall time, CPU time and peak RSS (with
children), plus the machine description stored with every result."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
LIBRARIES = (
    "numpy", "dask", "distributed", "xarray", "zarr", "rasterio", "odc-stac", "odc-geo",
    "odc-loader", "stackstac", "pystac", "dask-jobqueue", "psutil",
)  # fmt: skip


@dataclass
class Measured:
    """One subprocess run."""

    returncode: int
    wall: float
    cpu: float
    peak_rss: int
    report: dict[str, Any] = field(default_factory=dict)
    stderr_tail: str = ""


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def run(cmd: list[str], *, env: dict[str, str] | None = None, interval: float = 0.02) -> Measured:
    """Run ``cmd`` from the repository root; a stdout line "BENCH {json}" becomes ``report``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    ps = psutil.Process(proc.pid)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(ps))
            time.sleep(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # ru_maxrss (KiB) of the largest child is a floor for the sampled peak
    peak = max(peak, after.ru_maxrss * 1024 if after.ru_maxrss > before.ru_maxrss else 0)
    report: dict[str, Any] = {}
    for line in out.splitlines():
        if line.startswith("BENCH "):
            report = json.loads(line[6:])
    return Measured(proc.returncode, wall, cpu, peak, report, err[-3000:])


def python() -> str:
    """The interpreter running the benchmarks (children use the same one)."""
    return sys.executable


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """The machine and library versions, stored with every result."""
    versions = {}
    for lib in LIBRARIES:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            versions[lib] = None
    try:
        gdal = __import__("rasterio").__gdal_version__
    except Exception:
        gdal = None
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "os": platform.platform(),
        "gdal": gdal,
        "loadavg_start": [round(v, 2) for v in os.getloadavg()],
        "versions": versions,
    }


def save(name: str, payload: dict[str, Any]) -> Path:
    """Write ``payload`` as benchmarks/results/<name>.json."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload.setdefault("machine", machine())
    payload["machine"]["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    return path
