"""JupyterLab's Dask panel on the two-namespace cluster, in headless Chromium, via the launcher.

The launcher runs JupyterLab as a SLURM job on the compute node and tunnels it to this machine;
the panel's "+ NEW" starts a dask-jobqueue SLURMCluster (the profile's labextension factory),
its SCALE dialog submits a worker job, and the cluster's dashboard opens through Jupyter's proxy.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser import lab
from tests.cluster import rig
from tests.integration.launcher.conftest import Launcher, read_url, wait_until

pytestmark = [
    pytest.mark.browser,
    pytest.mark.cluster,
    pytest.mark.netns,
    pytest.mark.slow,
    pytest.mark.timeout(900),
]

# The compute node's interface in the two-namespace rig (see tests/cluster/rig.py).
COMPUTE_INTERFACE = "eorig-c0"
WORKER_JOB = "dask-worker"


def user_jobs(info: rig.ClusterInfo) -> list[tuple[str, str, str]]:
    """(job id, name, state) of the cluster user's jobs, from squeue on the login node over SSH."""
    command = info.ssh_command("squeue", "-h", "-u", info.user, "-o", "'%i|%j|%T'")
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout
    return [tuple(line.split("|")) for line in out.split()]  # type: ignore[misc]


def cancel_user_jobs(info: rig.ClusterInfo) -> None:
    """Cancel only this user's jobs (other users share the rig)."""
    rig.run(rig.slurm_cmd(info, "scancel", "-u", info.user), check=False)


@pytest.fixture
def sandbox_site(
    netns_cluster: rig.ClusterInfo, cluster_venv: str, tmp_path: Path
) -> Iterator[Launcher]:
    """The launcher pointed at the two-namespace cluster as the test's own user."""
    info = netns_cluster
    cancel_user_jobs(info)
    assert wait_until(lambda: user_jobs(info) == [], 60), user_jobs(info)
    env = {**os.environ, "EOHPC_STATE_DIR": str(tmp_path / "state"), "PYTHONUNBUFFERED": "1"}
    launcher = Launcher(tmp_path / "platforms.ini", env, info)
    launcher.write_site(
        "sandbox", **info.ini_section(), env_path=cluster_venv, dask_interface=COMPUTE_INTERFACE
    )
    try:
        yield launcher
    finally:
        cancel_user_jobs(info)


def test_dask_panel_starts_slurm_workers_and_dashboard(
    sandbox_site: Launcher, browser_context: object, artifacts_dir: Path
) -> None:
    info = sandbox_site.info
    assert info is not None
    proc = sandbox_site.start("--uid", "sandbox", "--mode", "run", "--no-browser")
    page = browser_context.new_page()  # type: ignore[attr-defined]
    try:
        url, port, token = read_url(proc, timeout=360)
        jupyter_job = [job for job in user_jobs(info) if job[2] == "RUNNING"]
        assert len(jupyter_job) == 1, jupyter_job

        lab.open_lab(page, url)
        panel = lab.open_dask_panel(page)
        card = lab.new_cluster(page, panel)
        lab.scale_cluster(page, card, 1)

        # The worker is a SLURM job of the user, and it connects to the scheduler.
        assert wait_until(lambda: _worker_jobs(info) != [], 120), user_jobs(info)
        lab.wait_for_workers(card, 1)
        assert [job[2] for job in _worker_jobs(info)] == ["RUNNING"]

        # The card's dashboard link goes through Jupyter's proxy and answers there.
        link = card.locator(lab.DASHBOARD_LINK).get_attribute("href")
        assert link is not None and link.startswith("/proxy/") and link.endswith("/status"), link
        lab.dismiss_dialogs(page)
        page.screenshot(path=str(artifacts_dir / "jupyterlab-dask-panel.png"))
        dashboard = browser_context.new_page()  # type: ignore[attr-defined]
        response = dashboard.goto(
            f"http://127.0.0.1:{port}{link}?token={token}", timeout=lab.LOAD_MS
        )
        assert response is not None and response.status == 200, response
        dashboard.wait_for_selector(".bk-Canvas, .bk-root, canvas", timeout=lab.ACTION_MS)
        assert "Dask" in dashboard.title()
        dashboard.screenshot(path=str(artifacts_dir / "dask-dashboard.png"))
        dashboard.close()

        lab.shutdown_cluster(panel, card)
        assert wait_until(lambda: _worker_jobs(info) == [], 120), user_jobs(info)
    finally:
        page.close()
        proc.send_signal(signal.SIGINT)
        try:
            _, stderr = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, stderr = proc.communicate()
    assert proc.returncode == 130, stderr
    assert f"http://127.0.0.1:{port}/proxy/8787/status" in stderr
    assert wait_until(lambda: user_jobs(info) == [], 60), user_jobs(info)


def _worker_jobs(info: rig.ClusterInfo) -> list[tuple[str, str, str]]:
    return [job for job in user_jobs(info) if job[1] == WORKER_JOB]
