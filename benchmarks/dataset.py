"""The benchmark dataset: a cached synthetic Sentinel-2 L2A collection and the workload grid."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
CRS = "EPSG:32631"
RES = 20.0
#: Fraction of the area of the union of the tiles that the workload bbox covers.
AREA_FRACTION = 0.6


@dataclass(frozen=True)
class Params:
    """Parameters of the generated collection (the cache key)."""

    size: int = 4096
    dates: int = 12
    tiles: int = 2
    every_days: int = 15
    start: str = "2024-03-01"
    seed: int = 0
    bands: tuple[str, ...] = ("B04", "B08", "SCL")

    def key(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return f"s2-{self.size}px-{self.dates}d-{hashlib.sha1(blob).hexdigest()[:8]}"


@dataclass(frozen=True)
class Grid:
    """The workload's output grid: UTM bounds snapped to 20 m and the lon/lat request bbox."""

    bbox_lonlat: tuple[float, float, float, float]
    bounds: tuple[float, float, float, float]  # left, bottom, right, top in CRS
    shape: tuple[int, int]  # (height, width) at RES


def catalog_path(p: Params) -> Path:
    """Where the catalog.json of these parameters lives (it may not exist yet)."""
    return DATA / p.key() / "catalog.json"


def ensure(p: Params, *, quiet: bool = False) -> Path:
    """Generate the collection unless it is already cached; return its catalog.json path."""
    path = catalog_path(p)
    done = path.parent / ".complete"
    if done.exists():
        return path
    from eotoolkit.synthetic.s2 import write_s2_collection

    if path.parent.exists():
        shutil.rmtree(path.parent)
    t0 = time.perf_counter()
    if not quiet:
        print(f"generating {p} under {path.parent} ...", flush=True)
    write_s2_collection(
        path.parent,
        tiles=p.tiles,
        dates=p.dates,
        size=p.size,
        start=p.start,
        every_days=p.every_days,
        seed=p.seed,
        bands=p.bands,
    )
    done.write_text(json.dumps(asdict(p)))
    if not quiet:
        print(f"generated in {time.perf_counter() - t0:.1f} s", flush=True)
    return path


def item_dicts(catalog: Path) -> list[dict]:
    """The items of the catalog as plain dicts with absolute asset hrefs (no pystac)."""
    out = []
    for item_path in sorted(catalog.parent.glob("*/*/*.json")):
        if item_path.name == "collection.json":
            continue
        item = json.loads(item_path.read_text())
        for asset in item["assets"].values():
            href = asset["href"]
            if not href.startswith("/") and "://" not in href:
                asset["href"] = str((item_path.parent / href).resolve())
        out.append(item)
    out.sort(key=lambda it: (it["properties"]["datetime"], it["id"]))
    return out


def data_bounds(items: list[dict]) -> tuple[float, float, float, float]:
    """Union of the items' proj:bbox."""
    boxes = [it["properties"]["proj:bbox"] for it in items]
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def workload_grid(items: list[dict]) -> Grid:
    """A lon/lat bbox over about 60 % of the tiles' union, and the grid eotoolkit derives from it.

    The UTM grid is computed like ``eotoolkit.load``: the bbox corners and edge midpoints are
    projected, the envelope is snapped outwards to 20 m and clipped to the data.
    """
    from pyproj import Transformer

    left, bottom, right, top = data_bounds(items)
    k = math.sqrt(AREA_FRACTION)
    cx, cy = (left + right) / 2, (bottom + top) / 2
    hw, hh = (right - left) * k / 2, (top - bottom) * k / 2
    to_ll = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    to_utm = Transformer.from_crs("EPSG:4326", CRS, always_xy=True)
    # the lon/lat box inscribed in the UTM box (so that projected back it covers ~60 %)
    xs, ys = to_ll.transform(
        [cx - hw, cx + hw, cx + hw, cx - hw], [cy - hh, cy - hh, cy + hh, cy + hh]
    )
    bbox = (
        round(max(xs[0], xs[3]), 6),
        round(max(ys[0], ys[1]), 6),
        round(min(xs[1], xs[2]), 6),
        round(min(ys[2], ys[3]), 6),
    )
    x0, y0, x1, y1 = bbox
    xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
    px, py = to_utm.transform([x0, x1, x0, x1, xm, xm, x0, x1], [y0, y0, y1, y1, y0, y1, ym, ym])
    b = (
        max(min(px), left),
        max(min(py), bottom),
        min(max(px), right),
        min(max(py), top),
    )
    snapped = (
        math.floor(b[0] / RES + 1e-9) * RES,
        math.floor(b[1] / RES + 1e-9) * RES,
        math.ceil(b[2] / RES - 1e-9) * RES,
        math.ceil(b[3] / RES - 1e-9) * RES,
    )
    shape = (round((snapped[3] - snapped[1]) / RES), round((snapped[2] - snapped[0]) / RES))
    return Grid(bbox_lonlat=bbox, bounds=snapped, shape=shape)


def decoded_bytes(items: list[dict], grid: Grid) -> int:
    """Bytes of decoded pixels at 20 m that the workload needs (per item and band, the window
    of the 20 m source - the overview of 10 m bands, the full SCL - intersecting the grid)."""
    left, bottom, right, top = grid.bounds
    total = 0
    for it in items:
        for key in ("B04", "B08", "SCL"):
            a = it["assets"][key]
            res, _, c, _, e, f = a["proj:transform"][:6]
            h, w = a["proj:shape"]
            x0, x1 = max(left, c), min(right, c + res * w)
            y0, y1 = max(bottom, f + e * h), min(top, f)
            if x1 <= x0 or y1 <= y0:
                continue
            npix = round((x1 - x0) / RES) * round((y1 - y0) / RES)
            total += npix * (1 if key == "SCL" else 2)
    return total


def main() -> None:
    """``python -m benchmarks.dataset [--size N --dates N]``: generate and describe the data."""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--size", type=int, default=Params.size)
    ap.add_argument("--dates", type=int, default=Params.dates)
    args = ap.parse_args()
    p = Params(size=args.size, dates=args.dates)
    cat = ensure(p)
    items = item_dicts(cat)
    grid = workload_grid(items)
    print(
        json.dumps(
            {
                "catalog": str(cat),
                "items": len(items),
                **asdict(grid),
                "decoded_mb": decoded_bytes(items, grid) / 1e6,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
