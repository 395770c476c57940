"""Fixtures: the launcher's command line pointed at the real test cluster, at the built-in sites
only, and installed from its wheel (the helpers are in tests/support/)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from launcher.config.distribution import project_wheel, running_origin
from tests.cluster import rig
from tests.support.launcher_run import REPO, Launcher, checked_sandbox, launcher_env
from tests.support.wheel_install import NOTEBOOK, Installed, pip_install


@pytest.fixture
def sandbox(
    clean_netns_queue: rig.ClusterInfo, cluster_venv: str, tmp_path: Path
) -> Iterator[Launcher]:
    """The launcher pointed at the two-namespace cluster; every job cancelled afterwards."""
    info = clean_netns_queue
    launcher = Launcher(tmp_path / "platforms.ini", launcher_env(tmp_path), info)
    launcher.write_site("sandbox", **info.ini_section(), env_path=cluster_venv)
    yield launcher


@pytest.fixture
def multi_node(
    netns_cluster: rig.ClusterInfo, cluster_venv: str, tmp_path: Path
) -> Iterator[Launcher]:
    """The launcher with site ``whole-nodes`` on the rig's partition of two compute nodes (batch
    mode there is one allocation of both: ``batch_nodes = 2``); asserts that the test leaves
    none of its user's jobs."""
    for launcher in checked_sandbox(netns_cluster, cluster_venv, tmp_path):
        launcher.write_site(
            "whole-nodes",
            **{**netns_cluster.ini_section(), "partition": netns_cluster.multi_partition},
            env_path=cluster_venv,
            batch_nodes="2",
        )
        yield launcher


@pytest.fixture
def exchange(netns_cluster: rig.ClusterInfo) -> Iterator[Path]:
    """A directory for a pipeline's remotes (``src/``, ``dst/``), removed afterwards; the test
    gives it to the cluster user once it wrote its inputs (``chown_tree``)."""
    path = Path(tempfile.mkdtemp(prefix="eo-pipe-", dir="/var/tmp"))
    path.chmod(0o755)
    for sub in ("src", "dst"):
        (path / sub).mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def local_launcher(tmp_path: Path) -> Launcher:
    """The launcher with only the built-in sites."""
    launcher = Launcher(tmp_path / "platforms.ini", launcher_env(tmp_path))
    launcher.write_site("local", platform="local")
    return launcher


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """eo-hpc from its wheel in a fresh venv outside the checkout (dependencies from this
    machine), run from a work directory with a notebook, with its own HOME and config dir."""
    base = tmp_path_factory.mktemp("wheel-install")
    assert not base.resolve().is_relative_to(REPO)
    dist = base / "dist"
    dist.mkdir()
    wheel = project_wheel(dist, running_origin())
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    subprocess.run(
        [*pip_install(venv), str(wheel)],
        check=True,
    )
    workdir = base / "work"
    workdir.mkdir()
    (workdir / "hello.ipynb").write_text(json.dumps(NOTEBOOK))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "EOHPC_"))}
    env.update(
        HOME=str(base / "home"),
        EOHPC_STATE_DIR=str(base / "state"),
        EOHPC_CONFIG_DIR=str(base / "config"),
        PYTHONUNBUFFERED="1",
    )
    (base / "home").mkdir()
    return Installed(venv, wheel, workdir, env)
