"""eotoolkit on Dask workers that are SLURM jobs: STAC -> load -> mask -> NDVI -> median -> Zarr."""

from __future__ import annotations

import pytest

from tests.cluster import rig
from tests.integration.dask_slurm import remote

pytestmark = pytest.mark.cluster

PIPELINE = r"""
import json, sys, tempfile
from pathlib import Path

import dask
import numpy as np

import eotoolkit as eo
from eotoolkit.cluster import slurm_cluster
from eotoolkit.synthetic.s2 import write_s2_collection

work = Path(tempfile.mkdtemp(dir=Path.home() / ".eo-tests"))
write_s2_collection(work / "s2", tiles=2, dates=3, size=192, every_days=20, workers=1)
catalog = str(work / "s2" / "catalog.json")


def pipeline():
    items = eo.search(catalog)
    ds = eo.load(items, bands=["red", "nir", "scl"], resolution=20, chunks=48)
    ndvi = eo.index(eo.mask_clouds(ds), "NDVI")
    return eo.composite(ndvi, freq="1MS", stat="median")


with slurm_cluster(jobs=2, timeout=240) as client:
    workers = client.scheduler_info()["workers"]
    hosts = sorted({w["host"] for w in workers.values()})
    eo.to_zarr(pipeline(), str(work / "ndvi.zarr"))
    worker_jobs = sorted(client.cluster.workers)

with dask.config.set(scheduler="synchronous"):
    expected = pipeline().compute()
got = eo.open_zarr(str(work / "ndvi.zarr"))
same = bool(np.array_equal(got["NDVI"].values, expected.values, equal_nan=True))
print("RESULT " + json.dumps({
    "workers": len(workers),
    "worker_jobs": len(worker_jobs),
    "same": same,
    "valid": int(np.isfinite(expected.values).sum()),
    "epsg": got.rio.crs.to_epsg(),
    "shape": list(expected.shape),
}))
"""


def test_stac_to_zarr_on_slurm_workers(dask_single: rig.ClusterInfo) -> None:
    result = remote.run_python(dask_single, PIPELINE, timeout=600)
    assert result["workers"] == 2
    assert result["worker_jobs"] == 2
    assert result["same"], "Zarr written by SLURM workers differs from a local computation"
    assert result["valid"] > 0
    assert result["epsg"] == 32631
    assert remote.wait_no_jobs(dask_single) == []


SPRING_INDEX = r"""
import json, tempfile
from pathlib import Path

import dask
import numpy as np
import xarray as xr

from eotoolkit.cluster import slurm_cluster
from eotoolkit.ops.daymet import open_daymet, spring_index_by_year
from eotoolkit.ops.phenology import spring_index
from eotoolkit.synthetic.daymet import write_daymet_like

work = Path(tempfile.mkdtemp(dir=Path.home() / ".eo-tests"))
catalog = write_daymet_like(work / "daymet", years=(2019, 2020), ny=24, nx=32)
ds = open_daymet(catalog, chunks={"time": -1, "y": 12, "x": 16})
store = str(work / "si.zarr")

with slurm_cluster(jobs=2, timeout=240) as client:
    workers = len(client.scheduler_info()["workers"])
    groups = spring_index_by_year(ds, store)

same = []
with dask.config.set(scheduler="synchronous"):
    for group in groups:
        year = ds.sel(time=group)
        expected = spring_index(year["tmin"], year["tmax"], year["dayl"]).compute()
        got = xr.open_zarr(store, group=group)
        same.append(bool(
            np.array_equal(got["first_leaf"].values, expected["first_leaf"].values, equal_nan=True)
            and np.array_equal(
                got["first_bloom"].values, expected["first_bloom"].values, equal_nan=True
            )
        ))
chunks = ds["tmin"].data.numblocks
print("RESULT " + json.dumps(
    {"workers": workers, "groups": groups, "same": same, "chunks": chunks[1] * chunks[2]}
))
"""


def test_spring_index_by_year_on_slurm_workers(dask_single: rig.ClusterInfo) -> None:
    result = remote.run_python(dask_single, SPRING_INDEX, timeout=600)
    assert result["workers"] == 2
    assert result["groups"] == ["2019", "2020"]
    assert result["same"] == [True, True]
    assert result["chunks"] == 4  # the spatial chunks were computed as separate tasks
    assert remote.wait_no_jobs(dask_single) == []
