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
    "per",
    "scenes",
    "retries",
    "ledger",
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
    #: ``per: scene``: the scenes, each a run of the recipe with ``{scene}`` filled in,
    #: recorded in the ledger (a JSON-lines file) so that a re-run does only the rest.
    scenes: list[str] | None = None
    retries: int = 1
    ledger: str = ""


def for_scene(recipe: Recipe, scene: str) -> Recipe:
    """The recipe of one scene: every ``{scene}`` in its text values replaced."""

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace("{scene}", scene)
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value

    return Recipe(
        source=fill(recipe.source),
        bands=fill(recipe.bands),
        output=fill(recipe.output),
        search=fill(recipe.search),
        load=fill(recipe.load),
        mask=recipe.mask,
        index=recipe.index,
        composite=recipe.composite,
    )


def _per_scene(raw: dict, out: dict[str, Any], base: Path | None) -> dict[str, Any]:
    """The per-scene keys (per, scenes, retries, ledger) checked; {} without ``per``."""
    if "per" not in raw:
        extra = sorted({"scenes", "retries", "ledger"} & set(raw))
        if extra:
            raise _fail(extra[0], "only with 'per: scene'; add it or drop this key.")
        return {}
    if raw["per"] != "scene":
        raise _fail("per", f"expected 'scene', got {raw['per']!r}.")
    scenes = raw.get("scenes")
    if isinstance(scenes, dict) and set(scenes) == {"file"} and isinstance(scenes["file"], str):
        path = Path(scenes["file"])
        path = path if path.is_absolute() or base is None else base / path
        try:
            scenes = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        except OSError as exc:
            raise _fail("scenes.file", f"cannot read {path}: {exc.strerror}.") from exc
    if not isinstance(scenes, list) or not scenes or not all(isinstance(x, str) for x in scenes):
        raise _fail("scenes", "expected a non-empty list of scene names or {file: scenes.txt}.")
    if len(set(scenes)) != len(scenes):
        raise _fail("scenes", "a scene is listed twice; list each once.")
    if "{scene}" not in str(out["zarr"]) and "{scene}" not in str(out.get("group", "")):
        raise _fail("output", "with 'per: scene' the output needs {scene} (e.g. out/{scene}.zarr).")
    retries = raw.get("retries", 1)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise _fail("retries", f"expected a whole number >= 0, got {retries!r}.")
    book = raw.get("ledger", "ledger.jsonl")
    if not isinstance(book, str) or not book:
        raise _fail("ledger", "expected the path of the ledger file (default ledger.jsonl).")
    if base is not None and not os.path.isabs(book):
        book = str((base / book).resolve())
    return {"scenes": scenes, "retries": retries, "ledger": book}


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
        **_per_scene(raw, out, base),
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
