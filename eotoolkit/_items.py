"""Flatten STAC items into plain arrays and per-band read specifications.

Everything the loader needs is extracted once per item here, so that graph construction works
on plain tuples and numpy arrays instead of pystac objects.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from typing import Any

import numpy as np
import pandas as pd
import pystac
from pystac.utils import make_absolute_href

from .errors import BandNotFoundError, InvalidParameterError, MixedDtypeError, NoItemsError

#: Sentinel-2 bottom-of-atmosphere reflectance bands (asset keys and common names).
S2_REFLECTANCE = re.compile(
    r"^(B(0?[1-9]|1[0-2]|8A)|coastal|blue|green|red|rededge\d*|nir\d*|swir\d*)$", re.IGNORECASE
)


@dataclass(frozen=True)
class Source:
    """How to read one band of one item."""

    href: str
    nodata: float | None
    scale: float
    offset: float
    #: The item's metadata for the asset, checked against the file when it is read.
    crs: str | None = None
    bbox: tuple[float, ...] | None = None
    scale_declared: bool = False
    dtype: str | None = None


@dataclass
class ItemTable:
    """Per-item arrays and per-band sources of a list of STAC items."""

    ids: list[str]
    times: np.ndarray  # datetime64[ns], UTC, naive
    crs: list[str | None]  # e.g. "EPSG:32631" or WKT, per item
    native_bbox: np.ndarray  # (N, 4) in the item CRS, NaN when unknown
    lonlat_bbox: np.ndarray  # (N, 4) EPSG:4326, NaN when unknown
    sources: dict[str, list[Source | None]]  # band -> per item
    dtypes: dict[str, list[str | None]]  # band -> per item data_type
    resolution: dict[str, float | None]  # band -> native pixel size (first found)
    common_names: dict[str, str | None]  # band -> eo common name

    def __len__(self) -> int:
        return len(self.ids)


ITEMS_ALLOWED = (
    "pystac Items, a pystac ItemCollection or Catalog, or STAC item dicts (GeoJSON Features "
    "with 'assets')"
)


def _not_items(value: Any, why: str) -> InvalidParameterError:
    text = repr(value)
    text = text if len(text) <= 80 else text[:77] + "..."
    return InvalidParameterError(
        f"items={text} are not STAC items: {why}. Expected {ITEMS_ALLOWED}. Get items with "
        f"eotoolkit.search(...) or pystac.read_file(path)."
    )


def _as_items(items: Any) -> list[Any]:
    if isinstance(items, pystac.Catalog):
        return list(items.get_items(recursive=True))
    if isinstance(items, pystac.ItemCollection):
        return list(items)
    if isinstance(items, str | bytes | PathLike) or not hasattr(items, "__iter__"):
        raise _not_items(items, f"got a {type(items).__name__}")
    seq = [items] if isinstance(items, pystac.Item | Mapping) else list(items)
    for i, it in enumerate(seq):
        if isinstance(it, pystac.Item):
            continue
        if not isinstance(it, Mapping):
            raise _not_items(it, f"element {i} is a {type(it).__name__}")
        if it.get("type") != "Feature" or not isinstance(it.get("assets"), Mapping):
            raise _not_items(
                it, f"element {i} is a mapping without type 'Feature' and an 'assets' mapping"
            )
        for key, asset in it["assets"].items():
            if not isinstance(asset, Mapping) or not isinstance(asset.get("href"), str):
                raise _not_items(it, f"asset {key!r} of element {i} has no 'href'")
    return seq


def _item_parts(item: Any) -> tuple[str, dict, Any, dict[str, tuple[str, dict]]]:
    """(id, properties, bbox, {asset key: (absolute href, asset fields)})."""
    if isinstance(item, pystac.Item):
        assets: dict[str, tuple[str, dict]] = {}
        for key, asset in item.assets.items():
            href = asset.href
            if _relative(href):
                href = asset.get_absolute_href() or href
            assets[key] = (href, asset.extra_fields)
        return item.id, item.properties, item.bbox, assets
    self_href = next(
        (
            link.get("href")
            for link in item.get("links") or ()
            if isinstance(link, Mapping) and link.get("rel") == "self"
        ),
        None,
    )
    assets = {}
    for k, v in item.get("assets", {}).items():
        href = v["href"]
        if _relative(href) and isinstance(self_href, str) and not _relative(self_href):
            href = make_absolute_href(href, self_href)
        assets[k] = (href, v)
    props = dict(item.get("properties") or {})
    return str(item.get("id")), props, item.get("bbox"), assets


def _relative(href: str) -> bool:
    return "://" not in href and not href.startswith("/") and not re.match(r"^[A-Za-z]:[\\/]", href)


def _check_absolute(iid: str, key: str, href: str) -> None:
    if _relative(href):
        raise InvalidParameterError(
            f"Asset {key!r} of item {iid!r} has the relative href {href!r} and the item has no "
            f"absolute 'self' link to resolve it against (STAC hrefs are relative to the item "
            f"file, not to the working directory). Read the item with "
            f"pystac.Item.from_file(path) or eotoolkit.search(catalog), or make the href absolute."
        )


def _common_name(fields: Mapping[str, Any]) -> str | None:
    for key in ("eo:bands", "bands"):
        bands = fields.get(key)
        if bands:
            first = bands[0]
            name = first.get("common_name") or first.get("eo:common_name")
            if name:
                return str(name)
    name = fields.get("eo:common_name")
    return str(name) if name else None


def _raster_info(fields: Mapping[str, Any]) -> tuple[float | None, str | None, float, float, bool]:
    """(nodata, data_type, scale, offset, offset_declared) from raster metadata."""
    info: Mapping[str, Any] = fields
    for key in ("raster:bands", "bands"):
        bands = fields.get(key)
        if bands:
            info = {**fields, **bands[0]}
            break
    nodata = info.get("nodata")
    dtype = info.get("data_type")
    scale = info.get("scale", info.get("raster:scale"))
    offset = info.get("offset", info.get("raster:offset"))
    declared = offset is not None and float(offset) != 0.0
    return (
        None if nodata is None else float(nodata),
        None if dtype is None else str(dtype),
        1.0 if scale is None else float(scale),
        0.0 if offset is None else float(offset),
        declared,
    )


def _declares_scale(fields: Mapping[str, Any]) -> bool:
    """Whether the asset's metadata says anything about scale/offset (1 and 0 included)."""
    for src in (fields, *(fields.get(k) or [{}] for k in ("raster:bands", "bands"))):
        if isinstance(src, list):
            src = src[0] if src and isinstance(src[0], Mapping) else {}
        if any(k in src for k in ("scale", "offset", "raster:scale", "raster:offset")):
            return True
    return False


