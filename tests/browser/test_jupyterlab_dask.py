"""JupyterLab's Dask panel on SLURM, PBS and HTCondor, in headless Chromium, via the launcher.

The launcher runs JupyterLab as a batch job and tunnels it to this machine; the panel's "+ NEW"
starts the profile's labextension factory cluster (dask-jobqueue's SLURMCluster, PBSCluster or
HTCondorCluster), its SCALE dialog submits a worker job of the user, and the cluster's dashboard
opens through Jupyter's proxy. SLURM runs on the two-namespace rig (Jupyter on the compute node),
PBS and HTCondor on their own rigs (tests/cluster/pbs_rig.py, tests/cluster/htcondor_rig.py).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.browser import lab
from tests.cluster import rig
from tests.support.launcher_run import Launcher
from tests.support.process_output import read_url
from tests.support.rig_sites import SYSTEMS, OtherLauncher, launcher_on
from tests.support.waiting import wait_until

pytestmark = [
    pytest.mark.browser,
    pytest.mark.cluster,
    pytest.mark.slow,
    pytest.mark.timeout(900),
]

# The compute node's interface in the two-namespace rig (see tests/cluster/rig.py).
COMPUTE_INTERFACE = "eorig-c0"
JUPYTER_JOB = "eohpc-jupyter-sandbox"
WORKER_JOB = "dask-worker"

#: id -> (job name, state) of the cluster user's unfinished jobs.
Jobs = dict[str, tuple[str, str]]


@dataclass
class PanelSite:
    """A launcher site and how to read its batch system's queue."""

    launcher: Launcher
    jobs: Callable[[], Jobs]
    running: str  # the batch system's name of a running job's state
    cluster_class: str  # the dask-jobqueue class of the profile's labextension factory


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


@pytest.fixture(params=SYSTEMS)
def other_site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OtherLauncher]:
    """The launcher on the PBS or HTCondor rig (no job of the user before or after the test)."""
    yield from launcher_on(request, request.param, tmp_path)


@pytest.mark.netns
def test_dask_panel_starts_slurm_workers_and_dashboard(
    sandbox_site: Launcher, browser_context: object, artifacts_dir: Path
) -> None:
    info = sandbox_site.info
    assert info is not None
    site = PanelSite(
        sandbox_site,
        lambda: {job: (name, state) for job, name, state in user_jobs(info)},
        "RUNNING",
        "SLURMCluster",
    )
    dask_panel_round_trip(site, browser_context, artifacts_dir, "slurm")


def test_dask_panel_starts_pbs_and_htcondor_workers_and_dashboard(
    other_site: OtherLauncher, browser_context: object, artifacts_dir: Path
) -> None:
    from eoshared.batchsystem import batch_system_class
    from launcher.config import load_site

    system = batch_system_class(load_site("sandbox", other_site.ini).profile.batch_system)
    site = PanelSite(
        other_site,
        other_site.rig_module.job_names,  # type: ignore[attr-defined]
        {"pbs": "R", "htcondor": "RUNNING"}[system.name],
        system.jobqueue_class,
    )
    dask_panel_round_trip(site, browser_context, artifacts_dir, system.name)


def dask_panel_round_trip(
    site: PanelSite, browser_context: object, artifacts_dir: Path, label: str
) -> None:
    """JupyterLab by the launcher; in its Dask panel a new cluster of the profile's factory,
    scaled to one worker job, its dashboard through Jupyter's proxy, shut down again; then the
    session is stopped with Ctrl-C and no job of the user is left."""
    start = time.monotonic()
    proc = site.launcher.start("--uid", "sandbox", "--mode", "run", "--no-browser")
    page = browser_context.new_page()  # type: ignore[attr-defined]
    try:
        url, port, token = read_url(proc, timeout=400)
        jupyter = [job for job in site.jobs().values() if job == (JUPYTER_JOB, site.running)]
        assert len(jupyter) == 1, site.jobs()

        lab.open_lab(page, url)
        panel = lab.open_dask_panel(page)
        card = lab.new_cluster(page, panel)
        # the panel names a cluster after its class: "<class> <n>"
        title = card.locator(lab.CLUSTER_TITLE).inner_text(timeout=lab.ACTION_MS)
        assert title.startswith(f"{site.cluster_class} "), title
        lab.scale_cluster(page, card, 1)

        # The worker is a batch job of the user, and it connects to the scheduler.
        assert wait_until(lambda: _worker_jobs(site) != [], 120), site.jobs()
        lab.wait_for_workers(card, 1)
        assert _worker_jobs(site) == [site.running], site.jobs()

        # The card's dashboard link goes through Jupyter's proxy and answers there.
        link = card.locator(lab.DASHBOARD_LINK).get_attribute("href")
        assert link is not None and link.startswith("/proxy/") and link.endswith("/status"), link
        lab.dismiss_dialogs(page)
        page.screenshot(path=str(artifacts_dir / f"jupyterlab-dask-panel-{label}.png"))
        dashboard = browser_context.new_page()  # type: ignore[attr-defined]
        response = dashboard.goto(
            f"http://127.0.0.1:{port}{link}?token={token}", timeout=lab.LOAD_MS
        )
        assert response is not None and response.status == 200, response
        dashboard.wait_for_selector(".bk-Canvas, .bk-root, canvas", timeout=lab.ACTION_MS)
        assert "Dask" in dashboard.title()
        dashboard.screenshot(path=str(artifacts_dir / f"dask-dashboard-{label}.png"))
        dashboard.close()

        lab.shutdown_cluster(panel, card)
        assert wait_until(lambda: _worker_jobs(site) == [], 120), site.jobs()
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
    assert wait_until(lambda: site.jobs() == {}, 60), site.jobs()
    print(f"Dask panel on {label}: {time.monotonic() - start:.0f} s")


def _worker_jobs(site: PanelSite) -> list[str]:
    """The states of the user's worker jobs: named dask-worker (SLURM, PBS), or after their
    worker, ``<class>-<n>`` (HTCondorCluster makes a job's batch name the worker's name)."""
    worker = re.compile(rf"{WORKER_JOB}|{site.cluster_class}-\d+")
    return [state for name, state in site.jobs().values() if worker.fullmatch(name)]
