"""``python -m benchmarks.scaling``: the projections of SCALING.md from the measured constants.

Reads benchmarks/results/{constants,scheduler,workload-4096px-12d,search,phenology}.json and
prints the numbers of SCALING.md's two projections. Every assumption is a named constant here.
"""

from __future__ import annotations

import json
from typing import Any

from .measure import RESULTS

# -- assumptions: Sentinel-2 L2A over Europe, one year, monthly 20 m NDVI median ---------------
EU_AREA_KM2 = 6.0e6  # EEA-39 land area, rounded up
S2_TILES = 1000  # MGRS tiles (110 x 110 km, ~10 km overlaps) over that area, coasts included
S2_DAYS_PER_ITEM = 2.5  # S2A + S2B: 5-day revisit, about 2 acquisitions per 5 days at 45-60 N
S2_TILE_OVERLAP = 1.2  # average items per pixel and date (tile overlaps, orbit side-lap)
BANDS = 3  # B04, B08 (10 m, read from the 20 m overview), SCL (20 m)
BYTES_PER_PIXEL_DATE = 2 + 2 + 1  # uint16, uint16, uint8 at 20 m
CHUNK = 1024  # output chunk side (pixels)
CORES_PER_NODE = 32
NODE_NETWORK_GBPS = 10.0  # per node, to the object store
STORE_GBPS = 100.0  # aggregate object-store egress the site can sustain
S2_FILE_BYTES_PER_DECODED = 0.6  # real L2A COGs (DEFLATE, predictor): compressed / decoded
# -- assumptions: Daymet v4 daily, CONUS at 1 km, 40 years, SI-x -------------------------------
CONUS_LAND_PX = 8.1e6  # CONUS land at 1 km (the Daymet NA grid is 7814 x 8075 = 63 M px)
YEARS = 40
DAYMET_VARS = 3  # tmin, tmax, dayl as float32, 365 days
DAYMET_CHUNK = (365, 256, 256)
DAYMET_DECODE_MB_S_CORE = 150.0  # NetCDF4/HDF5 zlib decode per core (assumed, not measured)
DAYMET_FILE_BYTES_PER_DECODED = 0.4


def _load(name: str) -> dict[str, Any]:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def constants() -> dict[str, float]:
    """The measured constants the projections use."""
    c = _load("constants")
    w = _load("workload-4096px-12d")
    ph = _load("phenology")
    se = _load("search")
    sb = _load("scheduler").get("summary", {})
    fused, separate = sb.get("fused", {}), sb.get("separate", {})
    s = w.get("summary", {}).get("eotoolkit", {})
    nproc = w.get("machine", {}).get("nproc", 2)
    search_rate = None
    row = se.get("table", {}).get("eotoolkit@10000")
    if row:
        search_rate = row["items"] / row["search"]
    return {
        "threaded_s_per_task": c.get("threaded_s_per_task", float("nan")),
        "distributed_s_per_task": c.get("distributed_s_per_task", float("nan")),
        "w_tasks_per_chunk": c.get("w_graph", {}).get("tasks_per_output_chunk", float("nan")),
        "w_decoded_per_output": c.get("w_graph", {}).get(
            "decoded_bytes_per_output_byte", float("nan")
        ),
        "decoded_mb_s_core": s.get("decoded_mb_per_s", float("nan")) / nproc,
        "sixs_px_years_s_core": ph.get("summary", {})
        .get("eotoolkit", {})
        .get("pixel_years_per_s_per_core", float("nan")),
        "search_items_per_s": search_rate or float("nan"),
        # measured on a distributed scheduler in a process of its own (scheduler_bench)
        "fused_tasks_per_chunk": fused.get("tasks_per_output_chunk", float("nan")),
        "fused_sched_s_per_chunk": fused.get("scheduler_ms_per_output_chunk", float("nan")) / 1e3,
        "fused_cores_fed_w": fused.get("cores_one_scheduler_keeps_busy", float("nan")),
        "separate_tasks_per_chunk": separate.get("tasks_per_output_chunk", float("nan")),
        "separate_sched_s_per_chunk": separate.get("scheduler_ms_per_output_chunk", float("nan"))
        / 1e3,
        "separate_cores_fed_w": separate.get("cores_one_scheduler_keeps_busy", float("nan")),
    }


