"""Partition limits (SLURM's sinfo/scontrol output) and whether a job's request fits them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from eoshared.batchsystem import BatchSystem, NodeSize, PartitionLimits, Slurm
from eoshared.batchsystem.slurm import LIMITS_SEPARATOR, parse_node_limits
from eoshared.errors import RequestFitError
from launcher.config import load_site
from launcher.sites import fit

SINFO = """\
n001|32|128000|short*
n002|32|128000|short*
fat01|64|1000000|fat
n001|32|128000|long
"""
SCONTROL = """\
PartitionName=short AllowGroups=ALL Default=YES MaxTime=04:00:00 MaxCPUsPerNode=UNLIMITED MaxMemPerNode=UNLIMITED State=UP TotalCPUs=64
PartitionName=fat Default=NO MaxTime=2-00:00:00 MaxCPUsPerNode=48 MaxMemPerNode=500000 State=UP
PartitionName=long Default=NO MaxTime=UNLIMITED MaxCPUsPerNode=UNLIMITED MaxMemPerNode=UNLIMITED State=DOWN
"""  # noqa: E501
OUTPUT = f"{SINFO}{LIMITS_SEPARATOR}\n{SCONTROL}"


def test_default_partition_is_the_one_marked_default() -> None:
    limits = parse_node_limits(OUTPUT, None)
    assert limits is not None
    assert limits.partition == "short" and limits.exists
    assert limits.nodes == (NodeSize("n001", 32, 128000), NodeSize("n002", 32, 128000))
    assert limits.max_time_seconds == 4 * 3600
    assert limits.max_cpus_per_node is None and limits.max_mem_per_node_mb is None
    assert limits.partitions == ("short", "fat", "long")


def test_named_partition_with_caps() -> None:
    limits = parse_node_limits(OUTPUT, "fat")
    assert limits is not None
    assert limits.nodes == (NodeSize("fat01", 64, 1000000),)
    assert limits.max_cpus_per_node == 48 and limits.max_mem_per_node_mb == 500000
    assert limits.max_time_seconds == 2 * 86400
    assert parse_node_limits(OUTPUT, "long").state == "DOWN"  # type: ignore[union-attr]


def test_missing_partition_lists_those_there_are() -> None:
    limits = parse_node_limits(OUTPUT, "gpu")
    assert limits is not None and not limits.exists
    assert limits.partitions == ("short", "fat", "long")


@pytest.mark.parametrize("output", ["", "garbage", f"{SINFO}", f"{LIMITS_SEPARATOR}\nerror"])
def test_unreadable_output_is_unknown(output: str) -> None:
    assert parse_node_limits(output, None) is None
    assert parse_node_limits(output, "short") is None


def test_node_limits_is_one_command() -> None:
    commands: list[str] = []

    def run(command: str, stdin: str | bytes | None = None) -> tuple[int, str, str]:
        commands.append(command)
        return 0, OUTPUT, ""

    assert Slurm(run).node_limits("fat") is not None
    assert len(commands) == 1 and "-p fat" in commands[0] and "scontrol" in commands[0]
    assert Slurm(lambda c, s=None: (127, "", "sinfo: not found")).node_limits(None) is None


def test_other_batch_systems_know_no_limits() -> None:
    assert BatchSystem.node_limits(Slurm(), None) is None


@pytest.mark.parametrize(
    ("text", "mib"),
    [("4G", 4096), ("4000", 4000), ("4000M", 4000), ("4000MB", 4000), ("1T", 1048576),
     ("2048K", 2), ("0", 0), ("lots", None), (None, None)],
)  # fmt: skip
def test_slurm_memory(text: str | None, mib: int | None) -> None:
    assert fit.slurm_mem_mb(text) == mib


@pytest.mark.parametrize(
    ("text", "mib"), [("4GiB", 4096), ("4GB", 4096), ("1GiB", 1024), ("500MB", 477), ("x", None)]
)
def test_jobqueue_memory_as_dask_jobqueue_asks_for_it(text: str, mib: int | None) -> None:
    assert fit.jobqueue_mem_mb(text) == mib


KEYS = {k: f"<{k}>" for k in ("cpus", "mem", "time", "partition")}
SHORT = parse_node_limits(OUTPUT, "short")
FAT = parse_node_limits(OUTPUT, "fat")


def request(cpus: int | None = 1, mem: int | None = None, time: int | None = 60) -> fit.Request:
    return fit.Request("the job", cpus, mem, time, None, KEYS)


def test_fitting_requests_pass() -> None:
    assert fit.misfit(request(32, 128000, 4 * 3600), SHORT) is None
    assert fit.misfit(request(None, None, None), SHORT) is None
    assert fit.misfit(request(64), None) is None  # unknown limits never block
    empty = PartitionLimits("short", nodes=())
    assert fit.misfit(request(640), empty) is None


def test_too_many_cpus_names_the_largest_node_and_the_key() -> None:
    message = fit.misfit(request(33), SHORT)
    assert message is not None
    assert "33 CPUs" in message and "n001 with 32 CPUs and 128000 MiB" in message
    assert "<cpus>" in message and "<mem>" not in message and "\n" not in message


def test_too_much_memory_names_the_memory_key() -> None:
    message = fit.misfit(request(1, 200000), SHORT)
    assert message is not None and "200000 MiB" in message and "<mem>" in message
    assert "<cpus>" not in message


def test_partition_caps_count() -> None:
    message = fit.misfit(request(49), FAT)
    assert message is not None and "MaxCPUsPerNode=48" in message and "<cpus>" in message
    message = fit.misfit(request(8, 600000), FAT)
    assert message is not None and "MaxMemPerNode=500000" in message and "<mem>" in message


def test_time_over_max_time() -> None:
    message = fit.misfit(request(time=5 * 3600), SHORT)
    assert message is not None and "5:00:00" in message and "4:00:00 (MaxTime)" in message
    assert "<time>" in message


def test_cpus_and_memory_that_no_one_node_has() -> None:
    limits = PartitionLimits(
        "mixed", nodes=(NodeSize("wide", 64, 1000), NodeSize("deep", 4, 256000))
    )
    message = fit.misfit(request(32, 100000), limits)
    assert message is not None and "<cpus>" in message and "<mem>" in message


def test_missing_partition_message() -> None:
    message = fit.misfit(request(), parse_node_limits(OUTPUT, "gpu"))
    assert message is not None
    assert "'gpu'" in message and "short, fat, long" in message and "<partition>" in message


def test_missing_pbs_queue_is_called_a_queue() -> None:
    from eoshared.batchsystem.pbs import parse_queues

    limits = parse_queues('{"Queue": {"workq": {}, "long": {}}}', "oldq")
    message = fit.misfit(request(), limits)
    assert message is not None
    assert "asks for queue 'oldq', which does not exist; queues there: long, workq" in message


SITE_INI = """\
[big]
platform = sandbox
host = login
cpus = 16
mem_per_cpu = 2G
partition = short
"""


def test_requests_from_a_site(tmp_path: Path) -> None:
    ini = tmp_path / "platforms.ini"
    ini.write_text(SITE_INI)
    site = load_site("big", ini)
    jupyter = fit.job_request(site, site.profile.job, "the Jupyter job")
    assert (jupyter.cpus, jupyter.mem_mb, jupyter.partition) == (16, 16 * 2048, "short")
    assert "'mem_per_cpu' in platforms.ini [big]" in jupyter.keys["mem"]
    workers = fit.worker_request(site)
    assert workers is not None
    assert (workers.cpus, workers.mem_mb, workers.time_seconds) == (1, 1024, 1800)
    assert workers.partition == "short"  # the workers inherit the Jupyter job's partition
    assert "'worker_cores'" in workers.keys["cpus"]
    assert "dask.jobqueue.slurm.cores" in workers.keys["cpus"]
    assert "'partition' in platforms.ini" in workers.keys["partition"]


def test_check_asks_once_per_partition_and_warns_about_a_down_one() -> None:
    asked: list[str | None] = []

    class Fake(BatchSystem):
        def node_limits(self, partition: str | None) -> PartitionLimits | None:
            asked.append(partition)
            return parse_node_limits(OUTPUT, partition)

    warnings: list[str] = []
    long_job = dataclasses.replace(request(), partition="long")
    fit.check(Fake(), [request(), request(), long_job, None], warnings.append)
    assert asked == [None, "long"]
    assert len(warnings) == 1 and "'long' is DOWN" in warnings[0]
    with pytest.raises(RequestFitError, match="n001 with 32 CPUs"):
        fit.check(Fake(), [request(), request(cpus=40)], warnings.append)


def test_worker_sizes_from_platforms_ini_are_checked(tmp_path: Path) -> None:
    """worker_* keys of platforms.ini size the worker request the node check compares."""
    ini = tmp_path / "platforms.ini"
    ini.write_text(SITE_INI + "worker_cores = 64\nworker_memory = 200GB\nworker_queue = wide\n")
    workers = fit.worker_request(load_site("big", ini))
    assert workers is not None
    # dask-jobqueue asks sbatch for --mem=187G (200 GB rounded up to whole GiB)
    assert (workers.cpus, workers.mem_mb, workers.partition) == (64, 187 * 1024, "wide")
    assert "'worker_cores' in platforms.ini [big]" in workers.keys["cpus"]
    assert "'worker_queue' in platforms.ini [big]" in workers.keys["partition"]
