"""``eotoolkit run`` computes on the Dask scheduler its environment names, else on threads."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pystac
import pytest
import yaml
from distributed import Client, LocalCluster

import eotoolkit
import eotoolkit.cluster
from eoshared.scheduler.contract import SchedulerInfo, write_scheduler_file
from eotoolkit.cli import main

ENV_VARS = ("DASK_SCHEDULER_ADDRESS", "EOHPC_SCHEDULER_FILE", "EOHPC_SESSION")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No scheduler named anywhere; the session scheduler file goes in a private state dir."""
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    state = tmp_path / "state"
    monkeypatch.setenv("EOHPC_STATE_DIR", str(state))
    with dask.config.set({"scheduler-address": None}):
        yield state


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(
        n_workers=1,
        threads_per_worker=2,
        processes=False,
        host="127.0.0.1",
        protocol="tcp://",
        dashboard_address=":0",
    ) as cluster:
        yield cluster


def write_recipe(s2_url: str, path: Path) -> Path:
    recipe = {
        "source": f"{s2_url}/catalog.json",
        "bands": ["red", "nir"],
        "chunks": {"x": 64, "y": 64},
        "index": ["NDVI"],
        "output": "ndvi.zarr",
    }
    path.write_text(yaml.safe_dump(recipe))
    return path


def tasks_done(cluster: LocalCluster) -> dict[str, int]:
    """Tasks the cluster's scheduler has seen finish, by key prefix."""

    def count(dask_scheduler: Any) -> dict[str, int]:
        prefixes = dask_scheduler.task_prefixes.items()
        return {name: tp.state_counts["memory"] for name, tp in prefixes}

    with Client(cluster) as client:
        return {k: v for k, v in client.run_on_scheduler(count).items() if v}


def check_output(tmp_path: Path, items: list[pystac.Item]) -> None:
    got = eotoolkit.open_zarr(str(tmp_path / "ndvi.zarr"))
    ds = eotoolkit.load(items, bands=["red", "nir"], chunks=64)
    np.testing.assert_array_equal(got.NDVI.values, eotoolkit.index(ds, "NDVI").values)


def test_dask_scheduler_address_in_the_environment(
    clean_env: Path,
    cluster: LocalCluster,
    s2_url: str,
    s2_items: list[pystac.Item],
    tmp_path: Path,
) -> None:
    recipe = write_recipe(s2_url, tmp_path / "recipe.yaml")
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env["DASK_SCHEDULER_ADDRESS"] = cluster.scheduler_address
    result = subprocess.run(
        [sys.executable, "-m", "eotoolkit.cli", "run", str(recipe)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert f"Dask scheduler {cluster.scheduler_address}" in result.stderr
    done = tasks_done(cluster)
    assert done.get("load-red", 0) > 0 and done.get("write_block", 0) > 0, done
    check_output(tmp_path, s2_items)


def test_scheduler_option(
    clean_env: Path,
    cluster: LocalCluster,
    s2_url: str,
    s2_items: list[pystac.Item],
    tmp_path: Path,
) -> None:
    recipe = write_recipe(s2_url, tmp_path / "recipe.yaml")
    assert main(["run", str(recipe), "--scheduler", cluster.scheduler_address]) == 0
    assert tasks_done(cluster).get("write_block", 0) > 0
    check_output(tmp_path, s2_items)


def test_batches_on_the_scheduler(
    clean_env: Path,
    cluster: LocalCluster,
    s2_url: str,
    s2_items: list[pystac.Item],
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    recipe = write_recipe(s2_url, tmp_path / "recipe.yaml")
    raw = yaml.safe_load(recipe.read_text())
    recipe.write_text(yaml.safe_dump({**raw, "output": {"zarr": "ndvi.zarr", "max_tasks": 30}}))
    assert main(["run", str(recipe), "--scheduler", cluster.scheduler_address]) == 0
    err = capsys.readouterr().err
    total = int(err.split(" batches")[0].split()[-1])
    assert total > 1 and f"batch {total}/{total} written" in err
    done = tasks_done(cluster)  # a batch's writes are fused into its blocks' slice
    assert done.get("blocks", 0) > 0
    check_output(tmp_path, s2_items)


def test_session_scheduler_file(
    clean_env: Path,
    cluster: LocalCluster,
    s2_url: str,
    s2_items: list[pystac.Item],
    tmp_path: Path,
) -> None:
    path = eotoolkit.cluster.scheduler_file_path()
    path.parent.mkdir(parents=True, mode=0o700)
    write_scheduler_file(path, SchedulerInfo(address=cluster.scheduler_address))
    recipe = write_recipe(s2_url, tmp_path / "recipe.yaml")
    assert main(["run", str(recipe)]) == 0
    assert tasks_done(cluster).get("write_block", 0) > 0
    check_output(tmp_path, s2_items)


def test_no_scheduler_named_computes_on_threads(
    clean_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    s2_url: str,
    s2_items: list[pystac.Item],
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    def no_cluster(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("get_client called without a scheduler named")

    monkeypatch.setattr(eotoolkit.cluster, "get_client", no_cluster)
    # A session file whose scheduler is gone is ignored, with a note.
    path = eotoolkit.cluster.scheduler_file_path()
    path.parent.mkdir(parents=True, mode=0o700)
    write_scheduler_file(path, SchedulerInfo(address="tcp://127.0.0.1:9"))
    recipe = write_recipe(s2_url, tmp_path / "recipe.yaml")
    assert main(["run", str(recipe)]) == 0
    assert "nothing answers at tcp://127.0.0.1:9" in capsys.readouterr().err
    check_output(tmp_path, s2_items)
