"""Fixtures for the unit tests of :mod:`eotoolkit.cluster`: a clean environment, real clusters."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dask
import pytest
from distributed import LocalCluster

from eoshared.scheduler.tls import TLSFiles, create_session_tls
from tests.support.dask_clusters import local_cluster

ENV_VARS = (
    "DASK_SCHEDULER_ADDRESS",
    "EOHPC_BATCH_SYSTEM",
    "EOHPC_SCHEDULER_FILE",
    "EOHPC_SESSION",
    "SLURM_CONF",
    "SLURM_JOB_ID",
    "PBS_CONF_FILE",
    "PBS_JOBID",
    "CONDOR_CONFIG",
    "HTCONDOR_JOB_ID",
    "_CONDOR_JOB_AD",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No scheduler address, no batch system, and a private state directory for the session
    file."""
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    state = tmp_path / "state"
    monkeypatch.setenv("EOHPC_STATE_DIR", str(state))
    with dask.config.set({"scheduler-address": None}):
        yield state


@pytest.fixture
def plain_cluster() -> Iterator[LocalCluster]:
    """A LocalCluster without TLS."""
    with local_cluster() as cluster:
        yield cluster


@pytest.fixture
def session_tls(clean_env: Path) -> TLSFiles:
    """Session TLS files in the default session directory."""
    return create_session_tls(clean_env / "sessions" / "default")


@pytest.fixture
def tls_cluster(session_tls: TLSFiles) -> Iterator[LocalCluster]:
    """A LocalCluster whose scheduler and worker require the session certificates."""
    with local_cluster(session_tls.security()) as cluster:
        yield cluster
