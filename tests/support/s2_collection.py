"""The synthetic Sentinel-2 collection the eotoolkit tests serve: its size, and the values a
load of it must give, computed with numpy from its files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio

from eotoolkit.synthetic.s2 import ORIGIN

#: Tile size in pixels (10 m) and number of dates of the collection.
SIZE = 128
DATES = 3


def tile_dirs(root: Path, date_index: int) -> list[Path]:
    """The tile directories of the collection's date number ``date_index``."""
    dirs = sorted((root / "sentinel-2-l2a-synthetic").glob("S2X_*"))
    dates = sorted({d.name.split("_")[2] for d in dirs})
    return sorted(d for d in dirs if d.name.split("_")[2] == dates[date_index])


def expected_mosaic(root: Path, band: str, date_index: int, scale: bool) -> np.ndarray:
    """First-valid mosaic of the tiles of one date on the 10 m grid, computed with numpy."""
    tiles = tile_dirs(root, date_index)
    arrays, lefts = [], []
    for d in tiles:
        with rasterio.open(d / f"{band}.tif") as src:
            raw = src.read(1)
            lefts.append(src.transform.c)
            factor = round(src.transform.a / 10)
        arrays.append(np.repeat(np.repeat(raw, factor, 0), factor, 1))
    width = round((max(lefts) - ORIGIN[0]) / 10) + SIZE
    out = np.zeros((SIZE, width), arrays[0].dtype)
    for raw, left in reversed(list(zip(arrays, lefts, strict=True))):
        c0 = round((left - ORIGIN[0]) / 10)
        region = out[:, c0 : c0 + SIZE]
        region[raw != 0] = raw[raw != 0]
    if not scale:
        return out
    values = (out.astype(np.float32) - np.float32(1000)) * np.float32(0.0001)
    return np.where(out == 0, np.float32(np.nan), values)
