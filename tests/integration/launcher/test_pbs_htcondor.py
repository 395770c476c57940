"""run / stop and batch on the real PBS and HTCondor test clusters, as for SLURM.

Each rig is a batch system in a Debian root of its own reached through sshd on its login
address (tests/cluster/pbs_rig.py, tests/cluster/htcondor_rig.py); the launcher runs here and
the cluster side uses the venv built inside the root.
"""

from __future__ import annotations

import importlib
import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from launcher.readiness import api_status
from tests.cluster import rig
from tests.integration.launcher.conftest import (
    Launcher,
    launcher_env,
    read_url,
    url_of,
    wait_until,
)

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(900)]

SYSTEMS = [
    pytest.param("pbs", marks=pytest.mark.pbs, id="pbs"),
    pytest.param("htcondor", marks=pytest.mark.htcondor, id="htcondor"),
]
#: On the HTCondor rig (Python 3.13 in the trixie root) the batch driver's own Client often
#: fails its first call to the scheduler (CommClosedError in rpc.identity) while the worker
#: jobs connect fine; the same driver outside a job passes sometimes. Not yet understood.
BATCH_SYSTEMS = [
    SYSTEMS[0],
    pytest.param(
        "htcondor",
        marks=[
            pytest.mark.htcondor,
            pytest.mark.xfail(
                reason="driver Client: CommClosedError in rpc.identity", strict=False
            ),
        ],
        id="htcondor",
    ),
]

TWO_WORKERS = """
import sys

import dask.array as da
from distributed import Client

client = Client()
workers = client.scheduler_info()["workers"]
assert len(workers) == 2, workers
total = da.ones((2000, 1000), chunks=(250, 250)).sum().compute()
print("SUM", int(total), "ARGS", sys.argv[1:], flush=True)
"""

EXIT_3 = """
print("failing on purpose", flush=True)
raise SystemExit(3)
"""


class OtherLauncher(Launcher):
    """The launcher on the PBS or HTCondor rig; ``queue()`` lists the user's jobs there."""

    rig_module: object = None

    def queue(self) -> str:
        return self.rig_module.queue()  # type: ignore[attr-defined]


def launcher_on(
    request: pytest.FixtureRequest, system: str, tmp_path: Path
) -> Iterator[OtherLauncher]:
    """The launcher pointed at one rig; asserts that the test leaves none of its user's jobs."""
    info: rig.ClusterInfo = request.getfixturevalue(f"{system}_cluster")
    module = importlib.import_module(f"tests.cluster.{system}_rig")
    launcher = OtherLauncher(tmp_path / "platforms.ini", launcher_env(tmp_path), info)
    launcher.rig_module = module
    launcher.write_site("sandbox", **info.ini_section(), env_path=info.venv)
    assert launcher.queue() == "", "jobs of the test user were queued before the test"
    try:
        yield launcher
        assert wait_until(lambda: launcher.queue() == "", 60), launcher.queue()
    finally:
        module.cancel_all_jobs()


@pytest.fixture(params=SYSTEMS)
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OtherLauncher]:
    yield from launcher_on(request, request.param, tmp_path)


@pytest.fixture(params=BATCH_SYSTEMS)
def batch_site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OtherLauncher]:
    yield from launcher_on(request, request.param, tmp_path)


def test_run_detach_reaches_jupyter_and_stop_leaves_no_job(site: OtherLauncher) -> None:
    # --detach returns once Jupyter answered /api/status with the token through the tunnel.
    result = site.run("--uid", "sandbox", "--mode", "run", "--no-browser", "--detach", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    _, _, token = url_of(result.stdout)
    proc = site.start("--uid", "sandbox", "--mode", "attach", "--no-browser")
    try:
        _, port, token2 = read_url(proc)
        assert token2 == token
        assert api_status(port, token) == 200
        assert api_status(port, "wrong-token") == 403
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    status = site.run("--uid", "sandbox", "--mode", "status", "--json")
    record = json.loads(status.stdout)
    # the batch system's own name of the state: R (PBS), RUNNING (HTCondor)
    assert record["state"] in ("R", "RUNNING") and record["node"] == site.info.compute_hostname
    assert site.queue() != ""
    stopped = site.run("--uid", "sandbox", "--mode", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert wait_until(lambda: site.queue() == "", 60), site.queue()


def test_batch_two_worker_jobs_exit_0(batch_site: OtherLauncher, tmp_path: Path) -> None:
    site = batch_site
    script = tmp_path / "analysis.py"
    script.write_text(TWO_WORKERS)
    result = site.run(
        "--uid", "sandbox", "--mode", "batch", "--script", str(script), "--workers", "2",
        "--", "one", "two words", timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUM 2000000 ARGS ['one', 'two words']" in result.stdout
    assert "eo-hpc: 2 workers ready" in result.stdout


def test_batch_exit_status_is_the_launchers(batch_site: OtherLauncher, tmp_path: Path) -> None:
    site = batch_site
    script = tmp_path / "fails.py"
    script.write_text(EXIT_3)
    result = site.run(
        "--uid", "sandbox", "--mode", "batch", "--script", str(script), "--workers", "1",
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 3, result.stdout + result.stderr
    assert "failing on purpose" in result.stdout
    assert "eo-hpc: script exited with status 3" in result.stdout
