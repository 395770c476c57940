"""Fixtures: the test cluster with the cluster venv and the user's Dask jobqueue config."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster import rig
from tests.integration.dask_slurm import remote


@pytest.fixture
def dask_single(clean_queue: rig.ClusterInfo, cluster_venv: str) -> Iterator[rig.ClusterInfo]:
    """The single-node cluster, its venv and jobqueue config; no job of the user
    is left, and the config is removed afterwards."""
    remote.install_dask_config(clean_queue)
    try:
        assert remote.user_jobs(clean_queue) == []
        yield clean_queue
        assert remote.wait_no_jobs(clean_queue) == [], "the test left SLURM jobs behind"
    finally:
        remote.remove_dask_config(clean_queue)


@pytest.fixture
def dask_netns(clean_netns_queue: rig.ClusterInfo, cluster_venv: str) -> Iterator[rig.ClusterInfo]:
    """The two-namespace cluster, its venv and jobqueue config; no job of the user
    is left, and the config is removed afterwards."""
    remote.install_dask_config(clean_netns_queue)
    try:
        assert remote.user_jobs(clean_netns_queue) == []
        yield clean_netns_queue
        assert remote.wait_no_jobs(clean_netns_queue) == [], "the test left SLURM jobs behind"
    finally:
        remote.remove_dask_config(clean_netns_queue)
