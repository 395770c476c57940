"""Workload W implemented four ways; ``python -m benchmarks.workload IMPL ...`` runs one of them.

W: load B04, B08 (average) and SCL (nearest) at 20 m over the workload grid, mosaic per solar
day, mask SCL classes {0, 3, 8, 9, 10} and nodata, NDVI as float32, NaN-aware monthly median,
write Zarr. The implementations:

- ``eotoolkit``: the public API (load, mask_clouds, index, composite, to_zarr);
- ``eotoolkit-zstd``: the same, writing with zarr's default codec (Zstandard level 3, as the
  others do) instead of eotoolkit's default (Blosc LZ4 with byte shuffle);
- ``odc``: odc-stac + xarray as a user would write it;
- ``stackstac``: stackstac + xarray, mosaic per solar day;
- ``numpy``: hand-optimised rasterio + numpy with a thread pool and no Dask.

Each run prints one JSON line: import time, item parsing time and the run time (items to Zarr).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CLASSES = (0, 3, 8, 9, 10)
SCALE, OFFSET = 0.0001, -0.1  # raster:bands scale; offset of processing baseline >= 04.00
CHUNK = 1024
IMPLS = ("eotoolkit", "eotoolkit-zstd", "odc", "stackstac", "numpy")


def _threads() -> int:
    return int(os.environ.get("BENCH_THREADS", os.cpu_count() or 1))


def _grid(args: argparse.Namespace) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return tuple(args.bounds), tuple(args.bbox)


def _dask_stack() -> None:
    """Modules that xarray and dask import lazily on first use, so that all of the import cost
    lands in the import phase of the dask-based implementations (dask imports distributed on
    the first compute, to look for a default client)."""
    import dask.array  # noqa: F401
    import distributed.worker  # noqa: F401
    import pystac  # noqa: F401
    import rasterio  # noqa: F401
    import xarray
    import xarray.backends.zarr  # noqa: F401
    import zarr  # noqa: F401


def _pystac_items(catalog: str) -> list[Any]:
    import pystac

    return list(pystac.Catalog.from_file(catalog).get_items(recursive=True))


# -- (a) eotoolkit --------------------------------------------------------------------------------


def _eo_api() -> dict[str, Callable[..., Any]]:
    """The public functions the workload uses."""
    import eotoolkit

    names = ("load", "mask_clouds", "index", "composite", "to_zarr")
    return {name: getattr(eotoolkit, name) for name in names}


def import_eotoolkit() -> Any:
    """Import the eotoolkit stack (spyndex, which ``index`` imports on first use, included)."""
    _dask_stack()
    import spyndex  # noqa: F401

    return _eo_api()


def run_eotoolkit(
    args: argparse.Namespace, timings: dict[str, float], codec: dict[str, Any] | None = None
) -> None:
    """(a) eotoolkit's public API; ``codec``: extra arguments of ``to_zarr``."""
    eo = _eo_api()
    t = time.perf_counter()
    items = _pystac_items(args.catalog)
    timings["items"] = time.perf_counter() - t
    _, bbox = _grid(args)
    ds = eo["load"](
        items,
        bands=["B04", "B08", "SCL"],
        resolution=getattr(args, "resolution", 20),
        crs="EPSG:32631",
        bbox=bbox,
        groupby="solar_day",
        chunks=CHUNK,
        resampling={"B04": "average", "B08": "average", "SCL": "nearest"},
    )
    masked = eo["mask_clouds"](ds, scl="SCL", classes=CLASSES)
    ndvi = eo["index"](masked, "NDVI")
    monthly = eo["composite"](ndvi, freq="1MS", stat="median")
    timings["graph"] = time.perf_counter() - t
    eo["to_zarr"](monthly, args.out, mode="w", **(codec or {}))


def run_eotoolkit_zstd(args: argparse.Namespace, timings: dict[str, float]) -> None:
    """(a') eotoolkit writing with zarr's default codec, like the other implementations."""
    run_eotoolkit(args, timings, codec={"compressors": "auto"})


# -- (b) odc-stac ---------------------------------------------------------------------------------


def import_odc() -> Any:
    """Import the odc-stac stack."""
    import odc.stac

    _dask_stack()
    return odc.stac


