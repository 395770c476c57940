"""Static STAC catalogs from GeoTIFF files, sub-catalogs, and local copies of assets."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import fsspec
import pystac
import rasterio
from pyproj import Transformer
from rasterio.warp import transform_geom

EXTENSIONS = [
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
]


def asset_from_geotiff(path: str | os.PathLike[str], href: str | None = None) -> pystac.Asset:
    """An asset with proj and raster fields read from the file (eo band names when tagged)."""
    with rasterio.open(path) as src:
        epsg = src.crs.to_epsg() if src.crs else None
        fields: dict[str, Any] = {
            "proj:code": f"EPSG:{epsg}" if epsg else None,
            "proj:shape": [src.height, src.width],
            "proj:transform": list(src.transform)[:6],
            "proj:bbox": list(src.bounds),
        }
        if src.crs and not epsg:
            fields["proj:wkt2"] = src.crs.to_wkt()
        bands = []
        for i in range(src.count):
            band: dict[str, Any] = {"data_type": src.dtypes[i]}
            if src.nodatavals[i] is not None:
                band["nodata"] = src.nodatavals[i]
            if src.scales[i] != 1.0:
                band["scale"] = src.scales[i]
            if src.offsets[i] != 0.0:
                band["offset"] = src.offsets[i]
            band["spatial_resolution"] = abs(src.transform.a)
            bands.append(band)
        fields["raster:bands"] = bands
        names = [d for d in src.descriptions if d]
        if names:
            fields["eo:bands"] = [{"name": n} for n in names]
        media = pystac.MediaType.COG if _is_cog(src) else pystac.MediaType.GEOTIFF
    fields = {k: v for k, v in fields.items() if v is not None}
    return pystac.Asset(href or str(path), media_type=media, roles=["data"], extra_fields=fields)


def _is_cog(src: rasterio.DatasetReader) -> bool:
    return src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG" or (
        src.block_shapes[0][0] < src.height and bool(src.overviews(1))
    )


def _footprint(path: str | os.PathLike[str]) -> tuple[dict, list[float]]:
    with rasterio.open(path) as src:
        left, bottom, right, top = src.bounds
        ring = [(left, bottom), (right, bottom), (right, top), (left, top), (left, bottom)]
        geom = {"type": "Polygon", "coordinates": [ring]}
        if src.crs and src.crs.to_epsg() != 4326:
            geom = transform_geom(src.crs, "EPSG:4326", geom)
            xs, ys = Transformer.from_crs(src.crs, "EPSG:4326", always_xy=True).transform(
                [left, right, right, left], [bottom, bottom, top, top]
            )
            bbox = [min(xs), min(ys), max(xs), max(ys)]
        else:
            bbox = [left, bottom, right, top]
    return geom, [float(v) for v in bbox]


def _default_grouping(path: Path) -> tuple[str, str]:
    return path.stem, "data"


def build_catalog(
    files: Iterable[str | os.PathLike[str]],
    dest: str | os.PathLike[str],
    *,
    catalog_id: str = "catalog",
    description: str = "Catalog of GeoTIFF files.",
    grouping: Callable[[Path], tuple[str, str]] = _default_grouping,
    datetime: Callable[[Path], dt.datetime] | dt.datetime | None = None,
    properties: Callable[[Path], dict] | None = None,
) -> pystac.Catalog:
    """Build and save a self-contained static catalog at ``dest/catalog.json``.

    ``grouping(path) -> (item id, asset key)`` puts several files in one item (default: one
    item per file, asset "data"). ``datetime`` is a fixed datetime or ``f(path)``; default
    the file's TIFFTAG_DATETIME or modification time. Proj, raster and eo fields come from
    the files.
    """
    dest = Path(dest)
    catalog = pystac.Catalog(id=catalog_id, description=description)
    items: dict[str, pystac.Item] = {}
    for f in sorted(Path(p) for p in files):
        item_id, key = grouping(f)
        asset = asset_from_geotiff(f, href=str(f.resolve()))
        if item_id not in items:
            geom, bbox = _footprint(f)
            when = _when(f, datetime)
            props = dict(properties(f)) if properties else {}
            code = asset.extra_fields.get("proj:code")
            if code:
                props["proj:code"] = code
            items[item_id] = pystac.Item(
                item_id, geom, bbox, when, props, stac_extensions=list(EXTENSIONS)
            )
        items[item_id].add_asset(key, asset)
    for item in items.values():
        catalog.add_item(item)
    catalog.normalize_hrefs(str(dest.resolve()))
    catalog.make_all_asset_hrefs_relative()
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return catalog


def _when(path: Path, datetime: Any) -> dt.datetime:
    if isinstance(datetime, dt.datetime):
        return datetime
    if callable(datetime):
        return datetime(path)
    with rasterio.open(path) as src:
        tag = src.tags().get("TIFFTAG_DATETIME")
    if tag:
        try:
            return dt.datetime.strptime(tag, "%Y:%m:%d %H:%M:%S").replace(tzinfo=dt.timezone.utc)
        except ValueError:
            pass
    return dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.timezone.utc)


def generate_subcatalogs(
    catalog: pystac.Catalog, template: str, *, save: bool = True
) -> pystac.Catalog:
    """Regroup items into sub-catalogs by a template of properties, e.g. "${year}/${month}"
    or "${s2:mgrs_tile}", and save the catalog again in place."""
    root_href = catalog.get_self_href()
    catalog.generate_subcatalogs(template)
    if save and root_href:
        catalog.normalize_hrefs(str(Path(root_href).resolve().parent))
        catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return catalog


def _copy_one(src: str, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".part")
    with fsspec.open(src, "rb") as fin, open(tmp, "wb") as fout:
        while chunk := fin.read(1 << 20):
            fout.write(chunk)
    os.replace(tmp, dst)
    return dst


def copy_assets(
    catalog: pystac.Catalog,
    asset_key: str | Iterable[str],
    dest: str | os.PathLike[str],
    *,
    update_catalog: bool = True,
    max_workers: int = 4,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Download the given asset(s) of every item (http, local or any fsspec URL) to
    ``dest/<item id>/<file name>`` in parallel; with ``update_catalog`` the assets point at the
    local copies and the catalog is saved again. Returns {remote href: local path}."""
    keys = [asset_key] if isinstance(asset_key, str) else list(asset_key)
    dest = Path(dest)
    jobs: list[tuple[pystac.Asset, str, Path]] = []
    for item in catalog.get_items(recursive=True):
        for key in keys:
            asset = item.assets.get(key)
            if asset is None:
                continue
            href = asset.get_absolute_href() or asset.href
            name = href.rstrip("/").rsplit("/", 1)[-1].split("?")[0]
            jobs.append((asset, href, dest / item.id / name))
    done: dict[str, Path] = {}
    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        futures = {}
        for _, href, target in jobs:
            if target.exists() and not overwrite:
                done[href] = target
                continue
            futures[href] = pool.submit(_copy_one, href, target)
        for href, fut in futures.items():
            done[href] = fut.result()
    if update_catalog:
        for asset, href, _ in jobs:
            asset.href = str(done[href].resolve())
        if catalog.get_self_href():
            catalog.save()
    return done
