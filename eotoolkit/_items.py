"""Flatten STAC items into plain arrays and per-band read specifications.

Everything the loader needs is extracted once per item here, so that graph construction works
on plain tuples and numpy arrays instead of pystac objects.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from os import PathLike
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pystac
from pystac.utils import make_absolute_href

from .errors import BandNotFoundError, InvalidParameterError, MixedDtypeError, NoItemsError

_UNSET = object()

#: Sentinel-2 bottom-of-atmosphere reflectance bands (asset keys and common names).
S2_REFLECTANCE = re.compile(
    r"^(B(0?[1-9]|1[0-2]|8A)|coastal|blue|green|red|rededge\d*|nir\d*|swir\d*)$", re.IGNORECASE
)


class Source(NamedTuple):
    """How to read one band of one item (a named tuple: a lazy load makes one per item and
    band, and a tuple is made several times faster than a frozen dataclass)."""

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
    seq = _sequence(items)
    for i, it in enumerate(seq):
        if type(it) is dict and _plain_feature(it):
            continue
        _check_item(i, it)
    return seq


def _sequence(items: Any) -> list[Any]:
    """The items as a list (a Catalog's and an ItemCollection's without further checks)."""
    if isinstance(items, pystac.Catalog):
        return list(items.get_items(recursive=True))
    if isinstance(items, pystac.ItemCollection):
        return list(items)
    if isinstance(items, str | bytes | PathLike) or not hasattr(items, "__iter__"):
        raise _not_items(items, f"got a {type(items).__name__}")
    return [items] if isinstance(items, pystac.Item | Mapping) else list(items)


def _check_item(i: int, it: Any) -> None:
    """Refuse element ``i`` unless it is a pystac Item or a Feature mapping whose assets are
    mappings with string hrefs."""
    if isinstance(it, pystac.Item):
        return
    if not isinstance(it, Mapping):
        raise _not_items(it, f"element {i} is a {type(it).__name__}")
    if it.get("type") != "Feature" or not isinstance(it.get("assets"), Mapping):
        raise _not_items(
            it, f"element {i} is a mapping without type 'Feature' and an 'assets' mapping"
        )
    for key, asset in it["assets"].items():
        if not isinstance(asset, Mapping) or not isinstance(asset.get("href"), str):
            raise _not_items(it, f"asset {key!r} of element {i} has no 'href'")


def _items_and_parts(items: Any) -> tuple[list[Any], list[tuple]]:
    """``_as_items(items)`` and the ``_item_parts`` of each, a plain JSON item dict checked and
    taken apart in one pass over its assets."""
    seq = _sequence(items)
    parts = []
    for i, it in enumerate(seq):
        got = _plain_parts(it) if type(it) is dict else None
        if got is None:
            _check_item(i, it)
            got = _item_parts(it)
        parts.append(got)
    return seq, parts


def _plain_parts(item: dict) -> tuple[str, dict, Any, dict[str, tuple[str, dict]]] | None:
    """``_item_parts`` of an item dict that is a Feature whose assets are dicts with string
    hrefs; None for any other (checked and taken apart the general way)."""
    raw = item.get("assets")
    if item.get("type") != "Feature" or type(raw) is not dict:
        return None
    assets = {}
    base: Any = _UNSET  # the self link, looked for when an href is relative
    for k, v in raw.items():
        if type(v) is not dict:
            return None
        href = v.get("href")
        if type(href) is not str:
            return None
        if href[:1] != "/" and _relative(href):  # an absolute path, told at once
            if base is _UNSET:
                base = _self_base(item)
            if base is not None:
                href = make_absolute_href(href, base)
        assets[k] = (href, v)
    return str(item.get("id")), item.get("properties") or {}, item.get("bbox"), assets


def _plain_feature(item: dict) -> bool:
    """Whether an item dict is a Feature whose assets are dicts with string hrefs (what
    ``_as_items`` checks, without the abstract type checks, for the usual JSON dicts)."""
    assets = item.get("assets")
    if item.get("type") != "Feature" or type(assets) is not dict:
        return False
    for asset in assets.values():
        if type(asset) is not dict or type(asset.get("href")) is not str:
            return False
    return True


def _item_parts(item: Any) -> tuple[str, dict, Any, dict[str, tuple[str, dict]]]:
    """(id, properties, bbox, {asset key: (absolute href, asset fields)})."""
    if type(item) is not dict and isinstance(item, pystac.Item):
        assets: dict[str, tuple[str, dict]] = {}
        for key, asset in item.assets.items():
            href = asset.href
            if _relative(href):
                href = asset.get_absolute_href() or href
            assets[key] = (href, asset.extra_fields)
        return item.id, item.properties, item.bbox, assets
    assets = {}
    base: Any = _UNSET  # the self link, looked for when an href is relative
    for k, v in item.get("assets", {}).items():
        href = v["href"]
        if _relative(href):
            if base is _UNSET:
                base = _self_base(item)
            if base is not None:
                href = make_absolute_href(href, base)
        assets[k] = (href, v)
    return str(item.get("id")), item.get("properties") or {}, item.get("bbox"), assets


def _self_base(item: Mapping[str, Any]) -> str | None:
    """The item's absolute 'self' link, which relative asset hrefs are resolved against."""
    for link in item.get("links") or ():
        if isinstance(link, Mapping) and link.get("rel") == "self":
            href = link.get("href")
            return href if isinstance(href, str) and not _relative(href) else None
    return None


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


