"""pytest fixtures that start the real SLURM + sshd test cluster (see :mod:`tests.cluster.rig`)."""

from __future__ import annotations

import os
import pwd
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import rig, twofactor


def _require_root() -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("the test cluster needs root, and CI must run the cluster tests")
        pytest.skip("the test cluster needs root (it starts slurmctld, slurmd, munged and sshd)")


#: What the launcher creates in the cluster user's home for each job: run directories, the
#: worker jobs' logs (the profiles' log-directory) and pipelines' work directories. The suite
#: removes what it created there.
RUN_ARTEFACTS = (".eohpc/runs", ".eohpc/dask-logs", ".eohpc/pipelines")
#: Containers of the artefacts (install's emptied ones too) that may appear without counting
#: as left behind.
HOME_CONTAINERS = (
    ".eohpc",
    ".eohpc/dist",
    ".eohpc/installs",
    ".config",
    ".config/dask",
    *RUN_ARTEFACTS,
)
#: The tools' own state that JupyterLab, IPython, pip and npm create on their first start.
HOME_IGNORED = (".cache", ".ipython", ".jupyter", ".local", ".npm")
HOME_DEPTH = 3


def home_entries(home: Path) -> set[str]:
    """The paths under ``home`` (relative, at most HOME_DEPTH deep; a run directory counts as
    one entry)."""
    entries: set[str] = set()
    for root, dirs, files in os.walk(home):
        rel = Path(root).relative_to(home)
        if rel.parts and (rel.parts[0] in HOME_IGNORED or str(rel.parent) in RUN_ARTEFACTS):
            dirs.clear()
            continue
        if len(rel.parts) >= HOME_DEPTH:
            dirs.clear()
        entries.update(str(rel / name) for name in [*dirs, *files])
    return entries


def home_left_behind(home: Path, before: set[str]) -> list[str]:
    """Remove the run directories and worker logs created since ``before``; return whatever
    else is new in ``home``."""
    new = sorted(home_entries(home) - before)
    for entry in new:
        if str(Path(entry).parent) in RUN_ARTEFACTS:
            path = home / entry
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
    return [e for e in sorted(home_entries(home) - before) if e not in HOME_CONTAINERS]


def _cluster(topology: str) -> Iterator[rig.ClusterInfo]:
    _require_root()
    was_up = rig.is_up(topology)
    try:
        info = rig.up(topology)
    except rig.RigError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"the {topology} test cluster did not start: {exc}")
        pytest.skip(f"the {topology} test cluster did not start: {exc}")
    home = Path(pwd.getpwnam(info.user).pw_dir)
    before = home_entries(home)
    try:
        yield info
    finally:
        if was_up:
            rig.cancel_all_jobs(info)
        else:
            rig.down(topology)
        left = home_left_behind(home, before)
        if left:
            pytest.fail(
                f"the tests left files in {home} on the {topology} cluster (beyond the run "
                f"directories, which are removed): {', '.join(left)}"
            )


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[rig.ClusterInfo]:
    """A single-node cluster: slurmctld, slurmd and sshd on this machine (sshd on loopback)."""
    yield from _cluster("single")


@pytest.fixture(scope="session")
def netns_cluster() -> Iterator[rig.ClusterInfo]:
    """A login node and a compute node in two network namespaces; only the login is reachable."""
    yield from _cluster("netns")


@pytest.fixture(scope="session")
def shared_single_cluster() -> Iterator[rig.ClusterInfo]:
    """The single-node cluster, left as found: the tests using it cancel only their own jobs
    (others may be using the cluster user's queue at the same time)."""
    _require_root()
    was_up = rig.is_up("single")
    try:
        info = rig.up("single")
    except rig.RigError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"the single test cluster did not start: {exc}")
        pytest.skip(f"the single test cluster did not start: {exc}")
    try:
        yield info
    finally:
        if not was_up:
            rig.down("single")


@pytest.fixture(scope="session")
def twofactor_sshd(shared_single_cluster: rig.ClusterInfo) -> Iterator[twofactor.TwoFactorInfo]:
    """A second sshd on the single cluster's login node that asks for a TOTP code after the key
    (keyboard-interactive through PAM google-authenticator); see tests/cluster/twofactor.py."""
    was_running = twofactor.load() is not None
    try:
        info = twofactor.ensure_2fa_sshd(shared_single_cluster)
    except rig.RigError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"the second-factor sshd did not start: {exc}")
        pytest.skip(f"the second-factor sshd did not start: {exc}")
    try:
        yield info
    finally:
        if not was_running:
            twofactor.stop_2fa_sshd()


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