def sentinel2(
    k: dict[str, float],
    tasks_per_date: float,
    chunk: int = CHUNK,
    fixed: float = 2,
    sched_s_per_chunk: float | None = None,
) -> dict[str, float]:
    """One year of S2 L2A over Europe to a monthly 20 m NDVI median composite: per output
    chunk and month ``tasks_per_date`` tasks per date plus ``fixed`` (composite, write). The
    scheduler's time is ``sched_s_per_chunk`` per output chunk where measured, else the
    per-task constant times the tasks."""
    items = S2_TILES * 365 / S2_DAYS_PER_ITEM
    out_px_month = EU_AREA_KM2 * 1e6 / 400.0
    chunks = out_px_month / chunk**2 * 12
    dates_per_month = 365 / 12 / S2_DAYS_PER_ITEM  # per output chunk: solar days with data
    tasks_per_chunk = dates_per_month * tasks_per_date + fixed
    tasks = chunks * tasks_per_chunk
    decoded = out_px_month * 12 * dates_per_month * S2_TILE_OVERLAP * BYTES_PER_PIXEL_DATE
    core_s = decoded / (k["decoded_mb_s_core"] * 1e6)
    if sched_s_per_chunk is None:
        sched_s = tasks * k["distributed_s_per_task"]
    else:
        sched_s = chunks * sched_s_per_chunk
    per_task_core_s = core_s / tasks
    sched_cores = core_s / sched_s  # cores one scheduler feeds
    read_bytes = decoded * S2_FILE_BYTES_PER_DECODED
    core_read_mb_s = k["decoded_mb_s_core"] * S2_FILE_BYTES_PER_DECODED
    node_net_cores = NODE_NETWORK_GBPS * 125 / core_read_mb_s  # cores a node's link feeds
    store_cores = STORE_GBPS * 125 / core_read_mb_s
    return {
        "items": items,
        "output_chunks": chunks,
        "tasks_per_output_chunk": tasks_per_chunk,
        "tasks": tasks,
        "decoded_tb": decoded / 1e12,
        "read_tb": read_bytes / 1e12,
        "worker_core_hours": core_s / 3600,
        "scheduler_hours": sched_s / 3600,
        "task_core_ms": per_task_core_s * 1e3,
        "scheduler_bound_cores": sched_cores,
        "scheduler_bound_nodes": sched_cores / CORES_PER_NODE,
        "node_link_bound_cores": node_net_cores,
        "storage_bound_nodes": store_cores / CORES_PER_NODE,
        "search_s": items / k["search_items_per_s"],
    }


def daymet(k: dict[str, float]) -> dict[str, float]:
    """SI-x over Daymet's CONUS 1 km grid for 40 years."""
    px_years = CONUS_LAND_PX * YEARS
    chunk_px = DAYMET_CHUNK[1] * DAYMET_CHUNK[2]
    grid_px = 7814 * 8075 * (CONUS_LAND_PX / (7814 * 8075)) / 0.6  # land chunks ~60 % land
    chunks = grid_px / chunk_px * YEARS
    tasks = chunks * (DAYMET_VARS + 2)  # 3 reads, SI-x, write
    decoded = px_years * 365 * 4 * DAYMET_VARS
    compute_core_s = px_years / k["sixs_px_years_s_core"]
    decode_core_s = decoded / (DAYMET_DECODE_MB_S_CORE * 1e6)
    core_s = compute_core_s + decode_core_s
    per_task = core_s / tasks
    sched_cores = per_task / k["distributed_s_per_task"]
    core_read_mb_s = decoded * DAYMET_FILE_BYTES_PER_DECODED / 1e6 / core_s
    return {
        "pixel_years": px_years,
        "items": DAYMET_VARS * YEARS,
        "tasks": tasks,
        "decoded_tb": decoded / 1e12,
        "compute_core_hours": compute_core_s / 3600,
        "decode_core_hours": decode_core_s / 3600,
        "worker_core_hours": core_s / 3600,
        "scheduler_hours": tasks * k["distributed_s_per_task"] / 3600,
        "task_core_s": per_task,
        "scheduler_bound_cores": sched_cores,
        "storage_bound_cores": STORE_GBPS * 125 / core_read_mb_s,
        "node_link_bound_cores": NODE_NETWORK_GBPS * 125 / core_read_mb_s,
    }


def main() -> None:
    """Print the constants and both projections as JSON."""
    k = constants()
    out = {
        "constants": k,
        # eotoolkit.fuse off: a read per band and a mask/index per date, composite, write
        "sentinel2_separate": sentinel2(k, BANDS + 1),
        # today: one task per output chunk and month (read, mask, index, median) and its write,
        # at the per-task constant and at the scheduler's CPU per chunk measured on W
        "sentinel2_fused": sentinel2(k, 0, fixed=2),
        "sentinel2_fused_measured": sentinel2(
            k, 0, fixed=2, sched_s_per_chunk=k["fused_sched_s_per_chunk"]
        ),
        "sentinel2_fused_2048": sentinel2(k, 0, chunk=2048, fixed=2),
        "daymet": daymet(k),
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
