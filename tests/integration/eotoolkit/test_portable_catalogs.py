"""Catalogs written with a relative root work from any working directory."""

from __future__ import annotations

import os
from pathlib import Path

import pystac
import pytest

import eotoolkit
from eotoolkit.stac.catalog import build_catalog
from eotoolkit.synthetic.s2 import write_s2_collection


def test_relative_roots_give_portable_hrefs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_s2_collection("sub/s2", tiles=1, dates=1, size=32, seed=1)
    tifs = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.glob("sub/s2/**/B04.tif"))
    build_catalog(tifs, "sub/built")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.chdir(elsewhere)
    for path, band in (("sub/s2/catalog.json", "B04"), ("sub/built/catalog.json", "data")):
        catalog = pystac.read_file(str(tmp_path / path))
        for item in catalog.get_items(recursive=True):
            for asset in item.assets.values():
                assert not asset.href.startswith("sub/"), asset.href
                assert Path(asset.get_absolute_href() or "").is_file()
        ds = eotoolkit.load(catalog, bands=band)
        assert int(ds[band].count()) > 0
