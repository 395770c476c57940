"""Fixtures of the fault matrix: the launcher on each batch system's rig. The helpers that
inject the faults and read what the launcher left are in tests/support/faults.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.rig_sites import BATCH_SYSTEMS, RigSite, launcher_on, slurm_site


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "absent_on(**why): the batch systems a scenario of the fault matrix cannot run on, "
        "each with the reason; their rows are skipped saying it",
    )


@pytest.fixture(params=BATCH_SYSTEMS)
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RigSite]:
    """The launcher on the rig of one batch system (SLURM's two-namespace rig, the PBS rig, the
    HTCondor rig), its state and config directories its own. A scenario marked
    ``absent_on(<system>="why")`` is skipped on that system, saying why, before its rig starts."""
    system = request.param
    marker = request.node.get_closest_marker("absent_on")
    why = marker.kwargs.get(system) if marker is not None else None
    if why:
        pytest.skip(f"not on {system}: {why}")
    if system == "slurm":
        yield from slurm_site(request, tmp_path)
    else:
        yield from launcher_on(request, system, tmp_path)