def run_odc(args: argparse.Namespace, timings: dict[str, float]) -> None:
    """(b) odc-stac + xarray as a user would write it."""
    import odc.stac
    from odc.geo.geobox import GeoBox

    t = time.perf_counter()
    items = _pystac_items(args.catalog)
    timings["items"] = time.perf_counter() - t
    bounds, _ = _grid(args)
    ds = odc.stac.load(
        items,
        bands=["B04", "B08", "SCL"],
        geobox=GeoBox.from_bbox(bounds, "EPSG:32631", resolution=getattr(args, "resolution", 20)),
        groupby="solar_day",
        chunks={"x": CHUNK, "y": CHUNK},
        resampling={"B04": "average", "B08": "average", "SCL": "nearest"},
    )
    valid = ~ds.SCL.isin(list(CLASSES)) & (ds.B04 != 0) & (ds.B08 != 0)
    red = ds.B04.astype("float32") * SCALE + OFFSET
    nir = ds.B08.astype("float32") * SCALE + OFFSET
    ndvi = ((nir - red) / (nir + red)).where(valid)
    monthly = ndvi.resample(time="1MS").median()
    timings["graph"] = time.perf_counter() - t
    monthly.to_dataset(name="NDVI").drop_vars("spatial_ref", errors="ignore").to_zarr(
        args.out, mode="w", consolidated=True
    )


# -- (c) stackstac --------------------------------------------------------------------------------


def import_stackstac() -> Any:
    """Import the stackstac stack."""
    import stackstac

    _dask_stack()
    return stackstac


def _solar_day(arr: Any) -> Any:
    """Mosaic items of one solar day (the items' local solar date), first item on top."""
    import numpy as np
    import pandas as pd
    import stackstac

    times = pd.DatetimeIndex(arr.time.values)
    # every item is in the same UTM zone: use the lon of the zone's central meridian (3 E)
    day = (times + pd.Timedelta(hours=3 / 15)).floor("D")
    nodata = np.nan if arr.dtype.kind == "f" else 0
    out = (
        arr.assign_coords(time=day)
        .groupby("time")
        .map(stackstac.mosaic, dim="time", reverse=True, nodata=nodata)
    )
    return out


def run_stackstac(args: argparse.Namespace, timings: dict[str, float]) -> None:
    """(c) stackstac + xarray: one stack per resampling, mosaic per solar day."""
    import numpy as np
    import stackstac
    from rasterio.enums import Resampling

    t = time.perf_counter()
    items = _pystac_items(args.catalog)
    for it in items:  # stackstac 0.5 reads proj:epsg (projection v1), not proj:code
        it.make_asset_hrefs_absolute()  # and uses hrefs as they are
        code = it.properties.get("proj:code", "")
        if code.startswith("EPSG:"):
            it.properties.setdefault("proj:epsg", int(code[5:]))
    timings["items"] = time.perf_counter() - t
    bounds, _ = _grid(args)
    common = dict(
        epsg=32631,
        resolution=20,
        bounds=bounds,
        snap_bounds=False,
        chunksize=CHUNK,
        rescale=False,
        xy_coords="center",
        properties=False,
        band_coords=False,
    )
    refl = stackstac.stack(
        items,
        assets=["B04", "B08"],
        resampling=Resampling.average,
        dtype=np.dtype("float32"),
        fill_value=np.float32(np.nan),
        **common,
    )
    scl = stackstac.stack(
        items,
        assets=["SCL"],
        resampling=Resampling.nearest,
        dtype=np.dtype("uint8"),
        fill_value=np.uint8(0),
        **common,
    )
    refl = _solar_day(refl)
    scl = _solar_day(scl).sel(band="SCL", drop=True)
    red = refl.sel(band="B04", drop=True) * SCALE + OFFSET
    nir = refl.sel(band="B08", drop=True) * SCALE + OFFSET
    ndvi = ((nir - red) / (nir + red)).where(~scl.isin(list(CLASSES)))
    monthly = ndvi.resample(time="1MS").median()
    timings["graph"] = time.perf_counter() - t
    ds = monthly.to_dataset(name="NDVI")
    ds = ds.drop_vars([c for c in ds.coords if c not in ("time", "y", "x")])
    ds.attrs, ds["NDVI"].attrs = {}, {}  # stackstac's attrs hold objects Zarr cannot store
    ds.to_zarr(args.out, mode="w", consolidated=True)


# -- (d) rasterio + numpy -------------------------------------------------------------------------


def import_numpy() -> Any:
    """Import the rasterio + numpy + zarr stack (no Dask, no xarray)."""
    import numpy
    import pandas  # noqa: F401
    import rasterio  # noqa: F401
    import zarr  # noqa: F401

    return numpy


def _read_items(catalog: str) -> list[dict]:
    from .dataset import item_dicts

    return item_dicts(Path(catalog))


