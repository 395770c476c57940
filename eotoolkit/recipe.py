"""YAML recipes: the load -> mask -> index -> composite -> Zarr pipeline declared in a file."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pystac
import xarray as xr
import yaml

from . import _validate
from .errors import EOToolkitError, InvalidParameterError, RecipeError

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
MASK_OPTIONS = {
    "s2_scl": {"type", "scl", "classes", "keep_scl"},
    "landsat": {
        "type", "qa", "fill", "dilated_cloud", "cirrus", "cloud", "cloud_shadow", "snow",
        "keep_qa",
    },
}  # fmt: skip
OUTPUT_MODES = ("w-", "w", "resume")
#: ``output:`` keys: the store, its mode and group, and the bound on the tasks of one graph
#: (``max_tasks``, see :func:`eotoolkit.to_zarr`; null computes the whole graph at once).
OUTPUT_KEYS = {"zarr", "mode", "group", "max_tasks"}


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


def _num(raw: dict, key: str) -> Any:
    value = raw.get(key)
    if value is None:
        return None
    try:
        res = _validate.resolution(key, value, allow_none=False)
    except InvalidParameterError as exc:
        raise _fail(key, f"expected a positive number (or a pair), got {value!r}. {exc}") from None
    assert res is not None
    return float(value) if res[0] == res[1] and not isinstance(value, list) else res


def _check(where: str, func: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a parameter check, reporting its failure as a RecipeError at ``where``."""
    try:
        return func(*args, **kwargs)
    except InvalidParameterError as exc:
        raise _fail(where, str(exc)) from None


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
    checks = {
        "crs": lambda v: _validate.crs("crs", v, allow_utm=True),
        "bbox": lambda v: _validate.bbox("bbox", v),
        "chunks": lambda v: _validate.chunks("chunks", v),
        "groupby": lambda v: _validate.groupby("groupby", v),
        "dtype": lambda v: _validate.dtype("dtype", v),
        "resampling": lambda v: _validate.resampling("resampling", v),
        "fail_on_error": lambda v: _validate.boolean("fail_on_error", v),
    }
    for key, check in checks.items():
        if load.get(key) is not None:
            _check(key, check, load[key])
    if search is not None:
        _check_search(search)
    mask = raw.get("mask")
    if mask is not None:
        if isinstance(mask, str):
            mask = {"type": mask}
        if not isinstance(mask, dict) or mask.get("type") not in MASKS:
            raise _fail("mask", f"expected one of {sorted(MASKS)} or a mapping with type: ...")
        extra = sorted(set(mask) - MASK_OPTIONS[mask["type"]])
        if extra:
            allowed = sorted(MASK_OPTIONS[mask["type"]] - {"type"})
            raise _fail(
                "mask", f"unknown option(s) {extra} for {mask['type']}; allowed: {allowed}."
            )
        for key, value in mask.items():
            if key.startswith("keep_") or key in MASK_OPTIONS["landsat"] - {"type", "qa"}:
                _check(f"mask.{key}", _validate.boolean, key, value)
    index = _str_list(raw["index"], "index") if raw.get("index") is not None else []
    if index:
        import spyndex

        known = {k.lower() for k in spyndex.indices}
        unknown_idx = [n for n in index if n.lower() not in known]
        if unknown_idx:
            raise _fail(
                "index",
                f"unknown spectral index(es) {unknown_idx}; use names of the Awesome Spectral "
                "Indices catalogue (spyndex.indices), e.g. NDVI, EVI, NBR.",
            )
    comp = raw.get("composite")
    if comp is not None:
        if isinstance(comp, str):
            comp = {"stat": comp}
        if not isinstance(comp, dict) or set(comp) - {"freq", "stat"}:
            raise _fail("composite", "expected a mapping with freq (e.g. 1MS) and stat (median).")
        _check("composite.freq", _validate.frequency, "freq", comp.get("freq", "1MS"))
        from .ops.temporal import _parse_stat

        try:
            for s in _str_list(comp.get("stat", "median"), "composite.stat"):
                _parse_stat(s)
        except ValueError as exc:
            raise _fail("composite.stat", str(exc)) from exc
    out = raw["output"]
    if isinstance(out, str):
        out = {"zarr": out}
    if not isinstance(out, dict) or "zarr" not in out or set(out) - OUTPUT_KEYS:
        raise _fail(
            "output",
            "expected a Zarr path/URL or a mapping {zarr: ..., mode: ..., group: ..., "
            "max_tasks: ...}.",
        )
    if not isinstance(out["zarr"], str) or not out["zarr"]:
        raise _fail("output", f"expected a Zarr path or URL, got {out['zarr']!r}.")
    _check("output.mode", _validate.choice, "mode", out.get("mode", "w-"), OUTPUT_MODES)
    if out.get("group") is not None and not isinstance(out["group"], str):
        raise _fail("output.group", f"expected a group name, got {out['group']!r}.")
    if "max_tasks" in out:
        _check("output.max_tasks", _validate.optional_int, "max_tasks", out["max_tasks"])
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


