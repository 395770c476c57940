"""Node and slot sizes of PBS (pbsnodes, qstat -Q, qstat -B) and HTCondor (condor_status),
parsed from what the commands printed on the test rigs (tests/unit/launcher/data), and the
requests they refuse before anything is submitted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eoshared.batchsystem import PBS, HTCondor, NodeSize
from eoshared.batchsystem.htcondor import parse_slots
from eoshared.batchsystem.pbs import (
    LIMITS_COMMAND,
    LIMITS_SEPARATOR,
    parse_pbs_limits,
    size_mib,
)
from eoshared.errors import RequestFitError
from launcher.config import load_site
from launcher.sites import fit

DATA = Path(__file__).parent / "data"
PLATFORMS = Path(__file__).resolve().parents[3] / "config" / "platforms"
KEYS = {k: f"<{k}>" for k in ("cpus", "mem", "time", "partition")}


def data(name: str) -> str:
    return (DATA / name).read_text()


def request(cpus: int | None = 1, mem: int | None = None, time: int | None = 60) -> fit.Request:
    return fit.Request("the job", cpus, mem, time, None, KEYS)


def pbs_output(nodes: str, queues: str, server: str = "") -> str:
    """What LIMITS_COMMAND prints."""
    return f"{nodes}\n{LIMITS_SEPARATOR}\n{queues}\n{LIMITS_SEPARATOR}\n{server}"


#: The PBS rig with a second queue (resources_max and resources_default set), as
#: `pbsnodes -a -F json; qstat -Q -f -F json` printed them; then the server.
TWO_QUEUES = data("pbs_limits_two_queues.txt")
NODES, _, QUEUES = TWO_QUEUES.partition("}\n{")
NODES, QUEUES = NODES + "}", "{" + QUEUES
RIG = pbs_output(data("pbsnodes.json"), data("qstat_queues.json"), data("qstat_server.json"))


@pytest.mark.parametrize(
    ("text", "mib"),
    [("16gb", 16384), ("2048mb", 2048), ("1024kb", 1), ("1tb", 1048576), ("1048576", 1),
     ("1mw", 8), ("0mb", 0), ("lots", None), (None, None)],
)  # fmt: skip
def test_pbs_sizes(text: str | None, mib: int | None) -> None:
    assert size_mib(text) == mib


def test_pbs_rig_queue_and_its_node() -> None:
    limits = parse_pbs_limits(RIG, "workq")
    assert limits is not None and limits.exists and limits.kind == "queue"
    assert limits.nodes == (NodeSize("eopbs", 8, 16384),)
    assert limits.partitions == ("workq",)
    assert (limits.max_cpus_per_node, limits.max_mem_per_node_mb) == (None, None)
    assert limits.max_time_seconds is None and limits.default_mem_mb is None


def test_pbs_default_queue_is_the_servers() -> None:
    limits = parse_pbs_limits(RIG, None)
    assert limits is not None and limits.partition == "workq"
    assert limits.nodes == (NodeSize("eopbs", 8, 16384),)
    # without the server's document the default queue is not known
    assert parse_pbs_limits(pbs_output(NODES, QUEUES), None) is None


def test_pbs_queue_limits_and_default_memory() -> None:
    limits = parse_pbs_limits(pbs_output(NODES, QUEUES), "eohpcfitq")
    assert limits is not None and limits.partitions == ("eohpcfitq", "workq")
    assert limits.max_cpus_per_node == 4 and limits.max_mem_per_node_mb == 8192
    assert limits.max_time_seconds == 2 * 3600
    assert limits.limit_names == (
        "resources_max.ncpus", "resources_max.mem", "resources_max.walltime"
    )  # fmt: skip
    assert limits.default_mem_mb == 2048
    message = fit.misfit(request(6), limits)
    assert message is not None and "\n" not in message
    assert "6 CPUs" in message and "the largest node of queue 'eohpcfitq'" in message
    assert "eopbs with 8 CPUs and 16384 MiB" in message
    assert "queue limits resources_max.ncpus=4, resources_max.mem=8192 MiB" in message
    assert "<cpus>" in message and "<mem>" not in message
    message = fit.misfit(request(time=3 * 3600), limits)
    assert message is not None and "2:00:00 (resources_max.walltime)" in message
    assert fit.misfit(request(4, 8192), limits) is None


def test_pbs_queue_default_memory_counts_for_a_request_without_one() -> None:
    queues = json.loads(QUEUES)
    queues["Queue"]["eohpcfitq"]["resources_default"]["mem"] = "12gb"
    limits = parse_pbs_limits(pbs_output(NODES, json.dumps(queues)), "eohpcfitq")
    message = fit.misfit(request(2), limits)
    assert message is not None
    assert "12288 MiB (the queue default, resources_default.mem)" in message
    assert "<mem>" in message
    assert fit.misfit(request(2, 1024), limits) is None


def test_pbs_server_limit_smaller_than_the_queues_wins() -> None:
    server = json.loads(data("qstat_server.json"))
    next(iter(server["Server"].values()))["resources_max"] = {"ncpus": 2}
    limits = parse_pbs_limits(pbs_output(NODES, QUEUES, json.dumps(server)), "eohpcfitq")
    assert limits is not None and limits.max_cpus_per_node == 2
    message = fit.misfit(request(3), limits)
    assert message is not None and "server resources_max.ncpus=2" in message


def test_pbs_nodes_of_a_queue_are_those_associated_with_it() -> None:
    nodes = json.loads(data("pbsnodes.json"))
    node = nodes["nodes"]["eopbs"]
    nodes["nodes"]["big"] = {**node, "queue": "bigq",
                             "resources_available": {"ncpus": 64, "mem": "512gb"}}  # fmt: skip
    out = pbs_output(json.dumps(nodes), QUEUES, data("qstat_server.json"))
    assert parse_pbs_limits(out, "workq").nodes == (NodeSize("eopbs", 8, 16384),)  # type: ignore[union-attr]
    queues = json.loads(QUEUES)
    queues["Queue"]["bigq"] = {"enabled": "True", "started": "True"}
    out = pbs_output(json.dumps(nodes), json.dumps(queues))
    assert parse_pbs_limits(out, "bigq").nodes == (NodeSize("big", 64, 524288),)  # type: ignore[union-attr]


def test_pbs_without_nodes_checks_the_queue_only() -> None:
    limits = parse_pbs_limits(pbs_output("", data("qstat_queues.json")), "workq")
    assert limits is not None and limits.nodes == ()
    assert fit.misfit(request(640), limits) is None
    assert not parse_pbs_limits(pbs_output("", data("qstat_queues.json")), "oldq").exists  # type: ignore[union-attr]


@pytest.mark.parametrize("output", ["", "garbage", f"{LIMITS_SEPARATOR}\nqstat: error"])
def test_pbs_unreadable_queues_are_unknown(output: str) -> None:
    assert parse_pbs_limits(output, "workq") is None


def test_pbs_node_limits_is_one_command() -> None:
    commands: list[str] = []

    def run(command: str, stdin: str | bytes | None = None) -> tuple[int, str, str]:
        commands.append(command)
        return 0, RIG, ""

    limits = PBS(run).node_limits("workq")
    assert limits is not None and limits.nodes
    assert commands == [LIMITS_COMMAND]
    assert "pbsnodes -a -F json" in commands[0] and "qstat -Q -f -F json" in commands[0]
    message = fit.misfit(request(64), limits)
    assert message is not None
    assert "64 CPUs, but the largest node of queue 'workq' is eopbs with 8 CPUs" in message


def test_condor_rig_pool_has_one_partitionable_slot() -> None:
    for name in ("condor_status.json", "condor_status_slots.json"):
        limits = parse_slots(data(name))
        assert limits is not None and limits.exists
        assert limits.nodes == (NodeSize("slot1@eocondor", 8, 16384),)
        assert limits.where == "the pool"


def test_condor_dynamic_slots_are_part_of_their_partitionable_one() -> None:
    ads = json.loads(data("condor_status_slots.json"))
    # a job running in the slot: the partitionable slot keeps its totals
    ads[0].update(Cpus=6, Memory=14336)
    dynamic = {"Name": "slot1_1@eocondor", "SlotType": "Dynamic", "PartitionableSlot": False}
    ads.append({**ads[0], **dynamic, "TotalSlotCpus": 2, "TotalSlotMemory": 2048})
    limits = parse_slots(json.dumps(ads))
    assert limits is not None and limits.nodes == (NodeSize("slot1@eocondor", 8, 16384),)


def test_condor_static_slots_each_count() -> None:
    machine = {"Machine": "n1", "SlotType": "Static", "TotalCpus": 8.0, "TotalMemory": 16384}
    size = {"TotalSlotCpus": 2, "TotalSlotMemory": 4096}
    ads = [{"Name": f"slot{i}@n1", **machine, **size} for i in (1, 2)]
    limits = parse_slots(json.dumps(ads))
    message = fit.misfit(request(4), limits)
    assert message is not None
    assert "the largest slot of the pool is slot1@n1 with 2 CPUs and 4096 MiB" in message


def test_condor_too_large_requests_name_the_slot_and_the_key() -> None:
    limits = parse_slots(data("condor_status_slots.json"))
    message = fit.misfit(request(16), limits)
    assert message is not None and "\n" not in message
    assert "16 CPUs, but the largest slot of the pool is slot1@eocondor with 8 CPUs and " \
        "16384 MiB. Lower <cpus>." in message  # fmt: skip
    message = fit.misfit(request(1, 32768), limits)
    assert message is not None and "32768 MiB" in message and "<mem>" in message
    assert fit.misfit(request(8, 16384), limits) is None


def test_condor_pool_without_slots_refuses_nothing() -> None:
    empty = parse_slots("")
    assert empty is not None and empty.nodes == ()
    assert fit.misfit(request(1000, 10**9), empty) is None
    assert parse_slots("not json") is None
    condor = HTCondor(lambda c, s=None: (0, "", ""))
    fit.check(condor, [request(1000)], lambda text: None)  # no error


def test_condor_node_limits_is_one_command() -> None:
    commands: list[str] = []

    def run(command: str, stdin: str | bytes | None = None) -> tuple[int, str, str]:
        commands.append(command)
        return 0, data("condor_status_slots.json"), ""

    with pytest.raises(RequestFitError, match="largest slot of the pool"):
        fit.check(HTCondor(run), [request(), request(cpus=9)], lambda text: None)
    assert len(commands) == 1 and commands[0].startswith("condor_status -json -attributes ")
    assert HTCondor(lambda c, s=None: (1, "", "error")).node_limits(None) is None


SITE_INI = """\
[{uid}]
platform = {platform}
host = login
cpus = 4
mem = 8G
"""


@pytest.mark.parametrize(
    ("platform", "section", "mem"),
    [("generic-pbs", "pbs", 16384), ("generic-htcondor", "htcondor", 16384)],
)
def test_worker_request_reads_the_batch_systems_section(
    tmp_path: Path, platform: str, section: str, mem: int
) -> None:
    ini = tmp_path / "platforms.ini"
    ini.write_text(SITE_INI.format(uid="site", platform=platform) + "worker_cores = 64\n")
    workers = fit.worker_request(load_site("site", ini))
    assert workers is not None and (workers.cpus, workers.mem_mb) == (64, mem)
    assert f"dask.jobqueue.{section}.cores" in workers.keys["cpus"]
    assert "'worker_cores' in platforms.ini [site]" in workers.keys["cpus"]
    assert f"dask.jobqueue.{section}.memory" in workers.keys["mem"]


def test_htcondor_worker_memory_is_rounded_down_to_mib() -> None:
    # dask-jobqueue: RequestMemory = floor(memory / 1048576)
    assert fit.jobqueue_mem_mb("1.5GB", "htcondor") == 1430
    # dask-jobqueue: mem=<n>MB rounded up, whole GB from 10 GiB on
    assert fit.jobqueue_mem_mb("1.5GB", "pbs") == 1431
    assert fit.jobqueue_mem_mb("15000000000", "pbs") == 14 * 1024
    assert fit.jobqueue_mem_mb("1.5GB") == 2048  # SLURM: whole GiB


def test_pbs_worker_resource_spec_is_what_the_workers_ask_for(tmp_path: Path) -> None:
    import yaml

    profile = yaml.safe_load((PLATFORMS / "generic-pbs.yaml").read_text())
    profile["dask"]["jobqueue"]["pbs"]["resource-spec"] = "select=1:ncpus=24:mem=96gb"
    (tmp_path / "specpbs.yaml").write_text(yaml.safe_dump(profile))
    ini = tmp_path / "platforms.ini"
    ini.write_text(SITE_INI.format(uid="site", platform="specpbs"))
    workers = fit.worker_request(load_site("site", ini))
    assert workers is not None and (workers.cpus, workers.mem_mb) == (24, 96 * 1024)
    assert "dask.jobqueue.pbs.resource-spec" in workers.keys["cpus"]
    assert "dask.jobqueue.pbs.resource-spec" in workers.keys["mem"]
