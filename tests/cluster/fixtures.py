"""pytest fixtures that start the real SLURM + sshd test cluster (see :mod:`tests.cluster.rig`)."""

from __future__ import annotations

import contextlib
import os
import pwd
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import homes, rig, twofactor


def _require_root() -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("the test cluster needs root, and CI must run the cluster tests")
        pytest.skip("the test cluster needs root (it starts slurmctld, slurmd, munged and sshd)")


#: The rigs whose users' homes this session has already started fresh.
_HOMES_RESET: set[str] = set()


def reset_slurm_homes_once() -> None:
    """Start the SLURM rig's users' homes as a fresh machine has them, once per test session and
    only when no SLURM topology is up (a running one may be another session's)."""
    if "slurm" in _HOMES_RESET or any(rig.is_up(t) for t in ("single", "netns")):
        return
    _HOMES_RESET.add("slurm")
    for name in (rig.CLUSTER_USER, rig.OTHER_USER):
        # On a new machine there is no such user yet: the rig creates it with a fresh home.
        with contextlib.suppress(KeyError):
            homes.reset_home(Path(pwd.getpwnam(name).pw_dir))


def check_home(home: Path, before: set[str], environments: list[Path], where: str) -> None:
    """Fail when the tests left anything of theirs in ``home`` (see :mod:`tests.cluster.homes`)."""
    left = homes.home_left_behind(home, before, environments)
    if left:
        pytest.fail(
            f"the tests left files in {home} on the {where} cluster (beyond the run "
            f"directories, which are removed): {', '.join(left)}"
        )


def _cluster(topology: str) -> Iterator[rig.ClusterInfo]:
    _require_root()
    was_up = rig.is_up(topology)
    if not was_up:
        reset_slurm_homes_once()
    try:
        info = rig.up(topology)
    except rig.RigError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"the {topology} test cluster did not start: {exc}")
        pytest.skip(f"the {topology} test cluster did not start: {exc}")
    home = Path(pwd.getpwnam(info.user).pw_dir)
    before = homes.home_entries(home)
    try:
        yield info
    finally:
        if was_up:
            rig.cancel_all_jobs(info)
        else:
            rig.down(topology)
        check_home(home, before, [Path(info.venv)], topology)


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
    if not was_up:
        reset_slurm_homes_once()
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
    """The PBS or HTCondor rig: started if it is not up (and stopped again afterwards), its
    cluster user's home started fresh and checked afterwards as on the SLURM rig."""
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
    root = Path(info.extra["root"])
    home = root / "home" / info.user
    if not was_up:
        homes.reset_home(home, skeleton=root / "etc" / "skel")
    before = homes.home_entries(home)
    try:
        yield info
    finally:
        if was_up:
            module.cancel_all_jobs()
        else:
            module.down()
        check_home(home, before, [root / info.venv.lstrip("/")], batch_system)


@pytest.fixture(scope="session")
def pbs_cluster() -> Iterator[rig.ClusterInfo]:
    """OpenPBS (server, scheduler, MOM) and sshd in a Debian 12 root and namespace of their own."""
    yield from _other_cluster("pbs")


@pytest.fixture(scope="session")
def htcondor_cluster() -> Iterator[rig.ClusterInfo]:
    """A personal HTCondor pool and sshd in a Debian 13 root and namespace of their own."""
    yield from _other_cluster("htcondor")