def _check_search(search: dict[str, Any]) -> None:
    """The search values, checked as :func:`eotoolkit.search` checks them."""
    from .stac._search_params import SearchParams

    try:
        SearchParams.build(
            search.get("collections"),
            search.get("bbox"),
            search.get("intersects"),
            search.get("datetime"),
            search.get("query"),
            search.get("filter"),
            None,
            None,
            _validate.optional_int("max_items", search.get("max_items")),
            _validate.optional_int("limit", search.get("limit")),
            search.get("ids"),
        )
    except InvalidParameterError as exc:
        raise _fail("search", str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise _fail("search", f"invalid search value: {exc}") from None


def check_resources(recipe: Recipe) -> None:
    """The recipe's source answers as STAC and its output directory is writable."""
    from .stac._stac_source import read_root

    try:
        read_root(recipe.source)
    except EOToolkitError as exc:
        raise _fail("source", str(exc)) from None
    from .stores.zarr_store import check_destination, store_status

    store, group = recipe.output["zarr"], recipe.output.get("group")
    try:
        check_destination(store)
    except InvalidParameterError as exc:
        raise _fail("output", str(exc)) from None
    if recipe.scenes is None and recipe.output.get("mode", "w-") == "w-":
        found = {
            "absent": None,
            "complete": "already holds a complete Zarr store",
            "incomplete": "holds an interrupted write ('mode: resume' writes only what is missing)",
        }.get(store_status(store, group), "already exists (a Zarr store not written by eotoolkit)")
        if found is not None:
            raise _fail(
                "output",
                f"{store} {found}. Under 'output:' set 'mode: w' to overwrite it or "
                "'mode: resume' to finish it, or choose another 'zarr:' path.",
            )


def read_recipe(path: str | os.PathLike[str], *, check: bool = True) -> Recipe:
    """Read and validate a recipe file; relative paths are relative to the file. With
    ``check``, also that the source is reachable and the output directory writable."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise RecipeError(f"Recipe file {path} not found.") from exc
    except IsADirectoryError as exc:
        raise RecipeError(f"Recipe file {path} is a directory; pass the YAML file.") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"Recipe file {path} cannot be read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise RecipeError(f"Recipe file {path} is not valid YAML: {exc}") from exc
    recipe = parse_recipe(raw, base=path.resolve().parent)
    if check:
        check_resources(recipe)
    return recipe


def write_options(recipe: Recipe, mode: str = "w-") -> dict[str, Any]:
    """The keyword arguments of :func:`eotoolkit.to_zarr` the recipe's ``output:`` gives (``mode``
    when it names none)."""
    from .stores.zarr_store import DEFAULT_MAX_TASKS

    out = recipe.output
    return {
        "group": out.get("group"),
        "mode": out.get("mode", mode),
        "max_tasks": out.get("max_tasks", DEFAULT_MAX_TASKS),
    }


def build(recipe: Recipe) -> xr.Dataset:
    """The lazy dataset the recipe describes (nothing computed yet)."""
    from .loader import load
    from .ops.indices import index
    from .ops.masking import mask_clouds, mask_landsat
    from .ops.temporal import composite
    from .stac.discovery import search

    if recipe.search is not None:
        # as open_stac, with the items as dicts: a STAC API's are never made pystac objects
        where = {"bbox": recipe.load["bbox"]} if "bbox" in recipe.load else {}
        items = search(recipe.source, **{**where, **recipe.search}, as_dicts=True)
        ds = load(items, bands=recipe.bands, **recipe.load)
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
