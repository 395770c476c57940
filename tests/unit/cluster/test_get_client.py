"""Which scheduler :func:`eotoolkit.cluster.get_client` picks, against real LocalClusters."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dask
import pytest
from distributed import LocalCluster

from eoshared.scheduler.contract import write_scheduler_file
from eoshared.scheduler.tls import TLSFiles
from eotoolkit import cluster as eocluster
from tests.support.dask_clusters import local_cluster

DEAD_ADDRESS = "tcp://127.0.0.1:9"


def publish(path: Path, cluster: LocalCluster, tls: TLSFiles | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_scheduler_file(
        path, eocluster.SchedulerInfo(address=cluster.scheduler_address, tls=tls, pid=os.getpid())
    )


def test_explicit_address_comes_first(
    plain_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch, clean_env: Path
) -> None:
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", DEAD_ADDRESS)
    with local_cluster() as other:
        publish(clean_env / "sessions" / "default" / "scheduler.json", other, None)
        with eocluster.get_client(plain_cluster.scheduler_address) as client:
            assert client.scheduler.address == plain_cluster.scheduler_address
            assert client.submit(sum, [1, 2, 3]).result() == 6


def test_dask_environment_variable_before_scheduler_file(
    plain_cluster: LocalCluster,
    tls_cluster: LocalCluster,
    session_tls: TLSFiles,
    monkeypatch: pytest.MonkeyPatch,
    clean_env: Path,
) -> None:
    publish(clean_env / "sessions" / "default" / "scheduler.json", tls_cluster, session_tls)
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", plain_cluster.scheduler_address)
    with eocluster.get_client() as client:
        assert client.scheduler.address == plain_cluster.scheduler_address


def test_dask_config_scheduler_address(plain_cluster: LocalCluster) -> None:
    with (
        dask.config.set({"scheduler-address": plain_cluster.scheduler_address}),
        eocluster.get_client() as client,
    ):
        assert client.scheduler.address == plain_cluster.scheduler_address


def test_session_scheduler_file_in_default_location(
    tls_cluster: LocalCluster, session_tls: TLSFiles, clean_env: Path
) -> None:
    path = clean_env / "sessions" / "default" / "scheduler.json"
    assert eocluster.scheduler_file_path() == path
    publish(path, tls_cluster, session_tls)
    with eocluster.get_client() as client:
        assert client.scheduler.address == tls_cluster.scheduler_address
        assert client.scheduler.address.startswith("tls://")
        assert client.submit(pow, 2, 10).result() == 1024


def test_session_name_and_explicit_file_variables(
    tls_cluster: LocalCluster,
    session_tls: TLSFiles,
    monkeypatch: pytest.MonkeyPatch,
    clean_env: Path,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("EOHPC_SESSION", "sandbox")
    assert eocluster.scheduler_file_path() == clean_env / "sessions" / "sandbox" / "scheduler.json"
    elsewhere = tmp_path / "copy"
    shutil.copytree(session_tls.ca_file.parent, elsewhere)
    publish(elsewhere / "scheduler.json", tls_cluster, session_tls)
    monkeypatch.setenv("EOHPC_SCHEDULER_FILE", str(elsewhere / "scheduler.json"))
    with eocluster.get_client() as client:
        assert client.scheduler.address == tls_cluster.scheduler_address


def test_stale_scheduler_file_falls_back_to_local_cluster(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch
    path = clean_env / "sessions" / "default" / "scheduler.json"
    path.parent.mkdir(parents=True)
    write_scheduler_file(path, eocluster.SchedulerInfo(address=DEAD_ADDRESS))
    with pytest.warns(RuntimeWarning, match="ignoring the session scheduler file"):
        client = eocluster.get_client(n_workers=1, processes=False, dashboard_address=":0")
    with client:
        assert isinstance(client.cluster, LocalCluster)


def test_local_cluster_fallback_belongs_to_the_client(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert not eocluster.slurm_available()
    client = eocluster.get_client(n_workers=1, processes=False, dashboard_address=":0")
    cluster = client.cluster
    assert isinstance(cluster, LocalCluster)
    assert client.submit(lambda: 41 + 1).result() == 42
    client.close()
    assert cluster.status.name == "closed"


@pytest.mark.skipif(shutil.which("sbatch") is None, reason="needs SLURM's sbatch on PATH")
def test_slurm_detection(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with dask.config.set({"jobqueue.slurm.cores": None, "jobqueue.slurm.memory": None}):
        assert not eocluster.slurm_configured()
        assert not eocluster.slurm_available()
        monkeypatch.setenv("SLURM_JOB_ID", "12345")
        assert eocluster.slurm_available()
        monkeypatch.delenv("SLURM_JOB_ID")
        monkeypatch.setenv("SLURM_CONF", "/etc/slurm/slurm.conf")
        assert eocluster.slurm_available()
        monkeypatch.setenv("PATH", str(tmp_path))
        assert not eocluster.slurm_available()
    monkeypatch.delenv("SLURM_CONF")
    monkeypatch.setenv("PATH", os.defpath)
    with dask.config.set({"jobqueue.slurm.cores": 1, "jobqueue.slurm.memory": "1GB"}):
        assert eocluster.slurm_configured()
        assert eocluster.slurm_available() == (shutil.which("sbatch") is not None)


def test_slurm_without_jobqueue_config_uses_a_local_cluster(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if shutil.which("sbatch") is None:
        pytest.skip("needs SLURM's sbatch on PATH")
    monkeypatch.setenv("SLURM_JOB_ID", "12345")
    with (
        dask.config.set({"jobqueue.slurm.cores": None, "jobqueue.slurm.memory": None}),
        pytest.warns(RuntimeWarning, match="no cores/memory"),
    ):
        client = eocluster.get_client(n_workers=1, processes=False, dashboard_address=":0")
    with client:
        assert isinstance(client.cluster, LocalCluster)


def test_importing_dask_jobqueue_keeps_the_sigint_handler() -> None:
    code = (
        "import signal, sys\n"
        "from eotoolkit import cluster\n"
        "cluster.slurm_configured()\n"
        "assert 'dask_jobqueue' in sys.modules\n"
        "assert signal.getsignal(signal.SIGINT) is signal.default_int_handler\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
