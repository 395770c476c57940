"""Synthetic Daymet catalog -> open_daymet -> spring_index_by_year on a LocalCluster -> Zarr."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import dask.array as da
import numpy as np
import pyproj
import pystac
import pytest
import rioxarray  # noqa: F401
import xarray as xr

from eotoolkit.ops.daymet import open_daymet, spring_index_by_year
from eotoolkit.ops.phenology import spring_index
from eotoolkit.synthetic.daymet import DAYMET_CRS, cold_pixel_mask, write_daymet_like

YEARS = (2020, 2021)
NY, NX = 20, 24


@pytest.fixture(scope="module")
def catalog_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("daymet")
    write_daymet_like(root, years=YEARS, ny=NY, nx=NX, seed=1)
    return root


@pytest.fixture(scope="module")
def catalog(catalog_root: Path) -> pystac.Catalog:
    return pystac.Catalog.from_file(str(catalog_root / "catalog.json"))


def test_catalog_lists_daymet_like_netcdf_assets(
    catalog: pystac.Catalog, catalog_root: Path
) -> None:
    items = sorted(catalog.get_items(recursive=True), key=lambda it: it.id)
    assert [it.id for it in items] == [f"daymet-like-{y}" for y in YEARS]
    for item, year in zip(items, YEARS, strict=True):
        assert set(item.assets) == {"tmin", "tmax", "dayl"}
        for var, asset in item.assets.items():
            assert asset.media_type == "application/netcdf"
            href = asset.get_absolute_href()
            assert href is not None
            assert Path(href).name == f"daymet_v4_daily_na_{var}_{year}.nc"
            assert Path(href).is_file()
        crs = pyproj.CRS.from_wkt(item.properties["proj:wkt2"])
        assert crs.equals(DAYMET_CRS)
        assert item.properties["proj:shape"] == [NY, NX]
    raw = xr.open_dataset(
        catalog_root / "data" / "daymet_v4_daily_na_tmin_2020.nc", engine="h5netcdf"
    )
    assert raw["tmin"].attrs["grid_mapping"] == "lambert_conformal_conic"
    assert raw["lambert_conformal_conic"].attrs["grid_mapping_name"] == "lambert_conformal_conic"
    assert raw["tmin"].attrs["units"] == "degrees C"
    assert raw.sizes["time"] == 365  # leap year: December 31 dropped, as in Daymet
    assert str(raw.time.values[-1])[:10] == "2020-12-30"


def test_open_daymet_is_lazy_and_keeps_crs(catalog: pystac.Catalog) -> None:
    ds = open_daymet(catalog, chunks={"time": -1, "y": 8, "x": 8})
    assert set(ds.data_vars) == {"tmin", "tmax", "dayl"}
    assert ds.sizes == {"time": 365 * len(YEARS), "y": NY, "x": NX}
    assert isinstance(ds.tmin.data, da.Array)
    assert ds.tmin.chunks == ((365, 365), (8, 8, 4), (8, 8, 8))
    assert ds.rio.crs is not None and pyproj.CRS.from_user_input(ds.rio.crs).equals(DAYMET_CRS)
    only = open_daymet(list(catalog.get_items(recursive=True)), years=[2021], variables=["dayl"])
    assert list(only.data_vars) == ["dayl"]
    assert set(only.time.dt.year.values) == {2021}


def test_open_daymet_coarsen_averages_blocks(catalog: pystac.Catalog) -> None:
    full = open_daymet(catalog, years=[2020]).load()
    coarse = open_daymet(catalog, years=[2020], coarsen=4)
    assert coarse.sizes == {"time": 365, "y": NY // 4, "x": NX // 4}
    expected = full.tmin.values[:, :4, 4:8].mean(axis=(1, 2))
    np.testing.assert_allclose(coarse.tmin.values[:, 0, 1], expected, rtol=1e-5)
    np.testing.assert_allclose(coarse.x.values[1], full.x.values[4:8].mean())
    assert coarse.rio.crs is not None
    assert coarse.rio.resolution() == pytest.approx((4 * 25_000.0, -4 * 25_000.0))
    odd = open_daymet(catalog, years=[2020], chunks={"time": -1, "y": 8, "x": 8}, coarsen=3)
    assert odd.tmin.chunks == ((365,), (2, 2, 2), (2, 2, 2, 2))  # 6-pixel source chunks


def test_spring_index_by_year_on_local_cluster(catalog: pystac.Catalog, tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    ds = open_daymet(catalog, chunks={"time": -1, "y": 8, "x": 16})
    store = tmp_path / "spring_index.zarr"
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster),
    ):
        groups = spring_index_by_year(ds, str(store), end_doy=250)
    assert groups == [str(y) for y in YEARS]

    cold = cold_pixel_mask(NY, NX)
    for year in YEARS:
        stored = xr.open_zarr(store, group=str(year), decode_coords="all")
        year_ds = ds.sel(time=str(year)).load()
        direct = spring_index(year_ds.tmin, year_ds.tmax, year_ds.dayl, end_doy=250)
        for var in ("first_leaf", "first_bloom"):
            np.testing.assert_array_equal(stored[var].values, direct[var].values)
        assert list(stored.plant.values) == ["lilac", "arnold_red", "zabelli", "mean"]
        assert stored.attrs["year"] == year
        assert pyproj.CRS.from_user_input(stored.rio.crs).equals(DAYMET_CRS)

        leaf = stored.first_leaf.sel(plant="mean").values
        bloom = stored.first_bloom.sel(plant="mean").values
        assert np.isnan(leaf[cold]).all() and np.isnan(bloom[cold]).all()
        assert np.isfinite(leaf[~cold]).mean() > 0.95
        assert 40 <= np.nanmedian(leaf) <= 150
        assert (bloom[~cold] > leaf[~cold]).all()


@pytest.fixture
def http_root(catalog_root: Path) -> Iterator[str]:
    range_server = pytest.importorskip("RangeHTTPServer")
    pytest.importorskip("aiohttp")

    class Handler(range_server.RangeRequestHandler):  # type: ignore[name-defined,misc]
        def log_message(self, format: str, *args: object) -> None:
            pass

    handler = functools.partial(Handler, directory=str(catalog_root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_open_daymet_over_http_matches_local(http_root: str, catalog: pystac.Catalog) -> None:
    remote_catalog = pystac.Catalog.from_file(f"{http_root}/catalog.json")
    remote = open_daymet(remote_catalog, years=[2021], variables=["tmax"])
    href = next(iter(remote_catalog.get_items(recursive=True))).assets["tmax"].get_absolute_href()
    assert href is not None and href.startswith("http://")
    local = open_daymet(catalog, years=[2021], variables=["tmax"])
    np.testing.assert_array_equal(remote.tmax.values, local.tmax.values)
