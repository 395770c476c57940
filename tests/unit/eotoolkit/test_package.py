"""The package namespace: lazy public functions, a cheap import and the .eo accessor."""

from __future__ import annotations

import importlib.util
import pkgutil
import subprocess
import sys
import types

import pytest
import xarray as xr

import eotoolkit

HEAVY = (
    "spyndex",
    "zarr",
    "dask.array",
    "pystac_client",
    "eotoolkit.stores.zarr_store",
    "eotoolkit.loader",
)


def test_import_is_cheap_and_registers_the_accessor() -> None:
    code = (
        "import sys, xarray, eotoolkit\n"
        "assert hasattr(xarray.Dataset, 'eo') and hasattr(xarray.DataArray, 'eo')\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_every_public_name_resolves_and_is_listed() -> None:
    for name in eotoolkit.__all__:
        assert not isinstance(getattr(eotoolkit, name), types.ModuleType), name
    assert set(eotoolkit.__all__) <= set(dir(eotoolkit))
    with pytest.raises(AttributeError, match="no_such_name"):
        eotoolkit.no_such_name  # noqa: B018


def test_no_module_is_named_like_a_public_function() -> None:
    modules = {m.name for m in pkgutil.iter_modules(eotoolkit.__path__)}
    assert not modules & set(eotoolkit.__all__)
    for module in set(eotoolkit._LAZY.values()):
        assert module.partition(".")[0] in modules, module
        assert importlib.util.find_spec(f"eotoolkit.{module}") is not None, module


def test_submodule_import_keeps_the_function() -> None:
    import eotoolkit.loader
    import eotoolkit.ops.regrid
    import eotoolkit.ops.selection
    import eotoolkit.ops.temporal
    import eotoolkit.stac.discovery
    import eotoolkit.stores.zarr_store

    for name in ("composite", "open_stac", "resample", "search", "subset", "to_zarr"):
        assert callable(getattr(eotoolkit, name)), name
        assert not isinstance(getattr(eotoolkit, name), types.ModuleType), name
    from eotoolkit.ops.temporal import nanquantile_sorted

    assert callable(nanquantile_sorted)


def test_accessor_methods_reach_the_functions() -> None:
    ds = xr.Dataset({"v": (("time", "y", "x"), [[[1.0]]])}, coords={"time": ["2024-01-01"]})
    ds["time"] = ds.time.astype("datetime64[ns]")
    out = ds.eo.composite(freq="1MS", stat="max")
    assert float(out.v.values.ravel()[0]) == 1.0


def test_version_is_the_distributions() -> None:
    from importlib.metadata import version

    assert eotoolkit.__version__ == version("eo-hpc")


def test_command_version_and_plain_help() -> None:
    for flag, expected in (("--version", f"eotoolkit {eotoolkit.__version__}"), ("--help", "")):
        out = subprocess.run(
            [sys.executable, "-m", "eotoolkit.cli", flag], capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        assert expected in out.stdout
        assert "``" not in out.stdout and ":mod:" not in out.stdout and ":func:" not in out.stdout
