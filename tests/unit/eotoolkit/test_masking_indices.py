"""Cloud masks and spectral indices checked against numpy."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr

import eotoolkit
from eotoolkit.errors import BandNotFoundError, SpectralIndexError


def _s2(rng: np.random.Generator) -> xr.Dataset:
    shape = (2, 12, 16)
    red = rng.uniform(0.02, 0.2, shape).astype(np.float32)
    nir = rng.uniform(0.1, 0.5, shape).astype(np.float32)
    blue = rng.uniform(0.01, 0.1, shape).astype(np.float32)
    scl = rng.integers(0, 12, shape).astype(np.uint8)
    dims = ("time", "y", "x")
    return xr.Dataset(
        {
            "red": (dims, da.from_array(red, chunks=(1, 6, 8))),
            "nir": (dims, da.from_array(nir, chunks=(1, 6, 8))),
            "B02": (dims, da.from_array(blue, chunks=(1, 6, 8))),
            "scl": (dims, da.from_array(scl, chunks=(1, 6, 8))),
        }
    )


def test_mask_clouds_scl() -> None:
    ds = _s2(np.random.default_rng(0))
    out = eotoolkit.mask_clouds(ds)
    assert "scl" not in out and isinstance(out.red.data, da.Array)
    bad = np.isin(ds.scl.values, [0, 1, 3, 8, 9, 10])
    np.testing.assert_array_equal(np.isnan(out.red.values), bad)
    np.testing.assert_array_equal(out.nir.values[~bad], ds.nir.values[~bad])
    kept = ds.eo.mask_clouds(classes=[8], keep_scl=True)
    assert "scl" in kept
    np.testing.assert_array_equal(np.isnan(kept.red.values), ds.scl.values == 8)
    with pytest.raises(BandNotFoundError, match="scl"):
        eotoolkit.mask_clouds(ds.drop_vars("scl"))


def test_mask_landsat_bits() -> None:
    qa = np.array([[1, 2, 4, 8], [16, 32, 64, 128], [0, 21824, 22280, 55052]], np.uint16)
    band = np.arange(12, dtype=np.uint16).reshape(3, 4) + 100
    ds = xr.Dataset({"red": (("y", "x"), band), "qa_pixel": (("y", "x"), qa)})
    out = eotoolkit.mask_landsat(ds)
    expected_bad = (qa & 0b111111) != 0
    np.testing.assert_array_equal(np.isnan(out.red.values), expected_bad)
    assert out.red.dtype == np.float32
    only_cloud = eotoolkit.mask_landsat(
        ds, fill=False, dilated_cloud=False, cirrus=False, cloud_shadow=False, snow=False
    )
    np.testing.assert_array_equal(np.isnan(only_cloud.red.values), (qa & 8) != 0)


def test_ndvi_and_catalogue_indices() -> None:
    ds = _s2(np.random.default_rng(1))
    ndvi = eotoolkit.index(ds, "NDVI")
    assert ndvi.dtype == np.float32 and isinstance(ndvi.data, da.Array)
    r, n = ds.red.values, ds.nir.values
    np.testing.assert_allclose(ndvi.values, (n - r) / (n + r), rtol=1e-6)
    evi = ds.eo.index("EVI")
    b = ds.B02.values
    np.testing.assert_allclose(evi.values, 2.5 * (n - r) / (n + 6 * r - 7.5 * b + 1), rtol=1e-5)
    savi = eotoolkit.index(ds, "SAVI", L=0.25)
    np.testing.assert_allclose(savi.values, 1.25 * (n - r) / (n + r + 0.25), rtol=1e-5)


def test_index_errors_name_missing_bands() -> None:
    ds = _s2(np.random.default_rng(2))
    with pytest.raises(SpectralIndexError, match=r"NBR needs band\(s\) \['S2'\].*swir22"):
        eotoolkit.index(ds, "NBR")
    with pytest.raises(SpectralIndexError, match="Unknown spectral index"):
        eotoolkit.index(ds, "NOT_AN_INDEX")


@pytest.mark.parametrize("classes", [[3], [0, 3, 8, 9, 10], list(range(0, 20, 2))])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32])
def test_class_mask_matches_isin(classes: list[int], dtype: type) -> None:
    from eotoolkit.ops.masking import class_mask

    values = np.random.default_rng(3).integers(0, 25, (2, 12, 16)).astype(dtype)
    var = xr.DataArray(da.from_array(values, chunks=(1, 6, 8)), dims=("time", "y", "x"))
    got = class_mask(var, classes)
    assert isinstance(got.data, da.Array) and got.dtype == bool
    np.testing.assert_array_equal(got.values, np.isin(values, classes))


def test_mask_clouds_dtypes_and_attrs() -> None:
    ds = _s2(np.random.default_rng(4))
    ds["B02"] = (ds.B02 * 10000).astype(np.uint16).assign_attrs(nodata=0, common_name="blue")
    ds["red"] = ds.red.astype(np.float64)
    out = eotoolkit.mask_clouds(ds, classes=[8, 9])
    assert out.B02.dtype == np.float32 and out.red.dtype == np.float64
    assert out.nir.dtype == np.float32 and out.B02.attrs == {"common_name": "blue"}
    assert list(out.data_vars) == ["red", "nir", "B02"] and out.B02.dims == ("time", "y", "x")
    bad = np.isin(ds.scl.values, [8, 9])
    expected = ds.B02.values.astype(np.float32)
    expected[bad] = np.nan
    np.testing.assert_array_equal(out.B02.values, expected)
    np.testing.assert_array_equal(np.isnan(out.red.values), bad)
