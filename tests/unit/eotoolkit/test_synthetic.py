"""The synthetic Sentinel-2 generator: reproducible, consistent, with the promised metadata."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np
import pystac
import rasterio

from eotoolkit.synthetic.s2 import write_s2_collection


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.tif")):
        with rasterio.open(p) as src:
            h.update(src.read().tobytes())
    return h.hexdigest()


def test_reproducible_and_consistent(tmp_path: Path) -> None:
    write = functools.partial(
        write_s2_collection, tiles=2, dates=2, size=64, start="2024-06-01",
        bands=("B02", "B04", "B08", "SCL"),
    )  # fmt: skip
    cat = write(tmp_path / "a", seed=3)
    write(tmp_path / "b", seed=3)
    write(tmp_path / "c", seed=4)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b") != _digest(tmp_path / "c")
    items = list(cat.get_items(recursive=True))
    assert len(items) == 4
    item = pystac.Item.from_file(items[0].get_self_href())
    assert item.properties["s2:processing_baseline"] == "05.10"
    assert item.properties["proj:code"] == "EPSG:32631"
    assert item.assets["B04"].extra_fields["eo:bands"][0]["common_name"] == "red"
    assert item.assets["SCL"].extra_fields["proj:shape"] == [32, 32]
    folder = Path(item.assets["B04"].get_absolute_href()).parent
    with (
        rasterio.open(folder / "B04.tif") as r,
        rasterio.open(folder / "B08.tif") as n,
        rasterio.open(folder / "SCL.tif") as s,
    ):
        assert r.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG" and r.overviews(1)
        assert r.profile["compress"] == "deflate" and r.nodata == 0
        red = (r.read(1).astype(float) - 1000) / 1e4
        nir = (n.read(1).astype(float) - 1000) / 1e4
        scl = np.repeat(np.repeat(s.read(1), 2, 0), 2, 1)
    ndvi = (nir - red) / (nir + red)
    clear = np.isin(scl, (4, 5))
    assert clear.any()
    # vegetation class (4) exactly where NDVI is high, bare soil (5) where low
    assert (ndvi[scl == 4] > 0.38).all() and (ndvi[scl == 5] < 0.42).all()
    # clouds are bright in red
    if (scl == 9).any():
        assert red[scl == 9].mean() > red[clear].mean()
