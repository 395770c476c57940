"""Fixtures for the unit tests of :mod:`eotoolkit.cluster`: a clean environment, real clusters."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dask
import pytest
from distributed import LocalCluster

from eoshared.scheduler.tls import TLSFiles, create_session_tls

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


def local_cluster(security: object = None) -> LocalCluster:
    """A small in-process LocalCluster on loopback (TLS when ``security`` is given)."""
    return LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=False,
        host="127.0.0.1",
        dashboard_address=":0",
        protocol="tls://" if security is not None else "tcp://",
        security=security,
    )


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
