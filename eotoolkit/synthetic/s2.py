"""A reproducible Sentinel-2 L2A-like collection: COGs plus a static STAC catalog.

Fields are smooth functions of world coordinates (sums of low-frequency cosines), so
overlapping tiles agree where they overlap. Vegetation follows an NDVI season, clouds and their
shadows are consistent between reflectance and the scene classification (SCL). Digital numbers
carry the processing-baseline >= 04.00 offset (DN = reflectance * 10000 + 1000).
"""

from __future__ import annotations

import datetime as dt
import math
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pystac
import rasterio
import rasterio.shutil
from affine import Affine
from pyproj import Transformer

CRS = "EPSG:32631"
ORIGIN = (399960.0, 5800020.0)  # upper-left corner of the first tile
BAND_INFO = {
    # key: (common name, centre wavelength um, resolution m)
    "B02": ("blue", 0.490, 10),
    "B03": ("green", 0.560, 10),
    "B04": ("red", 0.665, 10),
    "B08": ("nir", 0.842, 10),
    "B11": ("swir16", 1.610, 20),
    "SCL": (None, None, 20),
}
ROW_BLOCK = 512
EXTENSIONS = [
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
]


@dataclass(frozen=True)
class _Wave:
    amp: float
    kx: float
    ky: float
    px: float
    py: float


def _waves(rng: np.random.Generator, n: int, wavelength: tuple[float, float]) -> list[_Wave]:
    out = []
    for _ in range(n):
        lam = rng.uniform(*wavelength)
        theta = rng.uniform(0, math.pi)
        k = 2 * math.pi / lam
        out.append(
            _Wave(
                amp=rng.uniform(0.5, 1.0),
                kx=k * math.cos(theta),
                ky=k * math.sin(theta),
                px=rng.uniform(0, 2 * math.pi),
                py=rng.uniform(0, 2 * math.pi),
            )
        )
    return out