_SCALE_KEYS = ("scale", "offset", "raster:scale", "raster:offset")
_NO_FIELDS: Mapping[str, Any] = {}


#: Asset fields that, absent, leave an asset's raster metadata to its first raster band.
_ASSET_RASTER_KEYS = frozenset({*_SCALE_KEYS, "nodata", "data_type", "bands"})


class _InfoMemo:
    """``_asset_info`` results of assets whose own fields leave everything to their first raster
    band, by that band (its keys, values and their types) and the band counts; the last one
    asked is compared first, without building a key (the items of a collection repeat it)."""

    __slots__ = ("by_key", "last")

    def __init__(self) -> None:
        self.by_key: dict[tuple, tuple] = {}
        #: (first band, its value types, band counts, info) of the last asset asked
        self.last: tuple[dict, tuple, tuple[int, int], tuple] | None = None


def _asset_info_once(
    fields: Mapping[str, Any], memo: _InfoMemo
) -> tuple[float | None, str | None, float, float, bool, bool, int]:
    """``_asset_info(fields)``, once per distinct first raster band (its keys, values and their
    types) and band count, for assets whose own fields leave everything to that band (the
    items of a collection repeat theirs)."""
    rb = fields.get("raster:bands")
    if (
        type(rb) is list
        and rb
        and type(rb[0]) is dict
        and fields.keys().isdisjoint(_ASSET_RASTER_KEYS)
    ):
        first = rb[0]
        eo = fields.get("eo:bands")
        counts = (len(rb), len(eo) if isinstance(eo, list) else 0)
        last = memo.last
        if last is not None and last[2] == counts and last[0] == first:
            types = tuple(map(type, first.values()))
            if types == last[1]:
                return last[3]
        else:
            types = tuple(map(type, first.values()))
        try:
            key = (tuple(first.items()), types, counts)
            info = memo.by_key[key]
        except KeyError:
            memo.by_key[key] = info = _asset_info(fields)
        except TypeError:  # unhashable values
            return _asset_info(fields)
        memo.last = (first, types, counts, info)
        return info
    return _asset_info(fields)


def _asset_info(
    fields: Mapping[str, Any],
) -> tuple[float | None, str | None, float, float, bool, bool, int]:
    """(nodata, data_type, scale, offset, offset_declared, scale_declared, band count) of an
    asset: ``_raster_info``, ``_declares_scale`` and ``_band_count`` in one pass when its band
    lists are lists of dicts (or absent), those functions themselves otherwise."""
    get = fields.get
    rb, bands = get("raster:bands"), get("bands")
    if (rb is not None and (type(rb) is not list or (rb and type(rb[0]) is not dict))) or (
        bands is not None and (type(bands) is not list or (bands and type(bands[0]) is not dict))
    ):
        nodata, dtype, scale, offset, declared = _raster_info(fields)
        scale_declared = declared or _declares_scale(fields)
        return nodata, dtype, scale, offset, declared, scale_declared, _band_count(fields)
    # the first band's fields over the asset's, as _raster_info merges them
    first: Mapping[str, Any] = rb[0] if rb else bands[0] if bands else _NO_FIELDS
    nodata = first["nodata"] if "nodata" in first else get("nodata")
    dtype = first["data_type"] if "data_type" in first else get("data_type")
    if "scale" in first:
        scale = first["scale"]
    elif "scale" in fields:
        scale = fields["scale"]
    else:
        scale = first.get("raster:scale", get("raster:scale"))
    if "offset" in first:
        offset = first["offset"]
    elif "offset" in fields:
        offset = fields["offset"]
    else:
        offset = first.get("raster:offset", get("raster:offset"))
    declared = offset is not None and float(offset) != 0.0
    scale_declared = (
        declared
        or not fields.keys().isdisjoint(_SCALE_KEYS)
        or bool(rb and not rb[0].keys().isdisjoint(_SCALE_KEYS))
        or bool(bands and not bands[0].keys().isdisjoint(_SCALE_KEYS))
    )
    eo = get("eo:bands")
    count = max(
        len(rb) if isinstance(rb, list) else 0,
        len(eo) if isinstance(eo, list) else 0,
        len(bands) if isinstance(bands, list) else 0,
    )
    return (
        None if nodata is None else float(nodata),
        None if dtype is None else str(dtype),
        1.0 if scale is None else float(scale),
        0.0 if offset is None else float(offset),
        declared,
        scale_declared,
        count,
    )


