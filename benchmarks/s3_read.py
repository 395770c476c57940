"""The same COG read from S3 (the loopback Ceph RGW of tests/s3/rig.py) and from local disk.

    python -m benchmarks.s3_read [--size 4096] [--repeat 3]

Needs a running rig (``python -m tests.s3.rig up``). Writes one DEFLATE COG (512 px tiles,
uint16) locally, uploads it, then times with eotoolkit's GDAL options and S3 settings:

- a full read of band 1, local vs S3 (fresh dataset, GDAL's caches dropped before each run);
- a 512 x 512 window read, counting the GET requests and bytes RGW served for the object (its
  access log) next to the bytes of the TIFF tiles the window needs (``BLOCK_SIZE_x_y``); the
  difference is the header GDAL reads first (16 KiB) and the merging of adjacent ranges.

Prints one JSON document (and writes it to ``benchmarks/results/s3_read.json`` with ``--write``).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import rasterio
from rasterio.windows import Window

from eotoolkit._reader import GDAL_OPTIONS, _clear_gdal_http_cache
from eotoolkit.stores import storage
from tests.s3.rig import running

RESULTS = Path(__file__).parent / "results" / "s3_read.json"


def write_cog(path: Path, size: int) -> None:
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    rng = np.random.default_rng(0)
    data = 2000 + 800 * np.sin(x / 97.0) * np.cos(y / 131.0) + rng.normal(0, 40, (size, size))
    profile = {
        "driver": "COG", "width": size, "height": size, "count": 1, "dtype": "uint16",
        "crs": "EPSG:32631", "nodata": 0, "compress": "DEFLATE", "blocksize": 512,
        "transform": rasterio.transform.from_origin(500000, 5000000, 10, 10),
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data.astype(np.uint16), 1)


def _timed_read(path: str, window: Window | None = None) -> tuple[float, np.ndarray]:
    _clear_gdal_http_cache()
    t0 = time.perf_counter()
    with rasterio.open(path) as src:
        arr = src.read(1, window=window)
    return time.perf_counter() - t0, arr


def _log_requests(log: Path, start: int, key: str) -> list[tuple[str, int, int]]:
    """(method, status, bytes) of the requests for ``key`` in RGW's access log after ``start``."""
    with open(log, "rb") as f:
        f.seek(start)
        text = f.read().decode(errors="replace")
    pat = re.compile(r'"(GET|HEAD) /' + re.escape(key) + r'[ ?][^"]*" (\d{3}) (\d+)')
    return [(m[1], int(m[2]), int(m[3])) for m in pat.finditer(text)]


def _needed_tile_bytes(path: str, window: Window) -> int:
    with rasterio.open(path) as src:
        bh, bw = src.block_shapes[0]
        r0, r1 = int(window.row_off) // bh, (int(window.row_off + window.height) - 1) // bh
        c0, c1 = int(window.col_off) // bw, (int(window.col_off + window.width) - 1) // bw
        total = 0
        for r in range(r0, r1 + 1):
            for c in range(c0, c1 + 1):
                total += int(src.get_tag_item(f"BLOCK_SIZE_{c}_{r}", "TIFF", bidx=1) or 0)
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    rig = running()
    if rig is None:
        parser.error("no S3 rig running: python -m tests.s3.rig up")
    cfg = storage.resolve(
        {"endpoint_url": rig.endpoint, "key": rig.owner.access_key, "secret": rig.owner.secret_key}
    )
    key = f"{rig.bucket}/bench/cog-{args.size}.tif"
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "cog.tif"
        write_cog(local, args.size)
        nbytes = local.stat().st_size
        fs = fsspec.filesystem("s3", **storage.fsspec_options(cfg))
        fs.put_file(str(local), key)
        remote = "/vsis3/" + key
        res: dict[str, Any] = {"size_px": args.size, "file_bytes": nbytes, "repeat": args.repeat}
        local_t, remote_t = [], []
        with storage.gdal_env(cfg, **{**GDAL_OPTIONS, "VSI_CACHE": "TRUE"}):
            for _ in range(args.repeat):  # interleaved rounds
                t, a = _timed_read(str(local))
                local_t.append(t)
                t, b = _timed_read(remote)
                remote_t.append(t)
                assert np.array_equal(a, b)
            res["full_read_local_s"] = round(statistics.median(local_t), 4)
            res["full_read_s3_s"] = round(statistics.median(remote_t), 4)
            res["full_read_ratio_s3_over_local"] = round(
                statistics.median(remote_t) / statistics.median(local_t), 2
            )
            log = Path(rig.state_dir) / "log" / "rgw.log"
            half = args.size // 2
            for name, win in (
                ("window_aligned_1_tile", Window(half, half, 512, 512)),
                ("window_unaligned_4_tiles", Window(half - 256, half - 256, 512, 512)),
            ):
                time.sleep(0.2)
                start = log.stat().st_size
                t_local, a = _timed_read(str(local), win)
                t_remote, b = _timed_read(remote, win)
                assert np.array_equal(a, b)
                time.sleep(1.0)  # RGW writes its access log line after the response
                reqs = _log_requests(log, start, key)
                served = sum(n for m, _, n in reqs if m == "GET")
                res[name] = {
                    "local_s": round(t_local, 4),
                    "s3_s": round(t_remote, 4),
                    "get_requests": sum(1 for m, _, _ in reqs if m == "GET"),
                    "head_requests": sum(1 for m, _, _ in reqs if m == "HEAD"),
                    "bytes_served": served,
                    "tile_bytes_needed": _needed_tile_bytes(str(local), win),
                    "share_of_file": round(served / nbytes, 4),
                }
        fs.rm(key)
    text = json.dumps(res, indent=1)
    print(text)
    if args.write:
        RESULTS.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
