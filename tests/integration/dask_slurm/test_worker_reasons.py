"""slurm_cluster's wait for workers tells why worker jobs cannot start, and ends early for it."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator

import pytest

from tests.cluster import rig
from tests.integration.dask_slurm import remote

pytestmark = [pytest.mark.cluster, pytest.mark.netns, pytest.mark.slow, pytest.mark.timeout(600)]

WAIT = textwrap.dedent(
    """
    import getpass, json, secrets, subprocess, sys, time
    from eotoolkit.cluster import WorkersNotReady, slurm_cluster

    kwargs = json.loads(sys.argv[1])
    timeout = kwargs.pop("timeout", 120)
    name = "eohpc-test-" + secrets.token_hex(4)
    result = {}
    lines = []
    start = time.monotonic()
    try:
        with slurm_cluster(
            jobs=1, timeout=timeout, report=lines.append, job_name=name, **kwargs
        ) as client:
            result["workers"] = len(client.scheduler_info()["workers"])
    except WorkersNotReady as exc:
        result["error"] = str(exc)
    result["seconds"] = time.monotonic() - start
    result["lines"] = lines
    squeue = ["squeue", "-h", "--name=" + name, "-u", getpass.getuser(), "-o", "%i"]
    for _ in range(60):
        result["left"] = subprocess.run(squeue, capture_output=True, text=True).stdout.split()
        if not result["left"]:
            break
        time.sleep(0.5)
    print("RESULT " + json.dumps(result), flush=True)
    """
)


@pytest.fixture
def dask_shared(clean_netns_queue: rig.ClusterInfo, cluster_venv: str) -> Iterator[rig.ClusterInfo]:
    """The two-namespace cluster with its venv and jobqueue config; each test checks that its
    own jobs (by name) are gone, whatever other jobs the user has."""
    remote.install_dask_config(clean_netns_queue)
    try:
        yield clean_netns_queue
    finally:
        remote.remove_dask_config(clean_netns_queue)


def run_wait(info: rig.ClusterInfo, kwargs: str) -> dict[str, object]:
    result = remote.run_python(info, WAIT, args=f"'{kwargs}'")
    assert result["left"] == [], result
    return result


def test_worker_memory_no_node_has_ends_the_wait_with_sbatch_message(
    dask_shared: rig.ClusterInfo,
) -> None:
    result = run_wait(dask_shared, '{"memory": "512GiB"}')
    assert "workers" not in result, result
    error = str(result["error"])
    assert "sbatch rejected a worker job" in error
    assert "Requested node configuration is not available" in error
    assert float(result["seconds"]) < 60  # type: ignore[arg-type]


def test_held_worker_job_ends_the_wait_with_its_reason(dask_shared: rig.ClusterInfo) -> None:
    result = run_wait(dask_shared, '{"job_extra_directives": ["--hold"]}')
    assert "workers" not in result, result
    error = str(result["error"])
    assert "PENDING (JobHeldUser)" in error and "does not clear by itself" in error
    assert any("PENDING (JobHeldUser)" in line for line in result["lines"])  # type: ignore[attr-defined]
    assert float(result["seconds"]) < 60  # type: ignore[arg-type]


def test_pending_jobs_named_on_timeout(dask_shared: rig.ClusterInfo) -> None:
    result = run_wait(dask_shared, '{"job_extra_directives": ["--begin=now+1hour"], "timeout": 20}')
    assert any("PENDING (BeginTime)" in line for line in result["lines"]), result  # type: ignore[attr-defined]
    error = str(result["error"])
    assert "only 0/1 workers arrived within 20s" in error
    assert "PENDING (BeginTime)" in error
    assert float(result["seconds"]) < 60  # type: ignore[arg-type]
