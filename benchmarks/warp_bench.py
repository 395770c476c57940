"""Reprojecting loads: ``python -m benchmarks.warp_bench [--size 1024] [--repeat 5]
[--methods nearest,average,bilinear,cubic] [--tolerance T] [--target CRS] [--odc]``.

Two UTM tiles (uint16, nodata 0, 20 m, COGs with overviews; cached in benchmarks/data/) are
loaded onto LAEA Europe (EPSG:3035) in 256-pixel chunks and computed on one thread, once per
resampling method (average at 60 m, the others at 20 m); prints the median wall time of
``--repeat`` runs per method, after one untimed run. ``--tolerance`` sets the error threshold
of the reader's coordinate transformation (default: the reader's own, exact to rounding;
0.125 is GDAL's default approximation) and warps nearest with GDAL's warper too (instead of
``_nearest``), to measure what the exact transformation costs;
``--target EPSG:32633`` loads onto the tiles' own CRS (60 m for average, 30 m for the others:
another pixel size, so warped too). ``--odc`` times ``odc.stac.load`` of the same items onto
the same CRS, pixel size, chunks and method as well, alternating with eotoolkit (odc-stac warps
with GDAL's default approximation).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
from affine import Affine

from benchmarks.dataset import DATA

CRS = "EPSG:32633"
RES = 20.0
#: Where the tiles lie (EPSG:32633): near 15 E, 48 N.
ORIGIN = (500000.0, 5330000.0)
TARGET = "EPSG:3035"
METHODS = ("nearest", "average", "bilinear", "cubic")


def tiles(size: int) -> list[dict]:
    """Two overlapping size x size tiles as STAC item dicts (written once, then cached)."""
    from tests.integration.eotoolkit.helpers import item_dict, write_cog

    root = DATA / f"warp-{size}px"
    root.mkdir(parents=True, exist_ok=True)
    items = []
    for k in range(2):
        t = Affine(RES, 0, ORIGIN[0] + k * size * RES * 0.7, 0, -RES, ORIGIN[1])
        path = root / f"t{k}.tif"
        if not path.exists():
            rng = np.random.default_rng(k)
            data = rng.integers(1, 3000, (size, size)).astype("uint16")
            tmp = path.with_suffix(".tmp.tif")
            write_cog(tmp, data, CRS, t)
            tmp.rename(path)
        items.append(
            item_dict(f"t{k}", str(path), CRS, t, (size, size), f"2024-05-0{k + 1}T10:00:00Z")
        )
    return items


def resolution(method: str, target: str) -> float:
    """The output pixel size: 60 m for average, 30 m onto the tiles' own CRS, 20 m otherwise."""
    return 3 * RES if method == "average" else RES * (1.5 if target == CRS else 1.0)


def run_once(items: list[dict], method: str, target: str = TARGET) -> float:
    import eotoolkit

    res = resolution(method, target)
    start = time.perf_counter()
    ds = eotoolkit.load(
        items, bands="B04", crs=target, resolution=res, resampling=method, chunks=256,
        groupby="solar_day",
    )  # fmt: skip
    ds["B04"].compute(scheduler="synchronous")
    return time.perf_counter() - start


def run_odc(items: list[dict], method: str, target: str = TARGET) -> float:
    """``odc.stac.load`` of the items onto the grid ``run_once`` asks for."""
    import odc.stac
    import pystac

    stac_items = [pystac.Item.from_dict(it) for it in items]
    res = resolution(method, target)
    start = time.perf_counter()
    ds = odc.stac.load(
        stac_items, bands=["B04"], crs=target, resolution=res, resampling=method,
        chunks={"x": 256, "y": 256}, groupby="solar_day",
    )  # fmt: skip
    ds["B04"].compute(scheduler="synchronous")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1024, help="pixels per tile side")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--tolerance", type=float, default=None)
    parser.add_argument("--target", default=TARGET, help="output CRS")
    parser.add_argument("--odc", action="store_true", help="odc-stac too, alternating")
    args = parser.parse_args(argv)
    from eotoolkit import _warp

    if args.tolerance is not None:  # GDAL's warper for nearest too
        _warp.EXACT_TOLERANCE = args.tolerance
        _warp.NEAREST_BY_POSITIONS = False
    items = tiles(args.size)
    print(f"2 tiles of {args.size} px -> {args.target}, tolerance {_warp.EXACT_TOLERANCE}")
    runners = {"eotoolkit": run_once}
    if args.odc:
        runners["odc-stac"] = run_odc
    for method in args.methods.split(","):
        times: dict[str, list[float]] = {name: [] for name in runners}
        for run in runners.values():  # untimed: imports, caches
            run(items, method, args.target)
        for _ in range(args.repeat):
            for name, run in runners.items():
                times[name].append(run(items, method, args.target))
        for name, got in times.items():
            print(
                f"{method:9s} {name:10s} median {statistics.median(got):.3f} s "
                f"(min {min(got):.3f}, max {max(got):.3f})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
