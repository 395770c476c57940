"""The Dask scheduler's CPU per output chunk of workload W, fused and not.

    python -m benchmarks.scheduler_bench [--size 2048] [--dates 8] [--chunk 512] [--rounds 3]
                                         [--workers-on local|slurm]

A ``dask scheduler`` and two ``dask worker`` processes (one thread each) run on this machine
(``--workers-on slurm``: each worker a job of the test SLURM cluster's ``single`` topology,
submitted with ``sbatch``, as root, on this machine's node);
W (load -> mask_clouds -> NDVI -> monthly median -> to_zarr) is written through a ``Client``
with eotoolkit's fused graph and with fusion turned off (``eotoolkit.fuse: false``), the two
alternating. Each run reads the CPU seconds of the scheduler process and of the workers
(``psutil``) before and after, and reports per output chunk: the scheduler's CPU, the tasks it
ran and the workers' CPU. ``cores one scheduler keeps busy`` is workers' CPU over scheduler
CPU: how many cores of this work one scheduler can feed before it is the limit.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
from distributed.diagnostics.plugin import SchedulerPlugin

from . import dataset, measure

WORKERS = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker_command(address: str, directory: Path) -> list[str]:
    return [
        sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
        "--no-nanny", "--memory-limit", "0", "--local-directory", str(directory),
        "--no-dashboard",
    ]  # fmt: skip


@contextlib.contextmanager
def _processes(tmp: Path, on: str = "local") -> Iterator[tuple[str, Any, list[Any]]]:
    """A scheduler in a process of its own and ``WORKERS`` workers, processes here or jobs of
    the test SLURM cluster (``on``), stopped on exit. Yields the address, the scheduler's
    process and the workers' job ids (empty here)."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    common = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
         "--port", str(port), "--dashboard-address", ":0"],
        **common,
    )  # fmt: skip
    workers: list[subprocess.Popen[bytes]] = []
    jobs: list[str] = []
    env = dict(os.environ)
    try:
        if on == "slurm":
            from ._cluster import cluster

            env["SLURM_CONF"] = cluster("single").slurm_conf
            for i in range(WORKERS):
                wrap = shlex.join(_worker_command(address, tmp / f"w{i}"))
                submitted = subprocess.run(
                    ["sbatch", "--parsable", "--job-name=eo-bench-sched", "--cpus-per-task=1",
                     "--mem=2000", "--output=/dev/null", f"--wrap=exec {wrap}"],
                    env=env, capture_output=True, text=True, check=True,
                )  # fmt: skip
                jobs.append(submitted.stdout.strip().split(";")[0])
        else:
            workers = [
                subprocess.Popen(_worker_command(address, tmp / f"w{i}"), **common)  # type: ignore[call-overload]
                for i in range(WORKERS)
            ]
        yield address, psutil.Process(scheduler.pid), jobs
    finally:
        if jobs:
            subprocess.run(["scancel", *jobs], env=env, check=False)
        for proc in (*workers, scheduler):
            proc.terminate()
        for proc in (*workers, scheduler):
            proc.wait(30)


def _cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


class TaskCount(SchedulerPlugin):
    """Counts the tasks the scheduler has had computed (transitions to ``memory``)."""

    name = "eo-bench-task-count"

    def __init__(self) -> None:
        self.count = 0

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        if finish == "memory":
            self.count += 1


def _tasks_run(dask_scheduler: Any) -> int:
    """Tasks computed so far, by the ``TaskCount`` plugin."""
    return int(dask_scheduler.plugins[TaskCount.name].count)


def _w(items: list[dict], chunk: int, out: str) -> Any:
    import eotoolkit as eot

    ds = eot.load(
        items, bands=["B04", "B08", "SCL"], resolution=20, groupby="solar_day", chunks=chunk,
        resampling={"B04": "average", "B08": "average", "SCL": "nearest"},
    )  # fmt: skip
    ds = eot.mask_clouds(ds, scl="SCL", classes=(0, 3, 8, 9, 10))
    med = eot.composite(eot.index(ds, "NDVI"), freq="1MS", stat="median")
    return med.rename("ndvi").to_dataset(), out