def _crs_of(fields: Mapping[str, Any], props: Mapping[str, Any]) -> str | None:
    for src in (fields, props):
        code = src.get("proj:code")
        if code:
            return str(code)
        epsg = src.get("proj:epsg")
        if epsg:
            return _epsg(epsg)
        wkt = src.get("proj:wkt2")
        if wkt:
            return str(wkt)
    return None


def _epsg(value: Any) -> str:
    text = str(value).strip()
    digits = text.upper().removeprefix("EPSG:")
    if isinstance(value, bool) or not digits.isdigit():
        raise InvalidParameterError(
            f"proj:epsg={value!r} is not an EPSG code: STAC's proj:epsg is an integer such as "
            f"32633 (null when the CRS has none, with proj:wkt2 or proj:projjson instead). Fix "
            f"the item's metadata, or pass crs= with the CRS the files are in."
        )
    return f"EPSG:{int(digits)}"


def _band_count(fields: Mapping[str, Any]) -> int:
    """How many bands the asset's metadata lists (0 when it says nothing)."""
    counts = [
        len(b)
        for k in ("raster:bands", "eo:bands", "bands")
        if isinstance(b := fields.get(k), list)
    ]
    return max(counts, default=0)


def _band_names(fields: Mapping[str, Any]) -> list[str]:
    for key in ("eo:bands", "bands", "raster:bands"):
        bands = fields.get(key)
        if isinstance(bands, list) and len(bands) > 1:
            return [
                str(b.get("common_name") or b.get("eo:common_name") or b.get("name") or i)
                for i, b in enumerate(bands)
                if isinstance(b, Mapping)
            ]
    return []


def _native_bbox(fields: Mapping[str, Any], props: Mapping[str, Any]) -> tuple[float, ...] | None:
    for src in (fields, props):
        transform = src.get("proj:transform")
        shape = src.get("proj:shape")
        if transform and shape:
            a, _, c, _, e, f = (float(v) for v in transform[:6])
            h, w = int(shape[0]), int(shape[1])
            xs, ys = (c, c + a * w), (f, f + e * h)
            return (min(xs), min(ys), max(xs), max(ys))
        bbox = src.get("proj:bbox")
        if bbox:
            corners = [*bbox[:2], *bbox[3:5]] if len(bbox) == 6 else bbox[:4]  # 3-D: z dropped
            return tuple(float(v) for v in corners)
    return None


