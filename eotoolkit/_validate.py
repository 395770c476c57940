"""Parameter checks shared by the public functions: each returns the normalised value or raises
:class:`~eotoolkit.errors.InvalidParameterError` naming the parameter, the value, what is
allowed and the fix, before any task is built."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from .errors import InvalidParameterError

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

RESAMPLING = (
    "nearest", "bilinear", "cubic", "cubic_spline", "lanczos", "average", "mode", "gauss",
    "max", "min", "med", "q1", "q3", "sum", "rms",
)  # fmt: skip
GROUPBY_NAMES = ("solar_day", "time", "id", "none")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def invalid(param: str, value: Any, allowed: str, fix: str = "") -> InvalidParameterError:
    """``param=value`` is refused: ``allowed`` says what is accepted, ``fix`` what to do."""
    msg = f"{param}={_short(value)} is not valid: expected {allowed}."
    if fix:
        msg += f" {fix}"
    return InvalidParameterError(msg)


def number(param: str, value: Any, *, positive: bool = True, allow_none: bool = False) -> Any:
    """A finite real number (strictly positive unless ``positive=False``)."""
    if value is None and allow_none:
        return None
    what = "a finite number > 0" if positive else "a finite number"
    if isinstance(value, bool) or (
        not isinstance(value, int | float) and not hasattr(value, "__float__")
    ):
        raise invalid(param, value, what)
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise invalid(param, value, what) from None
    if not math.isfinite(v) or (positive and v <= 0):
        raise invalid(param, value, what)
    return v


def integer(param: str, value: Any, *, minimum: int = 1, maximum: int | None = None) -> int:
    """An int in [minimum, maximum]."""
    allowed = f"an integer >= {minimum}" + (f" and <= {maximum}" if maximum is not None else "")
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(param, value, allowed)
    if value < minimum or (maximum is not None and value > maximum):
        raise invalid(param, value, allowed)
    return int(value)


def boolean(param: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise invalid(param, value, "True or False")
    return value


def choice(param: str, value: Any, allowed: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise invalid(param, value, f"one of {list(allowed)}")
    return value


@lru_cache(maxsize=128)
def _crs(value: Any) -> Any:
    from pyproj import CRS

    return CRS.from_user_input(value)


def crs(param: str, value: Any, *, allow_utm: bool = False) -> Any:
    """A CRS pyproj understands (EPSG code, "EPSG:n", WKT, PROJ string, CRS object); with
    ``allow_utm`` also the word "utm". Returns the pyproj CRS (or "utm")."""
    from pyproj.exceptions import CRSError

    allowed = "an EPSG code (32633 or 'EPSG:32633'), WKT, a PROJ string or a pyproj CRS"
    if allow_utm:
        allowed += ", or 'utm' for the UTM zone of the data"
        if isinstance(value, str) and value.lower() == "utm":
            return "utm"
    if isinstance(value, bool) or value is None or isinstance(value, float):
        raise invalid(param, value, allowed)
    if isinstance(value, int):
        value = f"EPSG:{value}"
    if hasattr(value, "to_wkt") and not isinstance(value, str):
        value = value.to_wkt()
    try:
        return _crs(value)
    except (CRSError, TypeError, ValueError):
        raise invalid(param, value, allowed, "Check the code on https://epsg.io.") from None


def resolution(param: str, value: Any, *, allow_none: bool = True) -> tuple[float, float] | None:
    """A pixel size (x, y), both > 0, in the units of the output CRS: a number or a pair.

    The grid is always north-up (rows go south), so a pixel size is a length: negative values
    are refused rather than read as an axis flip.
    """
    if value is None and allow_none:
        return None
    allowed = "a pixel size > 0 in the units of the CRS (e.g. 10 for metres) or a pair (x, y)"
    pair = (
        value
        if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2
        else (value, value)
    )
    out = []
    for v in pair:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise invalid(param, value, allowed)
        if not math.isfinite(v) or v == 0:
            raise invalid(param, value, allowed)
        if v < 0:
            raise invalid(
                param,
                value,
                allowed,
                f"The grid is always north-up with rows going south, so the pixel size is a "
                f"length: pass {abs(v):g} instead of {v:g}.",
            )
        out.append(float(v))
    return out[0], out[1]


def chunks(param: str, value: Any) -> Any:
    """None, a positive int, or a mapping with positive ints for "y"/"x"."""
    allowed = "None, an integer > 0 or a mapping like {'y': 1024, 'x': 1024}"
    if value is None:
        return None
    if isinstance(value, Mapping):
        extra = set(value) - {"x", "y", "time"}
        if extra:
            raise invalid(param, value, allowed, f"Unknown dimension(s) {sorted(extra)}.")
        for k, v in value.items():
            if k != "time" and (isinstance(v, bool) or not isinstance(v, int) or v <= 0):
                raise invalid(param, value, allowed)
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise invalid(param, value, allowed)
    return value


def dtype(param: str, value: Any) -> Any:
    """None, a numeric numpy dtype, or a mapping band -> dtype."""
    import numpy as np

    if value is None:
        return None
    if isinstance(value, Mapping):
        for band, v in value.items():
            dtype(f"{param}[{band!r}]", v)
        return value
    allowed = "a numeric dtype such as 'float32', 'uint16' or 'int16' (or a mapping band -> dtype)"
    try:
        dt = np.dtype(value)
    except (TypeError, ValueError):
        raise invalid(param, value, allowed) from None
    if dt.kind not in "uif":
        raise invalid(param, value, allowed)
    return value


def resampling(param: str, value: Any, *, allow_none: bool = True) -> Any:
    """A GDAL resampling name, or a mapping band -> name."""
    if value is None and allow_none:
        return None
    if isinstance(value, Mapping):
        for band, v in value.items():
            resampling(f"{param}[{band!r}]", v, allow_none=False)
        return value
    return choice(param, value, RESAMPLING)


def frequency(param: str, value: Any) -> str:
    """A pandas offset alias such as "1MS", "QS", "7D"."""
    import pandas as pd

    allowed = "a pandas frequency such as '1MS' (month starts), 'QS', 'YS', '7D' or '1D'"
    if not isinstance(value, str) or not value.strip():
        raise invalid(param, value, allowed)
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pd.tseries.frequencies.to_offset(value)
    except (TypeError, ValueError):
        raise invalid(param, value, allowed) from None
    return value


def groupby(param: str, value: Any) -> Any:
    """None, "solar_day", "time", "id"/"none" or a pandas frequency."""
    if value is None or value in GROUPBY_NAMES:
        return value
    allowed = f"None, one of {list(GROUPBY_NAMES)} or a pandas frequency such as '1D'"
    if isinstance(value, str):
        try:
            return frequency(param, value)
        except InvalidParameterError:
            pass
    raise invalid(param, value, allowed)


def bbox(param: str, value: Any, *, lonlat: bool = True) -> tuple[float, float, float, float]:
    """(west, south, east, north) with west < east and south < north; in lon/lat the latitudes
    are within [-90, 90] and an area crossing the antimeridian has east > 180."""
    allowed = "(min x, min y, max x, max y)" + (" in lon/lat degrees" if lonlat else "")
    if isinstance(value, str | bytes | Mapping) or not hasattr(value, "__iter__"):
        raise invalid(param, value, allowed)
    value = list(value)
    try:
        vals = [float(v) for v in value]
    except (TypeError, ValueError):
        raise invalid(param, value, allowed) from None
    if len(vals) != 4 or any(isinstance(v, bool | str) for v in value):
        raise invalid(param, value, allowed)
    if not all(math.isfinite(v) for v in vals):
        raise invalid(param, value, allowed, "All four values must be finite.")
    x0, y0, x1, y1 = vals
    if x0 >= x1:
        fix = "min x must be smaller than max x."
        if lonlat and x0 > 0 > x1:
            fix += (
                f" For an area crossing the antimeridian give max lon above 180, e.g. "
                f"({x0:g}, {y0:g}, {x1 + 360:g}, {y1:g})."
            )
        raise invalid(param, value, allowed, fix)
    if y0 >= y1:
        raise invalid(param, value, allowed, "min y must be smaller than max y.")
    if lonlat:
        if y0 < -90 or y1 > 90:
            raise invalid(param, value, allowed, "Latitudes must be within [-90, 90].")
        if x0 < -360 or x1 > 360 or x1 - x0 > 360:
            raise invalid(
                param, value, allowed, "Longitudes must be within [-180, 180] (east up to 360)."
            )
    return x0, y0, x1, y1


def as_geometry(geometry: Any) -> BaseGeometry:
    """A shapely geometry from a shapely object or a GeoJSON-like mapping."""
    from shapely.geometry import shape
    from shapely.geometry.base import BaseGeometry

    if isinstance(geometry, BaseGeometry):
        return geometry
    if hasattr(geometry, "__geo_interface__"):
        geometry = geometry.__geo_interface__
    if isinstance(geometry, dict) and geometry.get("type") == "Feature":
        geometry = geometry["geometry"]
    return shape(geometry)


def geometry(param: str, value: Any) -> Any:
    """A shapely geometry or a GeoJSON geometry / Feature mapping, valid and not empty."""
    allowed = "a shapely geometry or a GeoJSON geometry/Feature in lon/lat (EPSG:4326)"
    if value is None:
        return None
    try:
        geom = as_geometry(value)
    except Exception:  # shapely raises several types for malformed GeoJSON
        raise invalid(param, value, allowed) from None
    if geom.is_empty:
        raise invalid(param, value, allowed, "The geometry is empty.")
    if geom.area == 0:
        raise invalid(
            param, value, allowed, "The geometry has no area (a point or a line); pass a polygon."
        )
    bbox(param + " bounds", geom.bounds)
    return geom


def bands(param: str, value: Any, *, allow_none: bool = True) -> list[str] | None:
    """None, a band name or a non-empty list of distinct band names."""
    if value is None and allow_none:
        return None
    allowed = "a band name or a non-empty list of band names (asset keys or common names)"
    if isinstance(value, str):
        value = [value]
    if (
        not isinstance(value, Sequence)
        or not value
        or not all(isinstance(v, str) and v for v in value)
    ):
        raise invalid(param, value, allowed)
    if len(set(value)) != len(value):
        raise invalid(param, value, allowed, "Each band may appear once.")
    return list(value)


def data(param: str, value: Any, *, dataarray: bool = True, time: bool = False) -> Any:
    """An xarray Dataset (or DataArray when ``dataarray``), with a ``time`` dimension when
    ``time``."""
    import xarray as xr

    kinds: tuple[type, ...] = (xr.Dataset, xr.DataArray) if dataarray else (xr.Dataset,)
    allowed = "an xarray Dataset" + (" or DataArray" if dataarray else "")
    if not isinstance(value, kinds):
        raise invalid(
            param,
            value,
            allowed,
            f"Got a {type(value).__name__}; load data with eotoolkit.load(...) first.",
        )
    dims = tuple(getattr(value, "dims", ()))
    if time and "time" not in dims:
        raise invalid(
            param,
            f"<{type(value).__name__} with dims {dims}>",
            allowed + " with a 'time' dimension",
        )
    return value


def georeferenced(param: str, value: Any) -> Any:
    """Data with 1-D ``y``/``x`` coordinates and a CRS (``.rio.crs``)."""
    import rioxarray  # noqa: F401

    desc = f"<{type(value).__name__} with dims {tuple(value.dims)}>"
    allowed = "data with 'y' and 'x' dimensions and a CRS (ds.rio.crs)"
    if "y" not in value.dims or "x" not in value.dims:
        raise invalid(param, desc, allowed, "Rename the spatial dimensions to 'y' and 'x'.")
    if value.rio.crs is None:
        raise invalid(param, desc, allowed, "Write one with ds.rio.write_crs('EPSG:...').")
    return value


def optional_int(param: str, value: Any, *, minimum: int = 1) -> int | None:
    return None if value is None else integer(param, value, minimum=minimum)


def time_range(param: str, value: Any) -> Any:
    """A date, "start/stop" or a (start, stop) pair of dates pandas can parse."""
    import pandas as pd

    allowed = "a date ('2024-05-01'), a range 'start/stop' or a (start, stop) pair"
    if isinstance(value, tuple | list):
        if len(value) != 2:
            raise invalid(param, value, allowed)
        parts = list(value)
    elif isinstance(value, str):
        parts = value.split("/") if "/" in value else [value]
        if len(parts) > 2:
            raise invalid(param, value, allowed)
    else:
        parts = [value]
    stamps: list[Any] = []
    for p in parts:
        if p is None or p in ("", ".."):
            stamps.append(None)
            continue
        try:
            stamps.append(pd.Timestamp(p))
        except (TypeError, ValueError):
            raise invalid(param, value, allowed) from None
    if len(stamps) == 2 and None not in stamps and stamps[0] > stamps[1]:
        raise invalid(param, value, allowed, "The start must not be after the stop.")
    return value
