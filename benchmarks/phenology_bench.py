"""SI-x throughput: eotoolkit's kernel next to a plain vectorised numpy implementation.

The plain implementation below is written from the published model (Schwartz et al. 2013, as
described in ``eotoolkit/ops/phenology.py``'s docstring): it materialises the 24 hourly
temperatures of every pixel-day, takes the day or night form per hour, sums growing degree
hours, and evaluates the first-leaf and first-bloom models with cumulative sums and argmax,
in batches of pixels. Both run in one thread on the same synthetic Daymet-like year;
throughput is pixel-years per second per core. Results are compared exactly (float32).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

import numpy as np

from . import measure

LEAF = {
    "lilac": (3.306, 13.878, 0.201, 0.153),
    "arnold_red": (4.266, 20.899, 0.000, 0.248),
    "zabelli": (2.802, 21.433, 0.266, 0.000),
}
BLOOM = {"lilac": (-23.934, 0.116), "arnold_red": (-24.825, 0.127), "zabelli": (-11.368, 0.096)}
OFFSET = {"lilac": 0, "arnold_red": 1, "zabelli": 0}


def _first(above: np.ndarray, doy: np.ndarray) -> np.ndarray:
    return np.where(above.any(-1), doy[np.argmax(above, -1)], np.nan)


def plain_block(tmin: np.ndarray, tmax: np.ndarray, dayl: np.ndarray, start_doy: int) -> Any:
    """(pixel, day) inputs of the kept days -> (pixel, 4) leaf and bloom, float32."""
    tmin = tmin * 1.8 + 32.0
    dt = tmax * 1.8 + 32.0 - tmin
    length = dayl / 3600.0
    h = np.arange(24.0)
    fl = np.floor(length)[..., None]
    day = tmin[..., None] + dt[..., None] * np.sin(np.pi * h / (length[..., None] + 4.0))
    c = dt * np.sin(np.pi * length / (length + 4.0))
    with np.errstate(all="ignore"):
        night = tmin[..., None] + c[..., None] * (
            1.0 - np.log(h - fl) / np.log(24.0 - length)[..., None]
        )
    temp = np.where((h > fl) & np.isfinite(night), night, day)
    gdh = np.maximum(temp - 31.0, 0.0).sum(-1)
    gdh[np.isnan(tmin) | np.isnan(dt) | np.isnan(length)] = np.nan
    n = gdh.shape[-1]
    doy = np.arange(start_doy, start_doy + n, dtype=np.float64)
    padded = np.concatenate([np.repeat(gdh[:, :1], 7, -1), gdh], -1)
    dde2 = padded[:, 5 : n + 5] + padded[:, 6 : n + 6] + padded[:, 7 : n + 7]
    dd57 = padded[:, 0:n] + padded[:, 1 : n + 1] + padded[:, 2 : n + 2]
    synop = np.cumsum(dde2 >= 637.0, -1)
    mds0 = doy - 1.0
    csum = np.cumsum(gdh, -1)
    leaves, blooms = [], []
    for plant, (a, b, cc, d) in LEAF.items():
        leaf = _first(mds0 * a + synop * b + dde2 * cc + dd57 * d > 999.5, doy) + OFFSET[plant]
        pos = np.where(np.isnan(leaf), n - 1, np.clip(leaf - start_doy, 0, n - 1)).astype(int)
        agdh = csum - csum[np.arange(len(pos)), pos][:, None]
        agdh = np.where(doy > leaf[:, None], agdh, 0.0)
        e, f = BLOOM[plant]
        mds = np.maximum(np.floor(doy - leaf[:, None]), 0.0)
        blooms.append(_first(mds * e + agdh * f > 999.5, doy))
        leaves.append(leaf)
    out = []
    for layers in (leaves, blooms):
        arr = np.stack(layers, -1)
        out.append(np.concatenate([arr, np.round(arr.mean(-1, keepdims=True))], -1))
    return out[0].astype(np.float32), out[1].astype(np.float32)


def plain(tmin: np.ndarray, tmax: np.ndarray, dayl: np.ndarray, start_doy: int, batch: int = 512):
    """``plain_block`` over batches of pixels (the hourly array is pixels x days x 24)."""
    leaf, bloom = [], []
    for lo in range(0, tmin.shape[0], batch):
        sl = slice(lo, lo + batch)
        lf, bl = plain_block(tmin[sl], tmax[sl], dayl[sl], start_doy)
        leaf.append(lf)
        bloom.append(bl)
    return np.concatenate(leaf), np.concatenate(bloom)


def inputs(npix: int, end_doy: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A synthetic Daymet-like year as (pixel, day) float32 arrays, days 1..end_doy."""
    from eotoolkit.synthetic.daymet import daymet_like_dataset

    side = int(np.ceil(np.sqrt(npix)))
    ds = daymet_like_dataset(2020, ny=side, nx=side, res=1000.0)
    arrs = []
    for v in ("tmin", "tmax", "dayl"):
        a = ds[v].values[:end_doy]  # (time, y, x)
        arrs.append(np.ascontiguousarray(a.reshape(a.shape[0], -1).T[:npix]).astype(np.float32))
    return arrs[0], arrs[1], arrs[2]


def bench(args: argparse.Namespace) -> dict[str, Any]:
    """Time both implementations, interleaved, on one core (BLAS/OpenMP threads = 1)."""
    from eotoolkit.ops.phenology import spring_index_numpy

    npix = int(getattr(args, "pixels", 20000))
    end_doy = 300
    tmin, tmax, dayl = inputs(npix, end_doy)
    impls = {
        "eotoolkit": lambda: spring_index_numpy(tmin, tmax, dayl, start_doy=1),
        "plain numpy": lambda: plain(tmin, tmax, dayl, 1),
    }
    results = {k: f() for k, f in impls.items()}  # warm-up, and the outputs compared
    (la, ba), (lb, bb) = results["eotoolkit"], results["plain numpy"]
    agree = {
        "leaf_equal": bool(np.array_equal(la, lb, equal_nan=True)),
        "bloom_equal": bool(np.array_equal(ba, bb, equal_nan=True)),
        "max_abs_diff": float(
            max(np.nanmax(np.abs(la - lb), initial=0), np.nanmax(np.abs(ba - bb), initial=0))
        ),
        "nan_pixels": int(np.isnan(la[:, -1]).sum()),
    }
    times: dict[str, list[float]] = {k: [] for k in impls}
    for _ in range(max(3, args.repeat)):
        for k, f in impls.items():
            t = time.thread_time()
            f()
            times[k].append(time.thread_time() - t)
    summary = {
        k: {
            "cpu_s_median": statistics.median(v),
            "pixel_years_per_s_per_core": npix / statistics.median(v),
        }
        for k, v in times.items()
    }
    base = summary["plain numpy"]["pixel_years_per_s_per_core"]
    for s in summary.values():
        s["vs_plain"] = s["pixel_years_per_s_per_core"] / base
    print(json.dumps(summary), flush=True)
    return {"pixels": npix, "days": end_doy, "summary": summary, "agreement": agree, "times": times}


def main() -> None:
    """``python -m benchmarks.phenology_bench``: run the suite alone and save its result."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    ap = argparse.ArgumentParser()
    ap.add_argument("--pixels", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3)
    result = bench(ap.parse_args())
    result["machine"] = measure.machine()
    print(measure.save("phenology", result))


if __name__ == "__main__":
    main()