def _resolution(fields: Mapping[str, Any], props: Mapping[str, Any]) -> float | None:
    for src in (fields, props):
        transform = src.get("proj:transform")
        if transform:
            return abs(float(transform[0]))
        bbox, shape = src.get("proj:bbox"), src.get("proj:shape")
        if bbox and shape and int(shape[1]) > 0:  # proj:bbox and proj:shape only
            xs = (float(bbox[0]), float(bbox[3] if len(bbox) == 6 else bbox[2]))
            return abs(xs[1] - xs[0]) / int(shape[1])
    return None


def _asset_resolution(fields: Mapping[str, Any]) -> float:
    """An asset's own pixel size from its metadata, inf when it says none."""
    res = _resolution(fields, {})
    if res is None:
        info = _raster_info_fields(fields)
        for key in ("spatial_resolution", "raster:spatial_resolution", "gsd"):
            value = info.get(key, fields.get(key))
            if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
                return float(value)
        return float("inf")
    return res


def _raster_info_fields(fields: Mapping[str, Any]) -> Mapping[str, Any]:
    for key in ("raster:bands", "bands"):
        bands = fields.get(key)
        if isinstance(bands, list) and bands and isinstance(bands[0], Mapping):
            return bands[0]
    return {}


def _baseline(props: Mapping[str, Any]) -> float | None:
    value = props.get("s2:processing_baseline")
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _resolve_band(
    band: str, assets: Mapping[str, tuple[str, dict]], cache: dict[tuple, str | None]
) -> str | None:
    keys = tuple(assets)
    ck = (band, keys)
    if ck not in cache:
        if band in assets:
            cache[ck] = band
        else:
            named = [
                key
                for key, (_, fields) in assets.items()
                if (_common_name(fields) or "").lower() == band.lower()
            ]
            # several assets of one common name (B04_10m, B04_20m, B04_60m): the finest
            found = min(named, key=lambda k: _asset_resolution(assets[k][1])) if named else None
            if found is None:
                lower = {k.lower(): k for k in assets}
                found = lower.get(band.lower())
            cache[ck] = found
    return cache[ck]


def available_bands(item: Any) -> list[str]:
    """Asset keys of an item followed by the eo common names they carry."""
    _, _, _, assets = _item_parts(item)
    names = list(assets)
    for key, (_, fields) in assets.items():
        common = _common_name(fields)
        if common and common not in names:
            names.append(f"{common} (= {key})")
    return names


def parse_items(items: Any, bands: Sequence[str] | None) -> tuple[ItemTable, list[str]]:
    """Flatten items into an :class:`ItemTable` for the requested bands.

    ``bands=None`` selects every raster asset of the first item.
    """
    seq = _as_items(items)
    if not seq:
        raise NoItemsError(
            "No items to load: the search or item list is empty. Widen the bbox, datetime or "
            "collections of the search, or check the catalog URL."
        )
    parts = [_item_parts(it) for it in seq]
    if bands is None:
        bands = [
            k
            for k, (href, f) in parts[0][3].items()
            if _looks_raster(href, f) and _band_count(f) <= 1
        ]
        if not bands:
            raise BandNotFoundError(
                f"The first item has no single-band raster asset to load (GeoTIFF/JP2 assets "
                f"with at most one band): its assets are {available_bands(seq[0])}. Pass "
                f"bands= with the single-band assets to load."
            )
    bands = list(bands)
    n = len(parts)
    cache: dict[tuple, str | None] = {}
    sources: dict[str, list[Source | None]] = {b: [None] * n for b in bands}
    dtypes: dict[str, list[str | None]] = {b: [None] * n for b in bands}
    resolution: dict[str, float | None] = dict.fromkeys(bands)
    common: dict[str, str | None] = dict.fromkeys(bands)
    crs: list[str | None] = [None] * n
    native = np.full((n, 4), np.nan)
    lonlat = np.full((n, 4), np.nan)
    raw_times: list[Any] = [None] * n
    ids: list[str] = [""] * n
    found_any = dict.fromkeys(bands, False)
    for i, (iid, props, bbox, assets) in enumerate(parts):
        ids[i] = iid
        raw_times[i] = props.get("datetime") or props.get("start_datetime")
        if bbox:
            lonlat[i] = bbox[:2] + bbox[-3:-1] if len(bbox) == 6 else bbox[:4]
            if lonlat[i, 0] > lonlat[i, 2]:  # crosses the antimeridian: east above 180
                lonlat[i, 2] += 360.0
        baseline = _baseline(props)
        first_key: str | None = None
        for b in bands:
            key = _resolve_band(b, assets, cache)
            if key is None:
                continue
            found_any[b] = True
            href, fields = assets[key]
            nodata, dtype, scale, offset, declared = _raster_info(fields)
            scale_declared = declared or _declares_scale(fields)
            if (
                baseline is not None
                and baseline >= 4.0
                and not declared
                and _is_reflectance(key, fields)
            ):
                offset = -1000.0 * scale
            _check_absolute(iid, key, href)
            if _band_count(fields) > 1:
                raise InvalidParameterError(
                    f"bands={b!r}: asset {key!r} of item {iid!r} holds "
                    f"{_band_count(fields)} bands ({', '.join(_band_names(fields))}) and load "
                    f"reads one band per asset. Ask for the single-band assets instead (e.g. "
                    f"'red', 'green', 'blue' rather than a true-colour 'visual' asset)."
                )
            nb_src = _native_bbox(fields, props)
            sources[b][i] = Source(
                href, nodata, scale, offset, _crs_of(fields, props), nb_src, scale_declared, dtype
            )
            dtypes[b][i] = dtype
            if resolution[b] is None:
                resolution[b] = _resolution(fields, props)
            if common[b] is None:
                common[b] = _common_name(fields)
            if first_key is None:
                first_key = key
        if first_key is not None:
            fields = assets[first_key][1]
            crs[i] = _crs_of(fields, props)
            nb = _native_bbox(fields, props)
            if nb is not None:
                native[i] = nb
    missing = [b for b in bands if not found_any[b]]
    if missing:
        raise BandNotFoundError(
            f"Band(s) {missing} not found in the items. Available bands (asset keys and eo "
            f"common names): {available_bands(seq[0])}. Pass bands= with some of these names."
        )
    for b in bands:
        _check_uniform_scaling(b, sources[b], ids)
    times = _parse_times(ids, raw_times)
    return (
        ItemTable(
            ids=ids,
            times=times.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]"),
            crs=crs,
            native_bbox=native,
            lonlat_bbox=lonlat,
            sources=sources,
            dtypes=dtypes,
            resolution=resolution,
            common_names=common,
        ),
        bands,
    )


