"""Spectral indices from the Awesome Spectral Indices catalogue (via spyndex)."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from ..errors import SpectralIndexError

#: spyndex band letter -> eo common names that provide it.
COMMON_NAMES = {
    "A": ("coastal",),
    "B": ("blue",),
    "G": ("green",),
    "G1": ("green05",),
    "Y": ("yellow",),
    "R": ("red",),
    "RE1": ("rededge1", "rededge071", "rededge"),
    "RE2": ("rededge2", "rededge075"),
    "RE3": ("rededge3", "rededge078"),
    "N": ("nir", "nir08"),
    "N2": ("nir2", "nir08a", "rededge4"),
    "WV": ("nir09", "wvp"),
    "S1": ("swir16", "swir1"),
    "S2": ("swir22", "swir2"),
    "T": ("lwir", "lwir11"),
    "T1": ("lwir11", "lwir"),
    "T2": ("lwir12",),
}
#: spyndex band letter -> Sentinel-2 asset names.
SENTINEL2 = {
    "A": "B01",
    "B": "B02",
    "G": "B03",
    "R": "B04",
    "RE1": "B05",
    "RE2": "B06",
    "RE3": "B07",
    "N": "B08",
    "N2": "B8A",
    "WV": "B09",
    "S1": "B11",
    "S2": "B12",
}
#: spyndex band letter -> Landsat 8/9 Collection 2 asset names.
LANDSAT = {
    "A": "SR_B1",
    "B": "SR_B2",
    "G": "SR_B3",
    "R": "SR_B4",
    "N": "SR_B5",
    "S1": "SR_B6",
    "S2": "SR_B7",
    "T": "ST_B10",
    "T1": "ST_B10",
}


def _candidates(letter: str) -> list[str]:
    names = list(COMMON_NAMES.get(letter, ()))
    s2 = SENTINEL2.get(letter)
    if s2:
        names += [s2, s2.replace("B0", "B")]
    if letter in LANDSAT:
        names.append(LANDSAT[letter])
    return list(dict.fromkeys(names))


def _find_band(ds: xr.Dataset, letter: str) -> str | None:
    lower = {str(k).lower(): str(k) for k in ds.data_vars}
    for cand in _candidates(letter):
        if cand.lower() in lower:
            return lower[cand.lower()]
    for name, var in ds.data_vars.items():
        if str(var.attrs.get("common_name", "")).lower() in COMMON_NAMES.get(letter, ()):
            return str(name)
    return None


def index(ds: xr.Dataset, name: str, **params: Any) -> xr.DataArray:
    """Compute a spectral index (e.g. "NDVI", "EVI", "NBR") as a float32 DataArray.

    Band letters of the catalogue (B, G, R, N, S1, RE1, T, ...) are matched to variables by eo
    common name or Sentinel-2 / Landsat asset names; ``params`` override bands or constants
    (e.g. ``L=0.5``, or ``N=ds["B8A"]``). Constants default to the catalogue's values.
    """
    import spyndex

    from .. import _validate

    _validate.data("ds", ds, dataarray=False)
    if not isinstance(name, str) or not name:
        raise SpectralIndexError(
            f"name={name!r} is not valid: expected the name of a spectral index such as "
            f"'NDVI', 'EVI' or 'NBR'."
        )
    catalogue = spyndex.indices
    key = next((k for k in catalogue if k.lower() == name.lower()), None)
    if key is None:
        raise SpectralIndexError(
            f"Unknown spectral index {name!r}. See spyndex.indices (Awesome Spectral Indices) for "
            f"the {len(catalogue)} available names, e.g. NDVI, EVI, NBR, NDWI, SAVI."
        )
    spec = catalogue[key]
    values: dict[str, Any] = {}
    missing = []
    for letter in spec.bands:
        if letter in params:
            values[letter] = params[letter]
        elif letter in spyndex.constants:
            values[letter] = spyndex.constants[letter].default
        else:
            var = _find_band(ds, letter)
            if var is None:
                missing.append(letter)
            else:
                data = ds[var]
                values[letter] = data.astype(np.float32) if data.dtype != np.float32 else data
    if missing:
        wanted = {m: _candidates(m) for m in missing}
        raise SpectralIndexError(
            f"Index {key} needs band(s) {missing} which are not in the dataset (variables: "
            f"{list(ds.data_vars)}). Load one of {wanted} or pass them, e.g. "
            f"index(ds, {key!r}, {missing[0]}=ds['...'])."
        )
    for k, v in params.items():
        values.setdefault(k, v)
    result = spyndex.computeIndex(key, params=values)
    if isinstance(result, xr.DataArray):
        if result.dtype != np.float32:
            result = result.astype(np.float32)
        result.name = key
        result.attrs = {"long_name": spec.long_name, "formula": spec.formula}
        return result
    raise SpectralIndexError(f"Index {key} did not produce an array from the given inputs.")
