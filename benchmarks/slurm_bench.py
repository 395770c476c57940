"""Dask on SLURM: ``SLURMCluster.scale(2)`` until two workers are ready, next to SLURM's own
start latency (a trivial ``sbatch --wrap`` job from submission to running).

Runs as the cluster user over SSH with the rig venv's Python, on the ``single`` topology
(``BENCH_SLURM_TOPOLOGY=netns`` for the two-namespace one).
"""

from __future__ import annotations

import argparse
import os
import statistics
import textwrap
from typing import Any

from ._cluster import SBATCH_LATENCY, Skip, cluster, run_python

BODY = """
    import json, os, time
    lat = [sbatch_latency(PARTITION) for _ in range(REPEAT)]
    t_import = time.time()
    from dask_jobqueue import SLURMCluster
    from distributed import Client
    t_imported = time.time()
    kwargs = dict(
        cores=1, processes=1, memory="1GiB", walltime="00:10:00", queue=PARTITION,
        local_directory="/tmp", python=PYTHON, log_directory=os.path.expanduser("~/.eo-bench-logs"),
    )
    if HOST:
        kwargs["scheduler_options"] = {"host": HOST}
    runs = []
    for _ in range(REPEAT):
        t0 = time.time()
        cluster = SLURMCluster(**kwargs)
        client = Client(cluster)
        t1 = time.time()
        cluster.scale(2)
        client.wait_for_workers(2, timeout=300)
        t2 = time.time()
        starts = client.run(lambda: __import__("psutil").Process().create_time())
        runs.append({
            "cluster_start_s": t1 - t0,
            "scale_to_ready_s": t2 - t1,
            "worker_process_start_s": sorted(v - t1 for v in starts.values()),
        })
        client.close()
        cluster.close()
        time.sleep(1)
    print("BENCH " + json.dumps({
        "sbatch": lat, "import_s": t_imported - t_import, "runs": runs,
    }), flush=True)
"""


def bench(args: argparse.Namespace) -> dict[str, Any]:
    """SLURMCluster.scale(2) and sbatch latency on the test cluster (skipped without it)."""
    topology = os.environ.get("BENCH_SLURM_TOPOLOGY", "single")
    try:
        info = cluster(topology)
    except Skip as exc:
        print(f"  skipped: {exc}", flush=True)
        return {"skipped": str(exc)}
    host = ""
    if topology == "netns":
        from tests.cluster import rig

        host = rig.LOGIN_PRIVATE_ADDR
    repeat = max(1, args.repeat)
    script = (
        f"PARTITION = {info.partition!r}\nREPEAT = {repeat}\nHOST = {host!r}\n"
        f"PYTHON = {info.venv + '/bin/python'!r}\n"
        + textwrap.dedent(SBATCH_LATENCY)
        + textwrap.dedent(BODY)
    )
    try:
        result = run_python(info, script)
    except Exception as exc:
        print(f"  failed: {exc}", flush=True)
        return {"topology": topology, "error": str(exc)}
    latency = statistics.median(r["start_latency_s"] for r in result["sbatch"])
    scale = statistics.median(r["scale_to_ready_s"] for r in result["runs"])
    summary = {
        "sbatch_start_latency_s": latency,
        "scale2_to_ready_s": scale,
        "scale2_minus_latency_s": scale - latency,
        "cluster_start_s": statistics.median(r["cluster_start_s"] for r in result["runs"]),
    }
    print(
        "  sbatch start latency {sbatch_start_latency_s:.2f} s, scale(2) to ready "
        "{scale2_to_ready_s:.2f} s, difference {scale2_minus_latency_s:.2f} s".format(**summary),
        flush=True,
    )
    return {"topology": topology, "summary": summary, "raw": result}