def _check_uniform_scaling(band: str, srcs: list[Source | None], ids: list[str]) -> None:
    """Refuse a band whose items disagree on whether it is scaled: reflectances from items
    with raster:bands scale/offset and raw counts from items without would mix silently."""
    scaled = [
        i
        for i, s in enumerate(srcs)
        if s is not None and s.scale_declared and (s.scale, s.offset) != (1.0, 0.0)
    ]
    raw = [i for i, s in enumerate(srcs) if s is not None and not s.scale_declared]
    if scaled and raw:
        first = srcs[scaled[0]]
        assert first is not None
        raise InvalidParameterError(
            f"Band {band!r} has scale {first.scale} and offset {first.offset} in the "
            f"raster:bands of {len(scaled)} item(s) (e.g. {ids[scaled[0]]!r}) and no scale or "
            f"offset in {len(raw)} other(s) (e.g. {ids[raw[0]]!r}): loaded together they would "
            f"mix scaled values with raw counts. Load the items of each provider or collection "
            f"separately, or fix the items' raster:bands."
        )


def _parse_times(ids: list[str], raw: list[Any]) -> pd.Series:
    """The items' times as a UTC series; an item without a usable time is refused by name."""
    out = []
    for iid, value in zip(ids, raw, strict=True):
        try:
            t = pd.to_datetime(value, utc=True, format="ISO8601") if value is not None else None
        except (ValueError, TypeError, OverflowError):
            t = None
        if t is None or pd.isna(t):
            raise InvalidParameterError(
                f"Item {iid!r} has no usable time: properties datetime={value!r} and no "
                f"start_datetime. STAC items need an RFC 3339 'datetime' (or "
                f"'start_datetime'/'end_datetime' with datetime null); fix or drop the item."
            )
        out.append(t)
    return pd.Series(pd.DatetimeIndex(out))


def _looks_raster(href: str, fields: Mapping[str, Any]) -> bool:
    media = str(fields.get("type", ""))
    return "tiff" in media or href.lower().endswith((".tif", ".tiff", ".jp2"))


def _is_reflectance(key: str, fields: Mapping[str, Any]) -> bool:
    common = _common_name(fields)
    return bool(S2_REFLECTANCE.match(key) or (common and S2_REFLECTANCE.match(common)))


def band_dtype(table: ItemTable, band: str) -> str | None:
    """The single data type of a band across items, or None when no item declares one."""
    declared = {d for d, s in zip(table.dtypes[band], table.sources[band], strict=True) if s and d}
    if len(declared) > 1:
        raise MixedDtypeError(
            f"Band {band!r} has different data types across items: {sorted(declared)}. "
            f"Pass dtype= (e.g. dtype='float32') to load them into one type."
        )
    return declared.pop() if declared else None
