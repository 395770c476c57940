"""Static STAC catalogs from GeoTIFF files, sub-catalogs, and local copies of assets."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import fsspec
import pystac
import rasterio
from pyproj import Transformer
from rasterio.warp import transform_geom

from ..stores import storage
from ..stores.storage import StorageOptions

EXTENSIONS = [
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
]


def _is_remote(path: Any) -> bool:
    text = str(path)
    return "://" in text and not text.startswith("file://")


@contextmanager
def _open(
    path: str | os.PathLike[str], storage_options: StorageOptions | None = None
) -> Iterator[rasterio.DatasetReader]:
    """rasterio.open of a local path, or of an s3:// URL with the storage settings."""
    text = str(path)
    if not text.startswith("s3://"):
        with rasterio.open(path) as src:
            yield src
        return
    cfg = storage.resolve(storage_options)
    with (
        storage.storage_errors(text, cfg, "read"),
        storage.gdal_env(cfg, GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"),
        rasterio.open("/vsis3/" + text[len("s3://") :]) as src,
    ):
        yield src


def asset_from_geotiff(
    path: str | os.PathLike[str],
    href: str | None = None,
    storage_options: StorageOptions | None = None,
) -> pystac.Asset:
    """An asset with proj and raster fields read from the file (eo band names when tagged)."""
    with _open(path, storage_options) as src:
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


def _footprint(
    path: str | os.PathLike[str], storage_options: StorageOptions | None = None
) -> tuple[dict, list[float]]:
    with _open(path, storage_options) as src:
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
    storage_options: StorageOptions | None = None,
) -> pystac.Catalog:
    """Build and save a self-contained static catalog at ``dest/catalog.json``.

    ``grouping(path) -> (item id, asset key)`` puts several files in one item (default: one
    item per file, asset "data"). ``datetime`` is a fixed datetime or ``f(path)``; default
    the file's TIFFTAG_DATETIME or modification time. Proj, raster and eo fields come from
    the files. Files and ``dest`` may be ``s3://`` URLs (read and written with
    ``storage_options`` or the AWS environment and profile); ``grouping``, ``datetime`` and
    ``properties`` then get the path ``/bucket/key`` of a file.
    """
    catalog = pystac.Catalog(id=catalog_id, description=description)
    items: dict[str, pystac.Item] = {}
    sources = [str(p) if _is_remote(p) else Path(p) for p in files]
    for src in sorted(sources, key=str):
        f = Path("/" + src.split("://", 1)[1]) if isinstance(src, str) else src
        item_id, key = grouping(f)
        href = src if isinstance(src, str) else str(src.resolve())
        asset = asset_from_geotiff(src, href=href, storage_options=storage_options)
        if item_id not in items:
            geom, bbox = _footprint(src, storage_options)
            when = _when(src, datetime, storage_options, f)
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
    if _is_remote(dest):
        catalog.normalize_hrefs(str(dest).rstrip("/"))
    else:
        catalog.normalize_hrefs(str(Path(dest).resolve()))
    catalog.make_all_asset_hrefs_relative()
    catalog.save(pystac.CatalogType.SELF_CONTAINED, stac_io=storage.stac_io(storage_options))
    return catalog


def _when(
    path: Path | str,
    datetime: Any,
    storage_options: StorageOptions | None = None,
    shown: Path | None = None,
) -> dt.datetime:
    if isinstance(datetime, dt.datetime):
        return datetime
    if callable(datetime):
        return datetime(shown or path)
    with _open(path, storage_options) as src:
        tag = src.tags().get("TIFFTAG_DATETIME")
    if tag:
        try:
            return dt.datetime.strptime(tag, "%Y:%m:%d %H:%M:%S").replace(tzinfo=dt.timezone.utc)
        except ValueError:
            pass
    if isinstance(path, str):
        fs, key = fsspec.core.url_to_fs(path, **storage.fsspec_kwargs(path, storage_options))
        modified = fs.modified(key)
        return modified if modified.tzinfo else modified.replace(tzinfo=dt.timezone.utc)
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


def _copy_one(
    src: str, dst: Path | str, storage_options: StorageOptions | None = None
) -> Path | str:
    src_opts = storage.fsspec_kwargs(src, storage_options)
    if isinstance(dst, str):
        dst_opts = storage.fsspec_kwargs(dst, storage_options)
        with (
            storage.storage_errors(src, storage_options, "read"),
            fsspec.open(src, "rb", **src_opts) as fin,
            storage.storage_errors(dst, storage_options, "write"),
            fsspec.open(dst, "wb", **dst_opts) as fout,
        ):
            while chunk := fin.read(1 << 22):
                fout.write(chunk)
        return dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".part")
    with (
        storage.storage_errors(src, storage_options, "read"),
        fsspec.open(src, "rb", **src_opts) as fin,
        open(tmp, "wb") as fout,
    ):
        while chunk := fin.read(1 << 20):
            fout.write(chunk)
    os.replace(tmp, dst)
    return dst


def _exists(target: Path | str, storage_options: StorageOptions | None) -> bool:
    if isinstance(target, Path):
        return target.exists()
    fs, key = fsspec.core.url_to_fs(target, **storage.fsspec_kwargs(target, storage_options))
    with storage.storage_errors(target, storage_options, "read"):
        return bool(fs.exists(key))


def copy_assets(
    catalog: pystac.Catalog,
    asset_key: str | Iterable[str],
    dest: str | os.PathLike[str],
    *,
    update_catalog: bool = True,
    max_workers: int = 4,
    overwrite: bool = False,
    storage_options: StorageOptions | None = None,
) -> dict[str, Path | str]:
    """Download the given asset(s) of every item (http, local or any fsspec URL) to
    ``dest/<item id>/<file name>`` in parallel; with ``update_catalog`` the assets point at the
    local copies and the catalog is saved again. Returns {remote href: local path}. ``s3://``
    sources and an ``s3://`` ``dest`` (the copies are then URLs) use ``storage_options`` or
    the AWS environment and profile."""
    keys = [asset_key] if isinstance(asset_key, str) else list(asset_key)
    remote = _is_remote(dest)
    base = str(dest).rstrip("/")
    jobs: list[tuple[pystac.Asset, str, Path | str]] = []
    for item in catalog.get_items(recursive=True):
        for key in keys:
            asset = item.assets.get(key)
            if asset is None:
                continue
            href = asset.get_absolute_href() or asset.href
            name = href.rstrip("/").rsplit("/", 1)[-1].split("?")[0]
            target = f"{base}/{item.id}/{name}" if remote else Path(dest) / item.id / name
            jobs.append((asset, href, target))
    done: dict[str, Path | str] = {}
    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        futures = {}
        for _, href, target in jobs:
            if not overwrite and _exists(target, storage_options):
                done[href] = target
                continue
            futures[href] = pool.submit(_copy_one, href, target, storage_options)
        for href, fut in futures.items():
            done[href] = fut.result()
    if update_catalog:
        for asset, href, _ in jobs:
            copy = done[href]
            asset.href = copy if isinstance(copy, str) else str(copy.resolve())
        if catalog.get_self_href():
            catalog.save(stac_io=storage.stac_io(storage_options))
    return done
