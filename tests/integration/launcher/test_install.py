"""install / uninstall on the single-node cluster (pip runs on the cluster: slow)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from launcher.readiness import api_status
from tests.cluster import rig
from tests.integration.launcher.conftest import Launcher, read_url, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def remote(info: rig.ClusterInfo, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(info.ssh_command(command), capture_output=True, text=True)


def test_install_run_uninstall(clean_queue: rig.ClusterInfo, tmp_path: Path) -> None:
    info = clean_queue
    env_path = "~/eohpc-install-test/venv"
    launcher = Launcher(
        tmp_path / "platforms.ini",
        {**__import__("os").environ, "EOHPC_STATE_DIR": str(tmp_path / "st")},
        info,
    )
    launcher.write_site("fresh", **info.ini_section(), env_path=env_path, python=info.python)
    remote(info, "rm -rf ~/eohpc-install-test ~/.eohpc/installs/fresh.json")

    first = launcher.run("--uid", "fresh", "--mode", "install", timeout=1500)
    assert first.returncode == 0, first.stderr
    check = remote(
        info,
        f"{env_path}/bin/python -c 'import jupyterlab, dask_jobqueue, "
        "dask_labextension, jupyter_server_proxy, launcher, eotoolkit' && "
        "ls ~/.config/dask/eohpc-sandbox.yaml ~/.eohpc/installs/fresh.json",
    )
    assert check.returncode == 0, check.stderr
    again = launcher.run("--uid", "fresh", "--mode", "install", timeout=900)  # idempotent
    assert again.returncode == 0, again.stderr

    proc = launcher.start("--uid", "fresh", "--mode", "run", "--no-browser")
    try:
        _, port, token = read_url(proc)
        assert api_status(port, token) == 200
        logs = launcher.run("--uid", "fresh", "--mode", "logs", "-n", "200").stdout
        assert "eohpc-install-test/venv/bin/python" in logs
    finally:
        proc.send_signal(2)
        proc.wait(timeout=60)
    assert wait_until(lambda: launcher.squeue() == "", 30)

    gone = launcher.run("--uid", "fresh", "--mode", "uninstall")
    assert gone.returncode == 0, gone.stderr
    left = remote(
        info, f"ls -d {env_path} ~/.config/dask/eohpc-sandbox.yaml ~/.eohpc/installs/fresh.json"
    )
    assert left.returncode != 0 and not left.stdout.strip()
    again = launcher.run("--uid", "fresh", "--mode", "uninstall")
    assert again.returncode == 9 and "nothing to uninstall" in again.stderr