def _crs_of(fields: Mapping[str, Any], props: Mapping[str, Any]) -> str | None:
    crs = _crs_in(fields)
    return crs if crs is not None else _crs_in(props)


#: The fields that give an object's CRS.
_CRS_KEYS = frozenset({"proj:code", "proj:epsg", "proj:wkt2"})


def _crs_in(src: Mapping[str, Any]) -> str | None:
    """The CRS ``proj:code``, ``proj:epsg`` or ``proj:wkt2`` of one object (asset or item)."""
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
    box = _bbox_in(fields)
    return box if box is not None else _bbox_in(props)


def _bbox_in(src: Mapping[str, Any]) -> tuple[float, ...] | None:
    """The bounds in its CRS from ``proj:transform`` and ``proj:shape``, else ``proj:bbox``, of
    one object (asset or item)."""
    transform = src.get("proj:transform")
    shape = src.get("proj:shape")
    if transform and shape:
        a, b, c, d, e, f = transform[:6]
        a, _, c, _, e, f = float(a), float(b), float(c), float(d), float(e), float(f)
        h, w = int(shape[0]), int(shape[1])
        x0, x1, y0, y1 = c, c + a * w, f, f + e * h
        return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
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
    if type(value) is str:
        return _baseline_of(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


@lru_cache(maxsize=256)
def _baseline_of(text: str) -> float | None:
    """A processing baseline such as "05.10" as a number (once per distinct text)."""
    try:
        return float(text)
    except ValueError:
        return None


def _resolve_band(
    band: str,
    assets: Mapping[str, tuple[str, dict]],
    cache: dict[tuple, str | None],
    keys: tuple[str, ...] | None = None,
) -> str | None:
    keys = tuple(assets) if keys is None else keys
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
    seq, parts = _items_and_parts(items)
    if not seq:
        raise NoItemsError(
            "No items to load: the search or item list is empty. Widen the bbox, datetime or "
            "collections of the search, or check the catalog URL."
        )
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
    native: list[tuple[float, ...] | None] = [None] * n
    boxes: list[Any] = [None] * n
    raw_times: list[Any] = [None] * n
    ids: list[str] = [""] * n
    per_band = [(b, sources[b], dtypes[b], _InfoMemo()) for b in bands]
    box_memo: dict[tuple, tuple[float, ...] | None] = {}
    for i, (iid, props, bbox, assets) in enumerate(parts):
        ids[i] = iid
        raw_times[i] = props.get("datetime") or props.get("start_datetime")
        if bbox:
            boxes[i] = bbox[:2] + bbox[-3:-1] if len(bbox) == 6 else bbox[:4]
        baseline = _baseline(props)
        keys = tuple(assets)
        item_crs: Any = _UNSET  # the item's own proj fields, read once when an asset has none
        item_box: Any = _UNSET
        first = True
        for b, band_sources, band_dtypes, info_memo in per_band:
            cached: Any = cache.get((b, keys), _UNSET)
            key = _resolve_band(b, assets, cache, keys) if cached is _UNSET else cached
            if key is None:
                continue
            href, fields = assets[key]
            nodata, dtype, scale, offset, declared, scale_declared, count = _asset_info_once(
                fields, info_memo
            )
            name: Any = _UNSET  # the asset's common name, looked up once when needed
            if baseline is not None and baseline >= 4.0 and not declared:
                if _reflectance_name(key):
                    offset = -1000.0 * scale
                else:
                    name = _common_name(fields)
                    if name and _reflectance_name(name):
                        offset = -1000.0 * scale
            if href[:1] != "/" and "://" not in href:
                _check_absolute(iid, key, href)
            if count > 1:
                raise InvalidParameterError(
                    f"bands={b!r}: asset {key!r} of item {iid!r} holds "
                    f"{count} bands ({', '.join(_band_names(fields))}) and load "
                    f"reads one band per asset. Ask for the single-band assets instead (e.g. "
                    f"'red', 'green', 'blue' rather than a true-colour 'visual' asset)."
                )
            # the asset's bounds (before the CRS, as errors were raised), once per grid
            transform, shape = fields.get("proj:transform"), fields.get("proj:shape")
            if type(transform) is list and type(shape) is list and "proj:bbox" not in fields:
                try:
                    box_key = (tuple(transform), tuple(shape))
                    nb_src = box_memo[box_key]
                except KeyError:
                    nb_src = box_memo[box_key] = _bbox_in(fields)
                except TypeError:  # unhashable values
                    nb_src = _bbox_in(fields)
            else:
                nb_src = _bbox_in(fields)
            if nb_src is None:
                if item_box is _UNSET:
                    item_box = _bbox_in(props)
                nb_src = item_box
            asset_crs = None if fields.keys().isdisjoint(_CRS_KEYS) else _crs_in(fields)
            if asset_crs is None:
                if item_crs is _UNSET:
                    item_crs = _crs_in(props)
                asset_crs = item_crs
            band_sources[i] = Source(
                href, nodata, scale, offset, asset_crs, nb_src, scale_declared, dtype
            )
            band_dtypes[i] = dtype
            if resolution[b] is None:
                resolution[b] = _resolution(fields, props)
            if common[b] is None:
                common[b] = _common_name(fields) if name is _UNSET else name
            if first:  # the item's CRS and bounds: those of its first band
                crs[i], native[i], first = asset_crs, nb_src, False
    missing = [b for b in bands if all(s is None for s in sources[b])]
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
            native_bbox=_box_array(native),
            lonlat_bbox=_lonlat_array(boxes),
            sources=sources,
            dtypes=dtypes,
            resolution=resolution,
            common_names=common,
        ),
        bands,
    )