def _sort_network(values: list[Any]) -> list[Any]:
    """Sort a few equally shaped arrays element-wise, NaNs last (odd-even transposition)."""
    import numpy as np

    v = list(values)
    for rnd in range(len(v)):
        for i in range(rnd % 2, len(v) - 1, 2):
            # fmin keeps the number when one side is NaN; maximum propagates the NaN
            v[i], v[i + 1] = np.fmin(v[i], v[i + 1]), np.maximum(v[i], v[i + 1])
    return v


def nanmedian_first_axis(stack: Any, out: Any) -> None:
    """NaN-aware median along axis 0 of a short (k, h, w) float32 stack, written into ``out``.

    With NaNs sorted last and n valid values the median is s[n//2] (odd n) or the mean of
    s[n/2 - 1] and s[n/2] (even n), as ``np.nanmedian``. Up to 4 values use a sorting network
    of element-wise fmin/maximum, more use ``np.sort``.
    """
    import numpy as np

    k = stack.shape[0]
    if k == 1:
        out[...] = stack[0]
        return
    if k <= 4:
        s = _sort_network([stack[i] for i in range(k)])
        n = np.zeros(out.shape, np.int8)
        for i in range(k):
            n += ~np.isnan(s[i])
        out[...] = np.nan
        for m in range(1, k + 1):
            sel = n == m
            if m % 2:
                out[sel] = s[m // 2][sel]
            else:
                out[sel] = (s[m // 2 - 1][sel] + s[m // 2][sel]) * np.float32(0.5)
        return
    s = np.sort(stack, axis=0)
    n = k - np.isnan(s).sum(axis=0, dtype=np.int8)
    lo = ((n - 1) // 2).clip(min=0).astype(np.intp)[None]
    hi = (n // 2).clip(max=k - 1).astype(np.intp)[None]
    a = np.take_along_axis(s, lo, axis=0)[0]
    b = np.take_along_axis(s, hi, axis=0)[0]
    np.add(a, b, out=out)
    out *= np.float32(0.5)
    out[n == 0] = np.nan


def run_numpy(args: argparse.Namespace, timings: dict[str, float]) -> None:
    """(d) windowed reads from the 20 m overviews in a thread pool, numpy for the rest."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    import pandas as pd
    import rasterio
    from rasterio.windows import Window

    t = time.perf_counter()
    items = _read_items(args.catalog)
    timings["items"] = time.perf_counter() - t
    left, bottom, right, top = _grid(args)[0]
    res = 20.0
    h, w = round((top - bottom) / res), round((right - left) / res)
    # group by solar day (UTC time + lon / 15 h), in time order within a day
    days: dict[np.datetime64, list[dict]] = {}
    for it in items:
        when = pd.Timestamp(it["properties"]["datetime"]).tz_convert(None)
        lon = (it["bbox"][0] + it["bbox"][2]) / 2
        day = (when + pd.Timedelta(seconds=lon * 240)).floor("D").to_datetime64()
        days.setdefault(day, []).append(it)
    day_keys = sorted(days)
    for k in day_keys:
        days[k].sort(key=lambda it: it["properties"]["datetime"])
    bands = {"B04": np.uint16, "B08": np.uint16, "SCL": np.uint8}
    data = {b: np.zeros((len(day_keys), h, w), dt) for b, dt in bands.items()}

    def read(di: int, band: str) -> None:
        out = data[band][di]
        with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"):
            for it in days[day_keys[di]]:
                asset = it["assets"][band]
                with rasterio.open(asset["href"]) as src:
                    st = src.transform
                    x0, x1 = max(left, st.c), min(right, st.c + st.a * src.width)
                    y0, y1 = max(bottom, st.f + st.e * src.height), min(top, st.f)
                    if x1 <= x0 or y1 <= y0:
                        continue
                    c0, r0 = round((x0 - left) / res), round((top - y1) / res)
                    c1, r1 = round((x1 - left) / res), round((top - y0) / res)
                    win = Window(
                        (x0 - st.c) / st.a, (st.f - y1) / -st.e, (x1 - x0) / st.a, (y1 - y0) / -st.e
                    )
                    # out_shape at 20 m: GDAL reads the 20 m overview of the 10 m bands
                    block = src.read(1, window=win, out_shape=(r1 - r0, c1 - c0))
                target = out[r0:r1, c0:c1]
                empty = target == 0
                target[empty] = block[empty]  # first valid pixel wins

    nthreads = _threads()
    with ThreadPoolExecutor(nthreads) as pool:
        list(pool.map(lambda a: read(*a), [(d, b) for d in range(len(day_keys)) for b in bands]))
        timings["read"] = time.perf_counter() - t

        months = pd.DatetimeIndex(day_keys).to_period("M")
        labels = pd.period_range(months.min(), months.max(), freq="M")
        result = np.empty((len(labels), h, w), np.float32)
        bad = np.zeros(256, bool)
        bad[list(CLASSES)] = True
        rows = [(r, min(h, r + 256)) for r in range(0, h, 256)]

        def block(r0: int, r1: int) -> None:
            red = data["B04"][:, r0:r1].astype(np.float32)
            nir = data["B08"][:, r0:r1].astype(np.float32)
            invalid = bad[data["SCL"][:, r0:r1]] | (red == 0) | (nir == 0)
            red *= np.float32(SCALE)
            red += np.float32(OFFSET)
            nir *= np.float32(SCALE)
            nir += np.float32(OFFSET)
            ndvi = nir - red
            nir += red
            ndvi /= nir
            ndvi[invalid] = np.nan
            for mi, label in enumerate(labels):
                sel = np.flatnonzero(months == label)  # contiguous: the days are sorted
                if sel.size == 0:
                    result[mi, r0:r1] = np.nan
                else:
                    nanmedian_first_axis(ndvi[sel[0] : sel[-1] + 1], result[mi, r0:r1])

        with np.errstate(invalid="ignore", divide="ignore"):
            list(pool.map(lambda rr: block(*rr), rows))
    timings["compute"] = time.perf_counter() - t
    xs = left + res * (np.arange(w) + 0.5)
    ys = top - res * (np.arange(h) + 0.5)
    times = (labels.to_timestamp().values - np.datetime64("1970-01-01")) // np.timedelta64(1, "D")
    write_zarr(args.out, result, times.astype(np.int64), ys, xs, pool_size=nthreads)


def write_zarr(store: str, ndvi: Any, days: Any, ys: Any, xs: Any, pool_size: int = 1) -> None:
    """A Zarr v3 group that xarray reads back: NDVI (time, y, x) and its coordinates; the
    time slices are compressed and written from a thread pool."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    import zarr

    root = zarr.open_group(store, mode="w", zarr_format=3)
    for name, values, attrs in (
        ("time", days, {"units": "days since 1970-01-01", "calendar": "proleptic_gregorian"}),
        ("y", ys, {}),
        ("x", xs, {}),
    ):
        arr = root.create_array(
            name, shape=values.shape, dtype=values.dtype, dimension_names=[name]
        )
        arr[:] = values
        arr.attrs.update(attrs)
    out = root.create_array(
        "NDVI",
        shape=ndvi.shape,
        dtype=np.float32,
        chunks=(1, CHUNK, CHUNK),
        fill_value=np.nan,
        dimension_names=["time", "y", "x"],
    )

    def put(i: int) -> None:
        out[i] = ndvi[i]

    with ThreadPoolExecutor(pool_size) as pool:
        list(pool.map(put, range(ndvi.shape[0])))
    zarr.consolidate_metadata(store)


IMPORTS: dict[str, Callable[[], Any]] = {
    "eotoolkit": import_eotoolkit,
    "eotoolkit-zstd": import_eotoolkit,
    "odc": import_odc,
    "stackstac": import_stackstac,
    "numpy": import_numpy,
}
RUNS: dict[str, Callable[[argparse.Namespace, dict[str, float]], None]] = {
    "eotoolkit": run_eotoolkit,
    "eotoolkit-zstd": run_eotoolkit_zstd,
    "odc": run_odc,
    "stackstac": run_stackstac,
    "numpy": run_numpy,
}


def main(argv: list[str] | None = None) -> None:
    """Run one implementation of W and print its timings as JSON."""
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("impl", choices=IMPLS)
    ap.add_argument("--catalog", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--bounds", type=float, nargs=4, required=True, help="UTM grid bounds")
    ap.add_argument("--bbox", type=float, nargs=4, required=True, help="lon/lat bbox")
    ap.add_argument("--profile", help="write a cProfile of the run to this file")
    args = ap.parse_args(argv)
    import warnings

    warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
    warnings.filterwarnings("ignore", message="All-NaN slice", category=RuntimeWarning)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    IMPORTS[args.impl]()
    timings["import"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    if args.profile:
        import cProfile

        cProfile.runctx("RUNS[args.impl](args, timings)", globals(), locals(), args.profile)
    else:
        RUNS[args.impl](args, timings)
    timings["run"] = time.perf_counter() - t1
    print("BENCH " + json.dumps(timings), flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
