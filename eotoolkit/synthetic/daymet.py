"""Small synthetic Daymet-like daily NetCDF files listed in a static STAC catalog.

The files mimic Daymet V4 daily North America files: one file per variable and year named
``daymet_v4_daily_na_{var}_{year}.nc``, a Lambert conformal conic x/y grid in metres described
by a ``lambert_conformal_conic`` grid-mapping variable, 2-D ``lat``/``lon`` coordinates, 365
days per year (December 31 is dropped in leap years), time stamps at noon, ``tmin``/``tmax``
in degrees C and ``dayl`` in seconds.

Temperatures follow a seasonal cosine whose annual mean falls with latitude, plus
autocorrelated day-to-day weather and small per-pixel noise, so the SI-x thresholds are reached
in spring for most pixels. The pixels selected by :func:`cold_pixel_mask` (the north-west
corner) are frozen all year (``tmax`` well below 0 degC), so there the thresholds are never
reached.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pystac
import xarray as xr
from pyproj import CRS, Transformer
from pystac.extensions.projection import ProjectionExtension

__all__ = ["DAYMET_CRS", "cold_pixel_mask", "daymet_like_dataset", "write_daymet_like"]

#: Daymet's Lambert conformal conic projection.
DAYMET_CRS = CRS.from_proj4(
    "+proj=lcc +lat_1=25 +lat_2=60 +lat_0=42.5 +lon_0=-100 +x_0=0 +y_0=0 +ellps=WGS84 +units=m"
)
GRID_MAPPING = "lambert_conformal_conic"
VARIABLES = ("tmin", "tmax", "dayl")
_ATTRS = {
    "tmin": {
        "long_name": "daily minimum temperature",
        "units": "degrees C",
        "cell_methods": "area: mean time: minimum within days",
    },
    "tmax": {
        "long_name": "daily maximum temperature",
        "units": "degrees C",
        "cell_methods": "area: mean time: maximum within days",
    },
    "dayl": {"long_name": "daylength", "units": "s", "cell_methods": "area: mean"},
}
_COLD_OFFSET_C = -45.0


def cold_pixel_mask(ny: int, nx: int) -> np.ndarray:
    """Boolean (y, x) mask of the always-frozen pixels: the north-west 2 x 2 corner."""
    mask = np.zeros((ny, nx), dtype=bool)
    mask[: min(2, ny), : min(2, nx)] = True
    return mask


def _days(year: int) -> np.ndarray:
    """Daymet time stamps (noon) for ``year``: 365 days, December 31 dropped in leap years."""
    start = np.datetime64(f"{year}-01-01T12:00")
    return start + np.arange(365) * np.timedelta64(1, "D")


def _day_length_s(lat_deg: np.ndarray, doy: np.ndarray) -> np.ndarray:
    """Astronomical day length in seconds for (y, x) latitudes and (time,) days of year."""
    decl = np.deg2rad(23.44) * np.sin(2.0 * np.pi * (284.0 + doy) / 365.0)
    lat = np.deg2rad(lat_deg)
    cos_w0 = -np.tan(lat)[None] * np.tan(decl)[:, None, None]
    w0 = np.arccos(np.clip(cos_w0, -1.0, 1.0))
    return w0 / np.pi * 24.0 * 3600.0


def daymet_like_dataset(
    year: int,
    *,
    ny: int = 24,
    nx: int = 32,
    res: float = 25_000.0,
    seed: int = 0,
) -> xr.Dataset:
    """One year of synthetic Daymet-like tmin/tmax/dayl on an LCC grid (in memory)."""
    rng = np.random.default_rng([seed, year])
    x = -300_000.0 + res * (np.arange(nx) + 0.5)
    y = 100_000.0 - res * (np.arange(ny) + 0.5)
    xx, yy = np.meshgrid(x, y)
    to_lonlat = Transformer.from_crs(DAYMET_CRS, "EPSG:4326", always_xy=True)
    lon, lat = to_lonlat.transform(xx, yy)
    time = _days(year)
    doy = np.arange(1, 366, dtype=np.float64)

    annual_mean = 12.0 - 0.9 * (lat - 40.0) + rng.normal(0.0, 1.0, (ny, nx))
    amplitude = 13.0 + 0.3 * (lat - 40.0)
    season = -np.cos(2.0 * np.pi * (doy - 15.0) / 365.0)
    weather = np.zeros(365)
    shocks = rng.normal(0.0, 2.5, 365)
    for t in range(1, 365):
        weather[t] = 0.7 * weather[t - 1] + shocks[t]
    tmean = (
        annual_mean[None]
        + amplitude[None] * season[:, None, None]
        + weather[:, None, None]
        + rng.normal(0.0, 0.8, (365, ny, nx))
    )
    tmean[:, cold_pixel_mask(ny, nx)] += _COLD_OFFSET_C
    diurnal = np.clip(11.0 + rng.normal(0.0, 2.0, (365, ny, nx)), 2.0, None)
    tmin = tmean - diurnal / 2.0
    tmax = tmean + diurnal / 2.0
    dayl = _day_length_s(lat, doy)

    dims = ("time", "y", "x")
    data_vars = {
        name: xr.Variable(dims, values.astype(np.float32), _ATTRS[name])
        for name, values in (("tmin", tmin), ("tmax", tmax), ("dayl", dayl))
    }
    for var in data_vars.values():
        var.attrs["grid_mapping"] = GRID_MAPPING
    cf = DAYMET_CRS.to_cf()
    ds = xr.Dataset(
        {**data_vars, GRID_MAPPING: xr.Variable((), np.int16(0), cf)},
        coords={
            "time": ("time", time, {"standard_name": "time"}),
            "y": ("y", y, {"units": "m", "standard_name": "projection_y_coordinate"}),
            "x": ("x", x, {"units": "m", "standard_name": "projection_x_coordinate"}),
            "lat": (("y", "x"), lat.astype(np.float32), {"units": "degrees_north"}),
            "lon": (("y", "x"), lon.astype(np.float32), {"units": "degrees_east"}),
        },
        attrs={
            "source": "eotoolkit synthetic Daymet-like data (not real Daymet)",
            "start_year": year,
        },
    )
    return ds


def _item(year: int, ds: xr.Dataset, hrefs: dict[str, str], res: float) -> pystac.Item:
    """STAC item for one year with one NetCDF asset per variable and the proj extension."""
    x, y = ds["x"].values, ds["y"].values
    half = res / 2.0
    proj_bbox = [x.min() - half, y.min() - half, x.max() + half, y.max() + half]
    lon, lat = ds["lon"].values, ds["lat"].values
    bbox = [float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())]
    geometry = {
        "type": "Polygon",
        "coordinates": [
            [
                [bbox[0], bbox[1]],
                [bbox[2], bbox[1]],
                [bbox[2], bbox[3]],
                [bbox[0], bbox[3]],
                [bbox[0], bbox[1]],
            ]
        ],
    }
    start = dt.datetime(year, 1, 1, tzinfo=dt.timezone.utc)
    end = dt.datetime(year, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc)
    item = pystac.Item(
        id=f"daymet-like-{year}",
        geometry=geometry,
        bbox=bbox,
        datetime=None,
        properties={"start_datetime": start.isoformat(), "end_datetime": end.isoformat()},
        start_datetime=start,
        end_datetime=end,
    )
    for name, href in hrefs.items():
        item.add_asset(
            name,
            pystac.Asset(
                href=href,
                media_type="application/netcdf",
                roles=["data"],
                title=str(ds[name].attrs["long_name"]),
            ),
        )
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    proj.apply(
        epsg=None,
        wkt2=DAYMET_CRS.to_wkt(),
        shape=[ds.sizes["y"], ds.sizes["x"]],
        bbox=[float(v) for v in proj_bbox],
        transform=[res, 0.0, float(proj_bbox[0]), 0.0, -res, float(proj_bbox[3])],
    )
    return item


def write_daymet_like(
    root: str | Path,
    *,
    years: Iterable[int] = (2020,),
    ny: int = 24,
    nx: int = 32,
    seed: int = 0,
    res: float = 25_000.0,
) -> pystac.Catalog:
    """Write Daymet-like NetCDF files and a self-contained STAC catalog under ``root``.

    Files go to ``root/data/daymet_v4_daily_na_{var}_{year}.nc`` and the catalog to
    ``root/catalog.json`` (one item per year with assets ``tmin``, ``tmax`` and ``dayl``).
    """
    root = Path(root).resolve()
    data_dir = root / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    catalog = pystac.Catalog(
        id="daymet-like",
        description="Synthetic Daymet-like daily tmin, tmax and day length (NetCDF).",
    )
    time_encoding = {
        "units": "days since 1950-01-01 00:00:00",
        "calendar": "standard",
        "dtype": "float64",
    }
    for year in years:
        ds = daymet_like_dataset(year, ny=ny, nx=nx, res=res, seed=seed)
        hrefs = {}
        for name in VARIABLES:
            path = data_dir / f"daymet_v4_daily_na_{name}_{year}.nc"
            ds[[name, GRID_MAPPING]].to_netcdf(
                path,
                engine="h5netcdf",
                encoding={
                    name: {"dtype": "float32", "_FillValue": np.float32(-9999.0), "zlib": True},
                    "time": time_encoding,
                },
            )
            hrefs[name] = str(path.resolve())
        catalog.add_item(_item(year, ds, hrefs, res))
    catalog.normalize_hrefs(str(root.resolve()))
    catalog.make_all_asset_hrefs_relative()
    catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return catalog
