"""Bad input: each raises an EOToolkitError subclass whose message names cause and fix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

import eotoolkit
from eotoolkit.errors import (
    AssetReadError,
    AssetReadWarning,
    BandNotFoundError,
    EOToolkitError,
    MissingProjectionError,
    MixedDtypeError,
    NoItemsError,
    OutsideDataError,
)

from .helpers import item_dict, write_cog

T = Affine(10, 0, 300_000, 0, -10, 5_800_000)
T2 = Affine(10, 0, 300_320, 0, -10, 5_800_000)


@pytest.fixture()
def files(tmp_path: Path, serve: Callable[[Path], str]) -> tuple[str, Path]:
    data = np.full((40, 40), 7, np.uint16)
    write_cog(tmp_path / "good.tif", data, "EPSG:32631", T)
    write_cog(tmp_path / "good2.tif", data + 1, "EPSG:32631", T2)
    (tmp_path / "corrupt.tif").write_bytes(b"II*\x00" + b"\x13" * 500)
    return serve(tmp_path), tmp_path


def _item(url: str, name: str, transform: Affine = T, **kw: object) -> dict:
    return item_dict(
        name, f"{url}/{name}", "EPSG:32631", transform, (40, 40), "2024-05-01T10:30:00Z", **kw
    )  # type: ignore[arg-type]


def test_no_items() -> None:
    with pytest.raises(NoItemsError, match="No items to load") as err:
        eotoolkit.load([], bands=["red"])
    assert isinstance(err.value, EOToolkitError)


def test_band_not_found_lists_available(files: tuple[str, Path]) -> None:
    url, _ = files
    with pytest.raises(BandNotFoundError, match=r"\['swir22'\].*B04.*red") as err:
        eotoolkit.load([_item(url, "good.tif")], bands=["swir22"])
    assert "bands=" in str(err.value)


def test_missing_projection_metadata(files: tuple[str, Path]) -> None:
    url, _ = files
    item = _item(url, "good.tif", proj=False)
    with pytest.raises(MissingProjectionError, match="crs="):
        eotoolkit.load([item], bands=["B04"])
    # with crs and resolution it works, reading the grid from the footprint
    ds = eotoolkit.load([item], bands=["B04"], crs="EPSG:32631", resolution=10)
    assert int(ds.B04.max()) == 7


@pytest.mark.parametrize("name", ["missing.tif", "corrupt.tif"])
def test_unreadable_asset(files: tuple[str, Path], name: str) -> None:
    url, _ = files
    items = [_item(url, name), _item(url, "good2.tif", T2)]
    items[1]["properties"]["datetime"] = "2024-05-01T10:30:05Z"
    ds = eotoolkit.load(items, bands=["B04"], chunks=32, fail_on_error=True)
    with pytest.raises(AssetReadError, match=f"{url}/{name}.*fail_on_error=False"):
        ds.compute()
    lenient = eotoolkit.load(items, bands=["B04"], chunks=32, fail_on_error=False)
    with pytest.warns(AssetReadWarning, match=f"{url}/{name}"):
        values = lenient.B04.isel(time=0).values
    assert (values[:, :32] == 0).all()  # nodata where only the broken asset covers
    assert (values[:, 32:] == 8).all()


def test_mixed_dtypes(files: tuple[str, Path]) -> None:
    url, _ = files
    items = [_item(url, "good.tif"), _item(url, "good2.tif", T2, dtype="int16")]
    with pytest.raises(MixedDtypeError, match=r"int16.*uint16.*dtype="):
        eotoolkit.load(items, bands=["B04"])
    ds = eotoolkit.load(items, bands=["B04"], dtype="float32")
    assert ds.B04.dtype == np.float32


def test_bbox_outside_data(files: tuple[str, Path]) -> None:
    url, _ = files
    with pytest.raises(OutsideDataError, match="does not intersect"):
        eotoolkit.load([_item(url, "good.tif")], bands=["B04"], bbox=(10.0, 40.0, 10.1, 40.1))