def _box_array(boxes: list[Any]) -> np.ndarray:
    """(N, 4) float array of per-item boxes, NaN where an item has none."""
    out = np.full((len(boxes), 4), np.nan)
    have = [i for i, b in enumerate(boxes) if b is not None]
    if not have:
        return out
    rows = boxes if len(have) == len(boxes) else [boxes[i] for i in have]
    if sum(map(len, rows)) == 4 * len(rows):  # four numbers each: read in one pass
        out[have] = np.fromiter(chain.from_iterable(rows), float, 4 * len(rows)).reshape(-1, 4)
    else:
        out[have] = np.asarray(rows, dtype=float)
    return out


def _lonlat_array(boxes: list[Any]) -> np.ndarray:
    """The items' lon/lat bboxes; one across the antimeridian with its east above 180."""
    out = _box_array(boxes)
    across = out[:, 0] > out[:, 2]
    out[across, 2] += 360.0
    return out


def _check_uniform_scaling(band: str, srcs: list[Source | None], ids: list[str]) -> None:
    """Refuse a band whose items disagree on whether it is scaled: reflectances from items
    with raster:bands scale/offset and raw counts from items without would mix silently."""
    if all(s is None or s.scale_declared for s in srcs):  # one pass when all declare it
        return
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
    """The items' times as a UTC series; an item without a usable time is refused by name.

    Parsed as one array (the same ISO 8601 parser as for one value); when that fails or leaves
    a time out, item by item, so that the error names the first item without a usable time."""
    if all(isinstance(v, str) for v in raw):
        try:
            times = pd.to_datetime(pd.Series(raw, dtype=object), utc=True, format="ISO8601")
        except (ValueError, TypeError, OverflowError):
            times = None
        if times is not None and not times.isna().any():
            return times
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


@lru_cache(maxsize=1024)
def _reflectance_name(name: str) -> bool:
    """Whether an asset key or common name is a Sentinel-2 reflectance band (once per name)."""
    return bool(S2_REFLECTANCE.match(name))


def band_dtype(table: ItemTable, band: str) -> str | None:
    """The single data type of a band across items, or None when no item declares one."""
    declared = {d for d, s in zip(table.dtypes[band], table.sources[band], strict=True) if s and d}
    if len(declared) > 1:
        raise MixedDtypeError(
            f"Band {band!r} has different data types across items: {sorted(declared)}. "
            f"Pass dtype= (e.g. dtype='float32') to load them into one type."
        )
    return declared.pop() if declared else None
