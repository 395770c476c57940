"""Requests the test cluster's one node cannot hold are refused before anything is submitted."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.cluster import rig
from tests.support.launcher_run import REPO, Launcher, assert_error
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.netns]


def node_size(info: rig.ClusterInfo) -> tuple[str, int, int]:
    """The partition's node: name, CPUs, memory (MiB), as sinfo tells root."""
    cmd = rig.slurm_cmd(info, "sinfo", "-h", "-N", "-p", info.partition, "-o", "%N %c %m")
    name, cpus, mem = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
    return name, int(cpus), int(mem)


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_more_cpus_than_the_node_has(sandbox: Launcher, tmp_path: Path) -> None:
    assert sandbox.info is not None
    name, cpus, mem = node_size(sandbox.info)
    sandbox.write_site("big", **sandbox.info.ini_section(), cpus=str(cpus * 4))
    result = sandbox.run("--uid", "big", "--mode", "run", "--no-browser")
    assert_error(
        result, 4, f"{cpus * 4} CPUs", f"{name} with {cpus} CPUs and {mem} MiB", "'cpus'", "[big]"
    )
    one_line(result)
    assert sandbox.squeue() == ""


def test_more_memory_than_the_node_has(sandbox: Launcher) -> None:
    assert sandbox.info is not None
    name, _, mem = node_size(sandbox.info)
    sandbox.write_site("fat", **sandbox.info.ini_section(), mem=f"{mem * 2}M")
    result = sandbox.run("--uid", "fat", "--mode", "run", "--no-browser")
    assert_error(result, 4, f"{mem * 2} MiB", f"{name} with", "'mem'")
    assert sandbox.squeue() == ""


def test_partition_that_does_not_exist_lists_those_there_are(sandbox: Launcher) -> None:
    assert sandbox.info is not None
    sandbox.write_site("badpart", **{**sandbox.info.ini_section(), "partition": "nosuchpart"})
    result = sandbox.run("--uid", "badpart", "--mode", "run", "--no-browser")
    assert_error(result, 4, "'nosuchpart'", "does not exist", "partitions there: work")
    one_line(result)
    assert sandbox.squeue() == ""


def test_worker_jobs_too_large_are_refused_before_batch_submits(
    sandbox: Launcher, tmp_path: Path
) -> None:
    assert sandbox.info is not None
    name, cpus, _ = node_size(sandbox.info)
    profile = yaml.safe_load((REPO / "config/platforms/sandbox.yaml").read_text())
    profile["dask"]["jobqueue"]["slurm"]["cores"] = cpus * 8
    (tmp_path / "widesandbox.yaml").write_text(yaml.safe_dump(profile))
    sandbox.write_site(
        "wide", **{**sandbox.info.ini_section(), "platform": "widesandbox"}, env_path="/x"
    )
    script = tmp_path / "analysis.py"
    script.write_text("print('never runs')\n")
    result = sandbox.run(
        "--uid", "wide", "--mode", "batch", "--script", str(script), "--workers", "2"
    )
    assert_error(
        result,
        4,
        "each Dask worker job",
        f"{cpus * 8} CPUs",
        f"{name} with {cpus} CPUs",
        "'worker_cores'",
        "dask.jobqueue.slurm.cores",
    )
    one_line(result)
    assert sandbox.squeue() == ""


def test_a_request_that_fits_is_submitted(sandbox: Launcher) -> None:
    assert sandbox.info is not None
    _, cpus, _ = node_size(sandbox.info)
    sandbox.write_site("fits", **sandbox.info.ini_section(), cpus=str(cpus), mem="1000M")
    result = sandbox.run("--uid", "fits", "--mode", "dry-run")
    assert result.returncode == 0, result.stderr
    run = sandbox.run("--uid", "fits", "--mode", "run", "--no-browser", "--detach", timeout=300)
    assert run.returncode == 0, run.stderr
    assert "submitted job" in run.stderr + run.stdout
    stop = sandbox.run("--uid", "fits", "--mode", "stop")
    assert stop.returncode == 0, stop.stderr


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_batch_ends_early_when_a_worker_job_cannot_start(
    sandbox: Launcher, cluster_venv: str, tmp_path: Path
) -> None:
    """Worker jobs held by SLURM (reason JobHeldUser) end the driver's wait at once."""
    assert sandbox.info is not None
    profile = yaml.safe_load((REPO / "config/platforms/sandbox.yaml").read_text())
    profile["dask"]["jobqueue"]["slurm"]["job-extra-directives"] = ["--hold"]
    (tmp_path / "heldsandbox.yaml").write_text(yaml.safe_dump(profile))
    sandbox.write_site(
        "held", **{**sandbox.info.ini_section(), "platform": "heldsandbox"}, env_path=cluster_venv
    )
    script = tmp_path / "analysis.py"
    script.write_text("print('never runs')\n")
    start = time.monotonic()
    result = sandbox.run(
        "--uid", "held", "--mode", "batch", "--script", str(script), "--workers", "1",
        "--timeout", "600", timeout=600,
    )  # fmt: skip
    assert time.monotonic() - start < 300, result.stdout
    assert result.returncode == 1, result.stdout + result.stderr
    match = re.search(r"eo-hpc: worker job (\d+) PENDING \(JobHeldUser\)", result.stdout)
    assert match, result.stdout
    assert "cannot start" in result.stdout and "does not clear by itself" in result.stdout
    assert "never runs" not in result.stdout
    assert "eo-hpc: workers cancelled, cluster closed" in result.stdout
    assert wait_until(lambda: match.group(1) not in sandbox.squeue(), 60), sandbox.squeue()
