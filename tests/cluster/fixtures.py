"""pytest fixtures that start the real SLURM + sshd test cluster (see :mod:`tests.cluster.rig`)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.cluster import rig


def _require_root() -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("the test cluster needs root, and CI must run the cluster tests")
        pytest.skip("the test cluster needs root (it starts slurmctld, slurmd, munged and sshd)")


def _cluster(topology: str) -> Iterator[rig.ClusterInfo]:
    _require_root()
    was_up = rig.is_up(topology)
    try:
        info = rig.up(topology)
    except rig.RigError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"the {topology} test cluster did not start: {exc}")
        pytest.skip(f"the {topology} test cluster did not start: {exc}")
    try:
        yield info
    finally:
        if was_up:
            rig.cancel_all_jobs(info)
        else:
            rig.down(topology)


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[rig.ClusterInfo]:
    """A single-node cluster: slurmctld, slurmd and sshd on this machine (sshd on loopback)."""
    yield from _cluster("single")


@pytest.fixture(scope="session")
def netns_cluster() -> Iterator[rig.ClusterInfo]:
    """A login node and a compute node in two network namespaces; only the login is reachable."""
    yield from _cluster("netns")


@pytest.fixture(scope="session")
def cluster_venv() -> str:
    """A venv on the cluster, readable by its users, with this project and Jupyter installed."""
    _require_root()
    return str(rig.ensure_cluster_venv())


@pytest.fixture
def clean_queue(slurm_cluster: rig.ClusterInfo) -> Iterator[rig.ClusterInfo]:
    """The single-node cluster, with every job of its users cancelled after the test."""
    yield slurm_cluster
    rig.cancel_all_jobs(slurm_cluster)


@pytest.fixture
def clean_netns_queue(netns_cluster: rig.ClusterInfo) -> Iterator[rig.ClusterInfo]:
    """The two-namespace cluster, with every job of its users cancelled after the test."""
    yield netns_cluster
    rig.cancel_all_jobs(netns_cluster)


def _other_cluster(batch_system: str) -> Iterator[rig.ClusterInfo]:
    """The PBS or HTCondor rig: started if it is not up (and stopped again afterwards)."""
    import importlib

    _require_root()
    module = importlib.import_module(f"tests.cluster.{batch_system}_rig")
    was_up = module.is_up()
    try:
        info = module.up()
    except rig.RigError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"the {batch_system} test cluster did not start: {exc}")
        pytest.skip(f"the {batch_system} test cluster did not start: {exc}")
    try:
        yield info
    finally:
        if was_up:
            module.cancel_all_jobs()
        else:
            module.down()


@pytest.fixture(scope="session")
def pbs_cluster() -> Iterator[rig.ClusterInfo]:
    """OpenPBS (server, scheduler, MOM) and sshd in a Debian 12 root and namespace of their own."""
    yield from _other_cluster("pbs")


@pytest.fixture(scope="session")
def htcondor_cluster() -> Iterator[rig.ClusterInfo]:
    """A personal HTCondor pool and sshd in a Debian 13 root and namespace of their own."""
    yield from _other_cluster("htcondor")
