"""Which batch system eotoolkit.cluster's get_client() and jobqueue_cluster() use."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dask
import pytest
from distributed import LocalCluster

from eoshared.scheduler.tls_errors import PRELOAD_MODULE
from eoshared.scheduler.workers import jobqueue
from eotoolkit import cluster as eocluster

SUBMIT = {"slurm": "sbatch", "pbs": "qsub", "htcondor": "condor_submit"}
SECTIONS = ("slurm", "pbs", "htcondor")


@pytest.fixture(autouse=True)
def no_jobqueue_config() -> Iterator[None]:
    """No jobqueue section sets cores or memory (whatever the machine's Dask config says).

    dask_jobqueue is imported first: its defaults join Dask's config on import, and leaving
    a ``dask.config.set`` that created the ``jobqueue`` key would remove them again."""
    jobqueue()
    unset = {f"jobqueue.{s}.{key}": None for s in SECTIONS for key in ("cores", "memory")}
    with dask.config.set(unset):
        yield


def on_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *systems: str) -> None:
    """PATH holds only (fake) submit commands of ``systems``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for system in systems:
        command = bin_dir / SUBMIT[system]
        command.write_text("#!/bin/sh\necho 'not a real batch system' >&2\nexit 1\n")
        command.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))


def configured(*systems: str) -> dask.config.set:
    return dask.config.set(
        {f"jobqueue.{s}.{k}": v for s in systems for k, v in (("cores", 1), ("memory", "1GB"))}
    )


def test_no_submit_command_no_batch_system(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    on_path(monkeypatch, tmp_path)
    monkeypatch.setenv("PBS_JOBID", "1.server")
    with configured(*SECTIONS):
        assert eocluster.detect_batch_system() is None
        assert not any(eocluster.batch_system_available(s) for s in SECTIONS)


def test_the_configured_system_with_its_submit_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    on_path(monkeypatch, tmp_path, "slurm", "pbs", "htcondor")
    with configured("htcondor"):
        assert eocluster.detect_batch_system() == "htcondor"
        assert eocluster.jobqueue_configured("htcondor")
        assert not eocluster.jobqueue_configured("slurm")
    with configured("pbs", "htcondor"):
        assert eocluster.detect_batch_system() == "pbs"  # SLURM, PBS, HTCondor in this order


def test_a_configured_system_needs_its_submit_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    on_path(monkeypatch, tmp_path, "htcondor")
    monkeypatch.setenv("CONDOR_CONFIG", "/etc/condor/condor_config")
    with configured("slurm", "pbs"):
        assert eocluster.detect_batch_system() == "htcondor"
        assert not eocluster.slurm_available()


@pytest.mark.parametrize(
    ("system", "variable"),
    [
        ("slurm", "SLURM_JOB_ID"),
        ("slurm", "SLURM_CONF"),
        ("pbs", "PBS_JOBID"),
        ("pbs", "PBS_CONF_FILE"),
        ("htcondor", "HTCONDOR_JOB_ID"),
        ("htcondor", "_CONDOR_JOB_AD"),
    ],
)
def test_set_up_by_its_environment_without_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, system: str, variable: str
) -> None:
    on_path(monkeypatch, tmp_path, *SECTIONS)
    assert eocluster.detect_batch_system() is None  # all on PATH, none set up or configured
    monkeypatch.setenv(variable, "1")
    assert eocluster.detect_batch_system() == system
    assert eocluster.batch_system_available(system)
    assert not eocluster.jobqueue_configured(system)


def test_the_launchers_variable_names_the_system(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    on_path(monkeypatch, tmp_path, "slurm")
    monkeypatch.setenv("SLURM_JOB_ID", "5")
    monkeypatch.setenv("EOHPC_BATCH_SYSTEM", "htcondor")
    assert eocluster.detect_batch_system() == "htcondor"


def test_unconfigured_pbs_warns_and_gives_a_local_cluster(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    on_path(monkeypatch, tmp_path, "pbs")
    monkeypatch.setenv("PBS_JOBID", "7.server")
    with pytest.warns(RuntimeWarning, match="PBS is available but the Dask config jobqueue.pbs"):
        client = eocluster.get_client(n_workers=1, processes=False, dashboard_address=":0")
    with client:
        assert isinstance(client.cluster, LocalCluster)


@pytest.mark.parametrize(
    ("system", "cls"), [("pbs", "PBSCluster"), ("htcondor", "HTCondorCluster")]
)
def test_get_client_builds_the_detected_systems_adaptive_cluster(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, system: str, cls: str
) -> None:
    on_path(monkeypatch, tmp_path, system)
    extra = {"jobqueue.htcondor.disk": "1GB"} if system == "htcondor" else {}
    with configured(system), dask.config.set({
        f"jobqueue.{system}.scheduler-options": {"host": "127.0.0.1", "dashboard_address": ":0"},
        **extra,
    }):  # fmt: skip
        client = eocluster.get_client(max_jobs=2)
        try:
            cluster = client.cluster
            assert type(cluster).__name__ == cls
            assert f"--preload {PRELOAD_MODULE}" in cluster.job_script()
            assert cluster._adaptive is not None and cluster._adaptive.maximum == 2
            assert cluster.workers == {}  # adaptive from 0: nothing submitted yet
        finally:
            client.close()
            cluster.close()


def test_jobqueue_cluster_without_a_batch_system_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    on_path(monkeypatch, tmp_path)
    with pytest.raises(RuntimeError, match="no batch system found"), eocluster.jobqueue_cluster():
        pass