def _field(waves: list[_Wave], x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Sum of separable cosines on the grid x (columns) by y (rows), roughly in [-1, 1]."""
    total = np.zeros((y.size, x.size), np.float32)
    norm = sum(w.amp for w in waves) / 2
    for w in waves:
        cy = np.cos(w.ky * y + w.py).astype(np.float32)
        sy = np.sin(w.ky * y + w.py).astype(np.float32)
        cx = np.cos(w.kx * x + w.px).astype(np.float32)
        sx = np.sin(w.kx * x + w.px).astype(np.float32)
        # cos(a + b) = cos a cos b - sin a sin b, separable in x and y
        total += w.amp * (cy[:, None] * cx[None, :] - sy[:, None] * sx[None, :])
    return total / norm


@dataclass(frozen=True)
class _Scene:
    veg: list[_Wave]
    soil: list[_Wave]
    water: list[_Wave]


@dataclass(frozen=True)
class _Sky:
    cloud: list[_Wave]
    threshold: float
    shadow_shift: tuple[float, float]


def _season(day_of_year: int) -> float:
    return math.exp(-(((day_of_year - 190) / 70.0) ** 2))


def _surface(
    scene: _Scene, sky: _Sky, x: np.ndarray, y: np.ndarray, season: float
) -> dict[str, np.ndarray]:
    """Reflectances (float32) and SCL (uint8) on the grid x by y."""
    veg = 1 / (1 + np.exp(-3 * _field(scene.veg, x, y)))
    soil = 0.12 + 0.05 * _field(scene.soil, x, y)
    water = _field(scene.water, x, y) > 0.75
    green_up = veg * (0.45 + 0.55 * season)
    ndvi = 0.1 + 0.8 * green_up
    red = soil * (1 - 0.7 * green_up) + 0.01
    nir = red * (1 + ndvi) / (1 - ndvi)
    refl = {
        "B02": 0.6 * red + 0.02,
        "B03": 0.75 * red + 0.03 + 0.04 * green_up,
        "B04": red,
        "B08": nir,
        "B11": 0.55 * (red + 0.5 * nir) + 0.02,
    }
    scl = np.where(ndvi > 0.4, 4, 5).astype(np.uint8)
    for key, value in refl.items():
        refl[key] = np.where(water, {"B08": 0.02, "B11": 0.01}.get(key, 0.035), value)
    scl[water] = 6
    cf = _field(sky.cloud, x, y)
    sx, sy = sky.shadow_shift
    shade = (_field(sky.cloud, x - sx, y - sy) > sky.threshold) & (cf <= sky.threshold - 0.3)
    cirrus = (cf > sky.threshold - 0.3) & (cf <= sky.threshold)
    cloud = cf > sky.threshold
    for key in refl:
        r = refl[key]
        r = np.where(shade, r * 0.35, r)
        r = np.where(cirrus, r + 0.06, r)
        refl[key] = np.where(cloud, 0.35 + 0.25 * np.clip(cf - sky.threshold, 0, 1), r)
    scl[shade] = 3
    scl[cirrus] = 10
    scl[cloud] = 8
    scl[cf > sky.threshold + 0.3] = 9
    out: dict[str, np.ndarray] = {k: v.astype(np.float32) for k, v in refl.items()}
    out["SCL"] = scl
    return out


def _to_dn(refl: np.ndarray) -> np.ndarray:
    return np.clip(np.round(refl * 10000 + 1000), 1, 65535).astype(np.uint16)


def _blocksize(size: int) -> int:
    bs = 64
    while bs * 2 <= min(512, max(64, size // 2)):
        bs *= 2
    return bs


def _tile_layout(tiles: int, size: int) -> list[tuple[str, float, float]]:
    """(MGRS-like name, left, top) per tile; neighbours overlap like real MGRS tiles."""
    overlap = _overlap(size)
    ncols = math.ceil(math.sqrt(tiles)) if tiles > 3 else tiles
    step = (size - overlap) * 10.0
    out = []
    for i in range(tiles):
        row, col = divmod(i, ncols)
        name = f"31U{chr(ord('D') + col)}{chr(ord('Q') - row)}"
        out.append((name, ORIGIN[0] + col * step, ORIGIN[1] - row * step))
    return out


def _overlap(size: int) -> int:
    return max(8, (size // 16) // 2 * 2)


def _write_cog(tmp: Path, dst: Path, categorical: bool, blocksize: int) -> None:
    rasterio.shutil.copy(
        tmp,
        dst,
        driver="COG",
        compress="DEFLATE",
        level=1,
        predictor="2",
        num_threads="ALL_CPUS",
        blocksize=blocksize,
        overview_resampling="nearest" if categorical else "average",
        overview_count=2 if categorical else 3,
    )


def _write_item_rasters(
    folder: Path,
    scene: _Scene,
    sky: _Sky,
    left: float,
    top: float,
    size: int,
    season: float,
    bands: tuple[str, ...],
    edge_nodata: bool,
) -> None:
    """Write one item's bands as COGs, computing the fields in row blocks."""
    blocksize = _blocksize(size)
    overlap = _overlap(size)
    with tempfile.TemporaryDirectory(dir=folder) as tmpdir:
        tmps: dict[str, Path] = {}
        dsts: dict[str, rasterio.io.DatasetWriter] = {}
        for band in bands:
            res = BAND_INFO[band][2]
            n = size * 10 // res
            tmps[band] = Path(tmpdir) / f"{band}.tif"
            dsts[band] = rasterio.open(
                tmps[band],
                "w",
                driver="GTiff",
                width=n,
                height=n,
                count=1,
                dtype="uint8" if band == "SCL" else "uint16",
                crs=CRS,
                nodata=0,
                transform=Affine(res, 0, left, 0, -res, top),
                tiled=True,
                blockxsize=blocksize,
                blockysize=blocksize,
            )
        try:
            for res in sorted({BAND_INFO[b][2] for b in bands}):
                n = size * 10 // res
                x = left + (np.arange(n) + 0.5) * res
                for r0 in range(0, n, ROW_BLOCK):
                    rows = np.arange(r0, min(n, r0 + ROW_BLOCK))
                    y = top - (rows + 0.5) * res
                    fields = _surface(scene, sky, x, y, season)
                    if edge_nodata:
                        cut = (n - overlap * 10 // res) + (rows[:, None] / n) * overlap * 10 / res
                        gap = np.arange(n)[None, :] >= cut
                    for band in bands:
                        if BAND_INFO[band][2] != res:
                            continue
                        value = fields[band] if band == "SCL" else _to_dn(fields[band])
                        if edge_nodata:
                            value = np.where(gap, 0, value).astype(value.dtype)
                        win = rasterio.windows.Window(0, r0, n, rows.size)
                        dsts[band].write(value, 1, window=win)
        finally:
            for d in dsts.values():
                d.close()
        for band in bands:
            _write_cog(tmps[band], folder / f"{band}.tif", band == "SCL", blocksize)


def _asset(band: str, href: str, left: float, top: float, size: int) -> pystac.Asset:
    common, wavelength, res = BAND_INFO[band]
    n = size * 10 // res
    raster: dict = {
        "nodata": 0,
        "data_type": "uint8" if band == "SCL" else "uint16",
        "spatial_resolution": res,
    }
    fields: dict = {
        "proj:shape": [n, n],
        "proj:transform": [res, 0.0, left, 0.0, -float(res), top],
        "raster:bands": [raster],
    }
    if band != "SCL":
        raster["scale"] = 0.0001
        fields["eo:bands"] = [
            {"name": band, "common_name": common, "center_wavelength": wavelength}
        ]
    return pystac.Asset(
        href=href,
        media_type=pystac.MediaType.COG,
        roles=["data"],
        title=f"{band} ({res} m)" if band != "SCL" else "Scene classification (20 m)",
        extra_fields=fields,
    )


def write_s2_collection(
    root: str | os.PathLike[str],
    *,
    tiles: int = 2,
    dates: int = 4,
    size: int = 256,
    start: str = "2024-03-01",
    every_days: int = 15,
    seed: int = 0,
    bands: tuple[str, ...] | list[str] = ("B04", "B08", "SCL"),
    processing_baseline: str = "05.10",
    collection_id: str = "sentinel-2-l2a-synthetic",
    workers: int = 2,
) -> pystac.Catalog:
    """Write a synthetic Sentinel-2 L2A collection under ``root`` and return its catalog.

    ``tiles`` adjacent UTM 31N tiles overlapping by a small margin, ``dates`` acquisitions
    ``every_days`` apart from ``start``, ``size`` pixels wide at 10 m (20 m bands are half as
    wide). The root ``catalog.json`` holds one collection whose items carry the proj, eo and
    raster extensions and ``s2:processing_baseline``. The same ``seed`` gives the same files.
    """
    bands = tuple(bands)
    unknown = [b for b in bands if b not in BAND_INFO]
    if unknown:
        raise ValueError(f"Unknown band(s) {unknown}; choose from {list(BAND_INFO)}.")
    if size % 2 or size < 32:
        raise ValueError("size must be an even number of 10 m pixels, at least 32.")
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    scene = _Scene(
        veg=_waves(rng, 6, (800.0, 6000.0)),
        soil=_waves(rng, 4, (500.0, 4000.0)),
        water=_waves(rng, 3, (1500.0, 5000.0)),
    )
    t0 = dt.datetime.fromisoformat(start).replace(hour=10, minute=30, tzinfo=dt.timezone.utc)
    to_ll = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    layout = _tile_layout(tiles, size)
    jobs: list[tuple] = []
    pending: list[tuple] = []
    for d in range(dates):
        day_rng = np.random.default_rng([seed, d])
        sky = _Sky(
            cloud=_waves(day_rng, 5, (700.0, 5000.0)),
            threshold=float(day_rng.uniform(0.7, 1.5)),
            shadow_shift=(float(day_rng.uniform(150, 400)), float(day_rng.uniform(-400, -150))),
        )
        when = t0 + dt.timedelta(days=d * every_days)
        season = _season(when.timetuple().tm_yday)
        for i, (name, left, top) in enumerate(layout):
            item_id = f"S2X_MSIL2A_{when:%Y%m%d}_T{name}"
            folder = root / collection_id / item_id
            folder.mkdir(parents=True, exist_ok=True)
            edge = d % 2 == 1 and i == 0 and tiles > 1
            jobs.append((folder, scene, sky, left, top, size, season, bands, edge))
            pending.append(
                (
                    item_id,
                    name,
                    when + dt.timedelta(seconds=5 * i),
                    left,
                    top,
                    size,
                    bands,
                    folder,
                    to_ll,
                    processing_baseline,
                )
            )
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for _ in pool.map(lambda job: _write_item_rasters(*job), jobs):
            pass
    items = [_item(*args) for args in pending]
    return _write_catalog(root, collection_id, items)


def _item(
    item_id: str,
    tile: str,
    when: dt.datetime,
    left: float,
    top: float,
    size: int,
    bands: tuple[str, ...],
    folder: Path,
    to_ll: Transformer,
    baseline: str,
) -> pystac.Item:
    right, bottom = left + size * 10.0, top - size * 10.0
    xs, ys = to_ll.transform([left, right, right, left], [bottom, bottom, top, top])
    ring = [[float(a), float(b)] for a, b in zip(xs, ys, strict=True)]
    geometry = {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}
    bbox = [float(min(xs)), float(min(ys)), float(max(xs)), float(max(ys))]
    scl_path = folder / "SCL.tif"
    cloud = None
    if scl_path.exists():
        with rasterio.open(scl_path) as src:
            scl = src.read(1, out_shape=(64, 64))
        cloud = float(np.isin(scl, (8, 9, 10)).mean() * 100)
    props = {
        "platform": "sentinel-2a",
        "constellation": "sentinel-2",
        "instruments": ["msi"],
        "proj:code": CRS,
        "proj:bbox": [left, bottom, right, top],
        "s2:processing_baseline": baseline,
        "s2:mgrs_tile": tile,
        "gsd": 10,
    }
    if cloud is not None:
        props["eo:cloud_cover"] = round(cloud, 2)
    item = pystac.Item(item_id, geometry, bbox, when, props, stac_extensions=list(EXTENSIONS))
    for band in bands:
        item.add_asset(band, _asset(band, str(folder / f"{band}.tif"), left, top, size))
    return item


def _write_catalog(root: Path, collection_id: str, items: list[pystac.Item]) -> pystac.Catalog:
    bboxes = np.asarray([it.bbox for it in items])
    times = sorted(it.datetime for it in items if it.datetime)
    collection = pystac.Collection(
        id=collection_id,
        description="Synthetic Sentinel-2 L2A-like surface reflectance (eotoolkit.synthetic).",
        extent=pystac.Extent(
            pystac.SpatialExtent(
                [[float(v) for v in (*bboxes[:, :2].min(0), *bboxes[:, 2:].max(0))]]
            ),
            pystac.TemporalExtent([[times[0], times[-1]]]),
        ),
        license="CC0-1.0",
        stac_extensions=list(EXTENSIONS),
    )
    for it in items:
        collection.add_item(it)
    catalog = pystac.Catalog(id="synthetic", description="Synthetic Earth-observation data.")
    catalog.add_child(collection)
    catalog.normalize_hrefs(str(Path(root).resolve()))
    for it in items:
        it.make_asset_hrefs_relative()
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return catalog
