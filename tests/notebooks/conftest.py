"""Fixtures for running notebooks on the test SLURM cluster."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster import rig


@pytest.fixture
def dask_single_for_notebook(
    clean_queue: rig.ClusterInfo, cluster_venv: str
) -> Iterator[rig.ClusterInfo]:
    """The single-node cluster with the user's Dask config; no job of the user is left."""
    from tests.integration.dask_slurm import remote

    remote.install_dask_config(clean_queue)
    try:
        yield clean_queue
        assert remote.wait_no_jobs(clean_queue) == [], "the notebook left SLURM jobs behind"
    finally:
        remote.remove_dask_config(clean_queue)
