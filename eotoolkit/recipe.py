"""YAML recipes: the load -> mask -> index -> composite -> Zarr pipeline declared in a file."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pystac
import xarray as xr
import yaml

from .errors import RecipeError

KEYS = {
    "source",
    "search",
    "bands",
    "resolution",
    "crs",
    "bbox",
    "chunks",
    "groupby",
    "dtype",
    "resampling",
    "fail_on_error",
    "mask",
    "index",
    "composite",
    "output",
}
SEARCH_KEYS = {
    "collections",
    "bbox",
    "datetime",
    "query",
    "filter",
    "max_items",
    "ids",
    "intersects",
    "limit",
}
MASKS = {"s2_scl", "landsat"}


@dataclass
class Recipe:
    """A validated recipe."""

    source: str
    bands: list[str]
    output: dict[str, Any]
    search: dict[str, Any] | None = None
    load: dict[str, Any] = field(default_factory=dict)
    mask: dict[str, Any] | None = None
    index: list[str] = field(default_factory=list)
    composite: dict[str, Any] | None = None


def _fail(where: str, problem: str) -> RecipeError:
    return RecipeError(f"Recipe error in '{where}': {problem}")


def _num(raw: dict, key: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise _fail(key, f"expected a positive number, got {value!r}.")
    return float(value)


def _str_list(raw: Any, where: str) -> list[str]:
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and raw and all(isinstance(v, str) for v in raw):
        return list(raw)
    raise _fail(where, f"expected a name or a non-empty list of names, got {raw!r}.")


def parse_recipe(raw: Any, base: Path | None = None) -> Recipe:
    """Validate a recipe mapping (as read from YAML)."""
    if not isinstance(raw, dict):
        raise RecipeError("Recipe error: the file must contain a mapping of keys (source, ...).")
    unknown = sorted(set(raw) - KEYS)
    if unknown:
        raise _fail(unknown[0], f"unknown key(s) {unknown}; allowed keys are {sorted(KEYS)}.")
    for key in ("source", "bands", "output"):
        if key not in raw:
            raise _fail(key, "this key is required.")
    source = raw["source"]
    if not isinstance(source, str):
        raise _fail("source", "expected a catalog path/URL or a STAC API URL.")
    if base is not None and "://" not in source and not os.path.isabs(source):
        source = str((base / source).resolve())
    search = raw.get("search")
    if search is not None:
        if not isinstance(search, dict):
            raise _fail("search", "expected a mapping (collections, bbox, datetime, ...).")
        bad = sorted(set(search) - SEARCH_KEYS)
        if bad:
            raise _fail("search", f"unknown key(s) {bad}; allowed: {sorted(SEARCH_KEYS)}.")
    load: dict[str, Any] = {}
    res = _num(raw, "resolution")
    if res is not None:
        load["resolution"] = res
    for key in ("crs", "bbox", "chunks", "groupby", "dtype", "resampling", "fail_on_error"):
        if key in raw:
            load[key] = raw[key]
    if "bbox" in raw and (not isinstance(raw["bbox"], list) or len(raw["bbox"]) != 4):
        raise _fail("bbox", "expected [min lon, min lat, max lon, max lat].")
    mask = raw.get("mask")
    if mask is not None:
        if isinstance(mask, str):
            mask = {"type": mask}
        if not isinstance(mask, dict) or mask.get("type") not in MASKS:
            raise _fail("mask", f"expected one of {sorted(MASKS)} or a mapping with type: ...")
    index = _str_list(raw["index"], "index") if raw.get("index") is not None else []
    comp = raw.get("composite")
    if comp is not None:
        if isinstance(comp, str):
            comp = {"stat": comp}
        if not isinstance(comp, dict) or set(comp) - {"freq", "stat"}:
            raise _fail("composite", "expected a mapping with freq (e.g. 1MS) and stat (median).")
        from .temporal import _parse_stat

        try:
            for s in _str_list(comp.get("stat", "median"), "composite.stat"):
                _parse_stat(s)
        except ValueError as exc:
            raise _fail("composite.stat", str(exc)) from exc
    out = raw["output"]
    if isinstance(out, str):
        out = {"zarr": out}
    if not isinstance(out, dict) or "zarr" not in out or set(out) - {"zarr", "mode", "group"}:
        raise _fail("output", "expected a Zarr path/URL or a mapping {zarr: ..., mode: ...}.")
    if base is not None and "://" not in out["zarr"] and not os.path.isabs(out["zarr"]):
        out = {**out, "zarr": str((base / out["zarr"]).resolve())}
    return Recipe(
        source=source,
        bands=_str_list(raw["bands"], "bands"),
        output=out,
        search=search,
        load=load,
        mask=mask,
        index=index,
        composite=comp,
    )


def read_recipe(path: str | os.PathLike[str]) -> Recipe:
    """Read and validate a recipe file; relative paths are relative to the file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise RecipeError(f"Recipe file {path} not found.") from exc
    except yaml.YAMLError as exc:
        raise RecipeError(f"Recipe file {path} is not valid YAML: {exc}") from exc
    return parse_recipe(raw, base=path.resolve().parent)


def build(recipe: Recipe) -> xr.Dataset:
    """The lazy dataset the recipe describes (nothing computed yet)."""
    from .indices import index
    from .loader import load, open_stac
    from .masking import mask_clouds, mask_landsat
    from .temporal import composite

    if recipe.search is not None:
        ds = open_stac(recipe.source, **recipe.search, bands=recipe.bands, **recipe.load)
    else:
        obj = pystac.read_file(recipe.source)
        ds = load(obj, bands=recipe.bands, **recipe.load)
    if recipe.mask is not None:
        opts = {k: v for k, v in recipe.mask.items() if k != "type"}
        if recipe.mask["type"] == "s2_scl":
            ds = mask_clouds(ds, **opts)
        else:
            ds = mask_landsat(ds, **opts)
    if recipe.index:
        ds = xr.Dataset({name: index(ds, name) for name in recipe.index})
    if recipe.composite is not None:
        ds = composite(
            ds,
            freq=recipe.composite.get("freq", "1MS"),
            stat=recipe.composite.get("stat", "median"),
        )
    return ds
