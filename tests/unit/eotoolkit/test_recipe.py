"""Recipe validation: each mistake gives a RecipeError naming the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from eotoolkit.cli import main
from eotoolkit.errors import RecipeError
from eotoolkit.recipe import parse_recipe, read_recipe, write_options

GOOD = {
    "source": "catalog.json",
    "bands": ["red", "nir", "scl"],
    "resolution": 20,
    "mask": "s2_scl",
    "index": "NDVI",
    "composite": {"freq": "1MS", "stat": "median"},
    "output": "out.zarr",
}


def test_good_recipe_resolves_paths(tmp_path: Path) -> None:
    r = parse_recipe(GOOD, base=tmp_path)
    assert r.source == str(tmp_path / "catalog.json")
    assert r.output == {"zarr": str(tmp_path / "out.zarr")}
    assert r.index == ["NDVI"] and r.mask == {"type": "s2_scl"} and r.load == {"resolution": 20.0}


def test_output_max_tasks_reaches_to_zarr(tmp_path: Path) -> None:
    default = parse_recipe(GOOD, base=tmp_path)
    assert write_options(default) == {"group": None, "mode": "w-", "max_tasks": 200_000}
    out = {"zarr": "o.zarr", "mode": "resume", "max_tasks": 5000}
    r = parse_recipe({**GOOD, "output": out}, base=tmp_path)
    assert write_options(r) == {"group": None, "mode": "resume", "max_tasks": 5000}
    one = parse_recipe({**GOOD, "output": {"zarr": "o.zarr", "max_tasks": None}}, base=tmp_path)
    assert write_options(one, mode="w")["max_tasks"] is None


def test_search_keys_reach_the_recipe(tmp_path: Path) -> None:
    search = {"collections": ["s2"], "ids": ["a", "b"], "datetime": "2024-03"}
    r = parse_recipe({**GOOD, "search": search}, base=tmp_path)
    assert r.search == search


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"bandz": ["red"]}, r"'bandz'.*unknown key"),
        ({"resolution": -5}, r"'resolution'.*positive number"),
        ({"mask": "fmask"}, r"'mask'.*s2_scl"),
        ({"composite": {"stat": "mode"}}, r"'composite.stat'.*q0.9"),
        ({"output": {"cog": "x.tif"}}, r"'output'.*Zarr"),
        ({"bands": []}, r"'bands'.*non-empty"),
        ({"search": {"colections": ["x"]}}, r"'search'.*colections"),
        ({"output": {"zarr": "o.zarr", "max_tasks": 0}}, r"'output.max_tasks'.*integer >= 1"),
        ({"output": {"zarr": "o.zarr", "max_tasks": "lots"}}, r"'output.max_tasks'.*lots"),
    ],
)
def test_bad_recipes(change: dict, match: str) -> None:
    with pytest.raises(RecipeError, match=match):
        parse_recipe({**GOOD, **change})


def test_missing_required_key() -> None:
    bad = dict(GOOD)
    del bad["source"]
    with pytest.raises(RecipeError, match=r"'source'.*required"):
        parse_recipe(bad)


def test_invalid_yaml_file_and_cli_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("source: [unclosed\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        read_recipe(path)
    assert main(["run", str(path)]) == 2
    assert "not valid YAML" in capsys.readouterr().err


def test_per_scene_keys(tmp_path: Path) -> None:
    (tmp_path / "scenes.txt").write_text("a\nb\n\n")
    raw = {**GOOD, "per": "scene", "scenes": {"file": "scenes.txt"}, "output": "o/{scene}.zarr"}
    r = parse_recipe(raw, base=tmp_path)
    assert r.scenes == ["a", "b"] and r.retries == 1
    assert r.ledger == str(tmp_path / "ledger.jsonl")
    from eotoolkit.recipe import for_scene

    one = for_scene(parse_recipe({**raw, "search": {"ids": ["{scene}"]}}, base=tmp_path), "b")
    assert one.output["zarr"] == str(tmp_path / "o" / "b.zarr") and one.search == {"ids": ["b"]}


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"per": "tile"}, r"'per'.*scene"),
        ({"per": "scene", "scenes": []}, r"'scenes'"),
        ({"per": "scene", "scenes": ["a"]}, r"'output'.*\{scene\}"),
        ({"scenes": ["a"]}, r"'scenes'.*per: scene"),
        ({"per": "scene", "scenes": ["a"], "output": "{scene}", "retries": -1}, r"'retries'"),
    ],
)
def test_bad_per_scene_keys(change: dict, match: str) -> None:
    with pytest.raises(RecipeError, match=match):
        parse_recipe({**GOOD, **change})