def _one(client: Any, sched: psutil.Process, workers: list[psutil.Process], items: list[dict],
         chunk: int, fused: bool, out: str) -> dict[str, float]:  # fmt: skip
    import dask

    import eotoolkit as eot

    with dask.config.set({"eotoolkit.fuse": fused}):
        ds, out = _w(items, chunk, out)
    chunks = ds["ndvi"].data.npartitions
    tasks_before = client.run_on_scheduler(_tasks_run)
    s0, w0, t0 = _cpu(sched), sum(map(_cpu, workers)), time.perf_counter()
    eot.to_zarr(ds, out, mode="w")
    wall = time.perf_counter() - t0
    s1, w1 = _cpu(sched), sum(map(_cpu, workers))
    tasks = client.run_on_scheduler(_tasks_run) - tasks_before
    return {
        "output_chunks": chunks,
        "tasks": tasks,
        "wall_s": wall,
        "scheduler_cpu_s": s1 - s0,
        "workers_cpu_s": w1 - w0,
    }


def bench(args: argparse.Namespace) -> dict[str, Any]:
    from distributed import Client

    chunk = getattr(args, "chunk", 512)
    rounds = getattr(args, "rounds", getattr(args, "repeat", 3))
    p = dataset.Params(size=args.size, dates=args.dates)
    items = dataset.item_dicts(dataset.ensure(p))
    runs: dict[str, list[dict[str, float]]] = {"fused": [], "separate": []}
    on = getattr(args, "workers_on", "local")
    with (
        tempfile.TemporaryDirectory() as tmp,
        _processes(Path(tmp), on) as (address, sched, _jobs),
        Client(address, timeout=60) as client,
    ):
        client.wait_for_workers(WORKERS, timeout=300)
        # the workers' processes, wherever they were started (a SLURM job's: on this node)
        workers = [psutil.Process(pid) for pid in client.run(os.getpid).values()]
        client.register_plugin(TaskCount())
        _one(client, sched, workers, items, chunk, True, f"{tmp}/warm.zarr")
        for r in range(rounds):
            order = ("fused", "separate") if r % 2 == 0 else ("separate", "fused")
            for mode in order:
                out = f"{tmp}/{mode}-{r}.zarr"
                runs[mode].append(_one(client, sched, workers, items, chunk, mode == "fused", out))
                shutil.rmtree(out, ignore_errors=True)
    summary: dict[str, dict[str, float]] = {}
    for mode, rows in runs.items():
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        chunks = med["output_chunks"]
        summary[mode] = {
            **med,
            "tasks_per_output_chunk": med["tasks"] / chunks,
            "scheduler_ms_per_output_chunk": 1e3 * med["scheduler_cpu_s"] / chunks,
            "scheduler_ms_per_task": 1e3 * med["scheduler_cpu_s"] / max(med["tasks"], 1),
            "worker_ms_per_output_chunk": 1e3 * med["workers_cpu_s"] / chunks,
            "cores_one_scheduler_keeps_busy": med["workers_cpu_s"] / med["scheduler_cpu_s"],
        }
    params = {
        "size": args.size, "dates": args.dates, "chunk": chunk, "rounds": rounds,
        "workers_on": on,
    }  # fmt: skip
    result = {"params": params, "runs": runs, "summary": summary}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--dates", type=int, default=8)
    parser.add_argument("--chunk", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers-on", choices=["local", "slurm"], default="local")
    args = parser.parse_args()
    try:
        result = bench(args)
    finally:
        from ._cluster import stop_started

        stop_started()  # the test cluster, when this run brought it up
    result["machine"] = measure.machine()
    path = measure.save("scheduler" if args.workers_on == "local" else "scheduler_slurm", result)
    print(f"{'graph':10} {'tasks/chunk':>12} {'sched ms/chunk':>15} {'sched ms/task':>14} "
          f"{'worker ms/chunk':>16} {'cores fed':>10}")  # fmt: skip
    for mode, s in result["summary"].items():
        print(
            f"{mode:10} {s['tasks_per_output_chunk']:12.1f} "
            f"{s['scheduler_ms_per_output_chunk']:15.2f} {s['scheduler_ms_per_task']:14.3f} "
            f"{s['worker_ms_per_output_chunk']:16.1f} {s['cores_one_scheduler_keeps_busy']:10.0f}"
        )
    print(f"saved {path}")


if __name__ == "__main__":
    main()
