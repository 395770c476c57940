"""Session certificates, scheduler files and :func:`eotoolkit.cluster.connect`, on real TLS."""

from __future__ import annotations

import json
import shutil
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from distributed import Client, LocalCluster

from eoshared.scheduler import local_copy
from eoshared.scheduler.contract import FORMAT, SchedulerFileError, write_scheduler_file
from eoshared.scheduler.tls import TLSFiles, create_session_tls
from eotoolkit import cluster as eocluster
from tests.support.dask_clusters import local_cluster


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_are_private_and_chain_to_the_session_ca(session_tls: TLSFiles) -> None:
    assert mode(session_tls.ca_file.parent) == 0o700
    for path in (session_tls.ca_file, session_tls.cert, session_tls.key):
        assert mode(path) == 0o600
    ca = x509.load_pem_x509_certificate(session_tls.ca_file.read_bytes())
    cert = x509.load_pem_x509_certificate(session_tls.cert.read_bytes())
    cert.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    # The CA key is not kept: only these three files exist.
    assert sorted(p.name for p in session_tls.ca_file.parent.iterdir()) == [
        "ca.pem",
        "cert.pem",
        "key.pem",
    ]


def test_existing_directory_is_made_private(tmp_path: Path) -> None:
    directory = tmp_path / "open"
    directory.mkdir(mode=0o755)
    create_session_tls(directory)
    assert mode(directory) == 0o700


def test_dask_does_not_check_host_names(tmp_path: Path) -> None:
    tls = create_session_tls(tmp_path / "s", hosts=["elsewhere.invalid"])
    security = tls.security()
    assert security.get_connection_args("client")["ssl_context"].check_hostname is False
    assert security.get_connection_args("client")["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    with local_cluster(security) as cluster, Client(cluster.scheduler_address, security=security):
        pass  # connected to 127.0.0.1 although the certificate names only elsewhere.invalid


def test_clients_without_the_session_certificates_are_refused(
    tls_cluster: LocalCluster, tmp_path: Path
) -> None:
    port = tls_cluster.scheduler_address.rsplit(":", 1)[1]
    with pytest.raises(OSError):
        Client(f"tcp://127.0.0.1:{port}", timeout=5)
    stranger = create_session_tls(tmp_path / "stranger").security()
    with pytest.raises(OSError):
        Client(f"tls://127.0.0.1:{port}", security=stranger, timeout=5)


def test_scheduler_file_round_trip_with_relative_tls_paths(
    session_tls: TLSFiles, clean_env: Path
) -> None:
    path = session_tls.ca_file.parent / "scheduler.json"
    info = eocluster.SchedulerInfo(
        address="tls://node1:1234",
        dashboard="http://127.0.0.1:1/status",
        tls=session_tls,
        host="node1",
        pid=7,
        job_id="99",
        worker_job_name="eohpc-dask-x",
        started="now",
    )
    write_scheduler_file(path, info)
    assert mode(path) == 0o600
    data = json.loads(path.read_text())
    assert data["format"] == FORMAT
    assert data["tls"] == {"ca_file": "ca.pem", "cert": "cert.pem", "key": "key.pem"}
    assert eocluster.read_scheduler_file(path) == info


def test_connect_through_a_copied_directory_and_another_address(
    tls_cluster: LocalCluster, session_tls: TLSFiles, tmp_path: Path
) -> None:
    directory = session_tls.ca_file.parent
    write_scheduler_file(
        directory / "scheduler.json",
        eocluster.SchedulerInfo(address="tls://node-unknown.invalid:1", tls=session_tls),
    )
    copy = tmp_path / "laptop"
    shutil.copytree(directory, copy)
    port = tls_cluster.scheduler_address.rsplit(":", 1)[1]
    with eocluster.connect(copy / "scheduler.json", forwarded_address=f"127.0.0.1:{port}") as c:
        assert c.scheduler.address == f"tls://127.0.0.1:{port}"
        assert c.submit(sum, [2, 3]).result() == 5


def test_connect_refuses_a_key_others_can_read(session_tls: TLSFiles, tmp_path: Path) -> None:
    directory = session_tls.ca_file.parent
    write_scheduler_file(
        directory / "scheduler.json",
        eocluster.SchedulerInfo(address="tls://127.0.0.1:1", tls=session_tls),
    )
    session_tls.key.chmod(0o644)
    with pytest.raises(PermissionError, match="must be private"):
        eocluster.connect(directory / "scheduler.json")


def test_the_contract_written_by_the_cluster_side_is_read_by_the_laptop_side(
    tls_cluster: LocalCluster,
    session_tls: TLSFiles,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The job's side publishes with write_scheduler_file; the launcher copies the published
    directory with local_copy (reading cluster files through a function, as over SSH) and points
    it at a forwarded port; get_client() with EOHPC_SESSION finds and uses that copy."""
    published = session_tls.ca_file.parent / "scheduler.json"
    port = int(tls_cluster.scheduler_address.rsplit(":", 1)[1])
    write_scheduler_file(
        published,
        eocluster.SchedulerInfo(
            address="tls://node-only-the-cluster-knows.invalid:40123",
            tls=session_tls,
            batch_system="slurm",
            job_id="7",
            worker_job_name="eohpc-dask-x",
        ),
    )
    run_dir = tmp_path / "run"
    (run_dir / local_copy.REMOTE_DIR).mkdir(parents=True)
    for path in published.parent.iterdir():
        shutil.copy(path, run_dir / local_copy.REMOTE_DIR / path.name)

    info = local_copy.copy_published(lambda p: Path(p).read_bytes(), str(run_dir), "site-a")
    assert info.address == "tls://node-only-the-cluster-knows.invalid:40123"
    assert info.tls is not None and info.tls.key.parent == local_copy.local_file("site-a").parent
    assert mode(info.tls.key) == 0o600 and mode(info.tls.key.parent) == 0o700
    path = local_copy.point_at("site-a", info, port)
    copied = eocluster.read_scheduler_file(path)
    assert copied.address == f"tls://127.0.0.1:{port}"
    assert copied.remote_address == info.address and copied.job_id == "7"

    monkeypatch.setenv("EOHPC_SESSION", "site-a")
    with eocluster.get_client() as client:
        assert client.submit(sum, [2, 3]).result() == 5
    local_copy.remove("site-a")
    assert not path.exists()


def test_a_scheduler_file_of_another_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "scheduler.json"
    path.write_text(json.dumps({"format": "eo-hpc-scheduler/1", "address": "tls://n:1"}))
    with pytest.raises(SchedulerFileError, match="this version reads 'eo-hpc-scheduler/2'"):
        eocluster.read_scheduler_file(path)


@pytest.mark.parametrize(
    ("link", "listen", "expected"),
    [
        # through Jupyter's proxy (the profiles' distributed.dashboard.link): kept as it is
        ("/user/x/proxy/8787/status", "127.0.0.1:8787", "/user/x/proxy/8787/status"),
        ("proxy/8787/status", "127.0.0.1:8787", "proxy/8787/status"),
        # a direct link names the address the dashboard listens on
        ("http://node7:8787/status", "127.0.0.1:8787", "http://127.0.0.1:8787/status"),
        ("http://10.0.0.5:41000/status", "0.0.0.0:0", "http://node7:41000/status"),
        ("http://10.0.0.5:41000/status", "[::1]:0", "http://[::1]:41000/status"),
    ],
)
def test_scheduler_file_dashboard(link: str, listen: str, expected: str) -> None:
    from eoshared.scheduler.serve import _dashboard_url

    assert _dashboard_url(link, listen, "node7") == expected
