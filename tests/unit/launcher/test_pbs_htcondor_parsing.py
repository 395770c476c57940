"""PBS and HTCondor adaptors: parsing what their commands printed on the test rigs
(tests/unit/launcher/data, captured from tests/cluster/pbs_rig.py and htcondor_rig.py),
the job script headers, and cancellation commands."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from eoshared.batchsystem import PBS, HTCondor, JobSpec, batch_system_class
from eoshared.batchsystem.base import JobFields, JobStatus
from eoshared.batchsystem.htcondor import parse_ads
from eoshared.batchsystem.pbs import LIMITS_SEPARATOR, parse_qstat_jobs, parse_qstat_json
from eoshared.errors import BatchSystemError

DATA = Path(__file__).parent / "data"


def data(name: str) -> str:
    return (DATA / name).read_text()


def test_registered() -> None:
    assert batch_system_class("pbs") is PBS and batch_system_class("htcondor") is HTCondor
    assert PBS.jobqueue_class == "PBSCluster" and HTCondor.jobqueue_class == "HTCondorCluster"


def test_qsub_job_id() -> None:
    assert PBS().parse_job_id("2.eopbs\n") == "2.eopbs"
    assert PBS().parse_job_id("1234.pbs01.example.org\n") == "1234.pbs01.example.org"
    assert PBS().parse_job_id("12[].server\n") == "12[].server"
    with pytest.raises(BatchSystemError, match="qsub printed no job id"):
        PBS().parse_job_id("qsub: Unknown queue")


def test_qstat_states() -> None:
    pbs = PBS()
    held = parse_qstat_json(data("qstat_held.json"))
    assert held is not None and held.state == "H" and pbs.complete("2.eopbs", held).pending
    queued = parse_qstat_json(data("qstat_queued.json"))
    assert queued is not None and pbs.phase(queued.state) == "pending"
    assert queued.reason.startswith("Can Never Run: Insufficient amount of resource: ncpus")
    running = parse_qstat_json(data("qstat_running.json"))
    assert running is not None and running.state == "R" and running.node == "eopbs"
    assert running.reason == "" and running.time_left and pbs.phase("R") == "running"
    assert running.started == "Sat Nov 28 09:52:35 2026" and queued.started == ""
    finished = parse_qstat_json(data("qstat_finished.json"))
    assert finished is not None and finished.state == "F" and finished.exit_code == "3"
    assert pbs.complete("2.eopbs", finished).finished
    # qstat -x of a job the server does not know prints the server header only
    assert parse_qstat_json('{"timestamp": 1, "pbs_server": "eopbs"}') is None
    assert parse_qstat_json("") is None


def test_pbs_header() -> None:
    job = JobSpec(partition="develop", time="1-02:00:00", cpus=4, mem="16G", account="P123")
    lines = PBS().directives(job, "eohpc-jupyter-x", "/run/job.out")
    assert lines == [
        "#PBS -N eohpc-jupyter-x",
        "#PBS -o /run/job.out",
        "#PBS -j oe",
        "#PBS -k oed",
        "#PBS -l select=1:ncpus=4:mem=16gb",
        "#PBS -l walltime=26:00:00",
        "#PBS -q develop",
        "#PBS -A P123",
    ]
    per_cpu = PBS().header(JobSpec(cpus=3, mem_per_cpu="1500M"), "n", "o")
    assert "-l select=1:ncpus=3:mem=4500mb" in per_cpu
    assert PBS().output_name("7.server") == "job.out"


def test_pbs_cancel_commands() -> None:
    calls: list[str] = []

    def runner(command: str, stdin: object = None) -> tuple[int, str, str]:
        calls.append(command)
        return 35, "", "qdel: Job has finished 2.eopbs"

    pbs = PBS(runner)
    pbs.cancel("2.eopbs")  # a finished job is not an error
    pbs.cancel_named("eohpc-dask-1a2b", "eouser")
    assert calls[0] == "qdel 2.eopbs"
    assert shlex.split(calls[1]) == [
        "sh", "-c", 'qselect -N "$1" -u "$2" | xargs -r qdel', "sh", "eohpc-dask-1a2b", "eouser",
    ]  # fmt: skip


def test_condor_submit_job_id() -> None:
    assert HTCondor().parse_job_id("3.0 - 3.0\n") == "3.0"
    with pytest.raises(BatchSystemError, match="condor_submit printed no job id"):
        HTCondor().parse_job_id("ERROR: on Line 3 of submit file")


def test_condor_states() -> None:
    condor = HTCondor()
    idle = parse_ads(data("condor_q_idle.json"))
    assert idle is not None and idle.state == "IDLE" and condor.phase(idle.state) == "pending"
    running = parse_ads(data("condor_q_running.json"))
    assert running is not None and running.state == "RUNNING" and running.node == "eocondor"
    assert condor.phase("RUNNING") == "running"
    assert running.started == "1795857381" and idle.started == ""
    held = parse_ads(data("condor_q_held.json"))
    assert held is not None and held.state == "HELD" and condor.phase("HELD") == "pending"
    assert held.reason == "via condor_hold (by user eouser)"
    done = parse_ads(data("condor_history_exit3.json"))
    assert done is not None and done.state == "COMPLETED" and done.exit_code == "3"
    assert condor.complete("2.0", done).finished
    removed = parse_ads(data("condor_history_removed.json"))
    assert removed is not None and removed.state == "REMOVED" and removed.exit_code == "signal 15"
    assert removed.reason == "via condor_rm (by user eouser)"
    assert parse_ads("") is None and parse_ads("[]") is None


def test_condor_status_falls_back_to_history() -> None:
    def runner(command: str, stdin: object = None) -> tuple[int, str, str]:
        if command.startswith("condor_q "):
            return 0, "", ""
        return 0, data("condor_history_exit3.json"), ""

    status = HTCondor(runner).status("2.0")
    assert status.finished and status.exit_code == "3" and status.node == "eocondor"


def test_condor_submit_description_and_command() -> None:
    job = JobSpec(time="00:30:00", cpus=2, mem="2G", directives=["requirements = HasX"])
    lines = HTCondor().directives(job, "eohpc-batch-x", "/home/u/run/job.out")
    body = [line.removeprefix("#HTCondor ") for line in lines]
    assert body[0] == "executable = /home/u/run/job.sh"
    assert "output = /home/u/run/job.out" in body and "error = /home/u/run/job.out" in body
    assert "batch_name = eohpc-batch-x" in body and "should_transfer_files = NO" in body
    assert "request_cpus = 2" in body and "request_memory = 2048" in body
    assert "allowed_execute_duration = 1800" in body
    hold = "periodic_hold = JobStatus == 2 && AllowedExecuteDuration =!= undefined"
    assert hold in " ".join(body)
    environment = "HTCONDOR_JOB_ID=$(ClusterId).$(ProcId) EOHPC_ARRAY_INDEX=$(ProcId)"
    assert f'environment = "{environment}"' in body
    assert body[-2:] == ["requirements = HasX", "queue"]
    script = "#!/bin/bash\n" + "\n".join(lines) + "\necho hi\n"
    command = HTCondor().submit_command_for(script)
    assert command.startswith("cat > /home/u/run/job.sh && chmod 700 /home/u/run/job.sh && ")
    assert command.endswith("| condor_submit -terse -")


def test_condor_cancel_commands() -> None:
    calls: list[str] = []

    def runner(command: str, stdin: object = None) -> tuple[int, str, str]:
        calls.append(command)
        return 1, "", "Job 3.0 not found"

    condor = HTCondor(runner)
    condor.cancel("3.0")
    condor.cancel_named("eohpc-dask-1a2b", "eouser")
    assert calls[0] == "condor_rm 3.0"
    assert shlex.split(calls[1]) == [
        "condor_rm", "-constraint", 'JobBatchName == "eohpc-dask-1a2b" && Owner == "eouser"',
    ]  # fmt: skip


def test_pbs_held_and_never_run_jobs_are_stuck() -> None:
    pbs = PBS()
    held = pbs.complete("2.eopbs", parse_qstat_json(data("qstat_held.json")))  # type: ignore[arg-type]
    assert held.reason == "held (user hold)" and pbs.stuck(held)
    assert "qrls" in pbs.stuck_fix(held)
    queued = pbs.complete("3.eopbs", parse_qstat_json(data("qstat_queued.json")))  # type: ignore[arg-type]
    assert pbs.reason_code(queued.reason) == "Can Never Run" and pbs.stuck(queued)
    assert "lower the request" in pbs.stuck_fix(queued)
    waiting = JobStatus("4.eopbs", "Q", "pending", "Not Running: Insufficient amount of resource")
    assert not pbs.stuck(waiting)


def test_pbs_failure_is_a_nonzero_exit_status() -> None:
    pbs = PBS()
    finished = pbs.complete("2.eopbs", parse_qstat_json(data("qstat_finished.json")))  # type: ignore[arg-type]
    assert pbs.failed(finished) and "exited non-zero" in pbs.status_fix(finished)
    killed = JobStatus("5.eopbs", "F", "finished", exit_code="271")
    assert pbs.failed(killed) and "killed by signal 15" in pbs.status_fix(killed)
    assert "JOB_EXEC_FAIL1" in pbs.status_fix(JobStatus("6.eopbs", "F", exit_code="-1"))
    ok = JobStatus("7.eopbs", "F", "finished", exit_code="0")
    assert not pbs.failed(ok) and pbs.status_fix(ok) == ""


def test_pbs_named_jobs_leave_out_finished_ones() -> None:
    running = json.loads(data("qstat_running.json"))
    finished = json.loads(data("qstat_finished.json"))
    both = {"Jobs": {"8.eopbs": next(iter(running["Jobs"].values())),
                     "9.eopbs": next(iter(finished["Jobs"].values()))}}  # fmt: skip
    calls: list[str] = []

    def runner(command: str, stdin: object = None) -> tuple[int, str, str]:
        calls.append(command)
        return 0, json.dumps(both), ""

    jobs = PBS(runner).named_jobs("eohpc-batch-1-workers", "eouser")
    assert [(j.job_id, j.state) for j in jobs or []] == [("8.eopbs", "R")]
    assert "qselect -N eohpc-batch-1-workers -u eouser" in calls[0]
    assert PBS(lambda c, s=None: (1, "", "")).named_jobs("x", "u") is None


def test_pbs_named_jobs_ask_qstat_once_per_job() -> None:
    """Given several ids, OpenPBS's ``qstat -f -F json`` prints only the first job: the
    worker jobs are asked about one by one, and each document is read."""
    running = json.loads(data("qstat_running.json"))
    job = next(iter(running["Jobs"].values()))
    docs = "\n".join(json.dumps({"Jobs": {i: job}}, indent=4) for i in ("8.eopbs", "9.eopbs"))
    calls: list[str] = []

    def runner(command: str, stdin: object = None) -> tuple[int, str, str]:
        calls.append(command)
        return 0, docs, ""

    jobs = PBS(runner).named_jobs("eohpc-batch-1-workers", "eouser")
    assert [j.job_id for j in jobs or []] == ["8.eopbs", "9.eopbs"]
    assert 'for id in $ids; do qstat -f -F json -x "$id"; done' in calls[0]
    assert [i for i, _ in parse_qstat_jobs(docs + "\n{broken")] == ["8.eopbs", "9.eopbs"]


def test_pbs_queue_that_does_not_exist_is_named_with_those_there_are() -> None:
    queues = {"Queue": {"workq": {"enabled": "True", "started": "True"},
                        "long": {"enabled": "False", "started": "True"}}}  # fmt: skip
    out = f"{LIMITS_SEPARATOR}\n{json.dumps(queues)}\n{LIMITS_SEPARATOR}\n"
    pbs = PBS(lambda c, s=None: (0, out, ""))
    missing = pbs.node_limits("oldq")
    assert missing is not None and not missing.exists and missing.partitions == ("long", "workq")
    assert missing.kind == "queue"
    assert pbs.node_limits("workq").state == ""  # type: ignore[union-attr]
    assert pbs.node_limits("long").state == "DISABLED"  # type: ignore[union-attr]
    assert pbs.node_limits(None) is None  # no server document: no default queue known
    assert PBS(lambda c, s=None: (1, "", "")).node_limits("workq") is None


def test_condor_held_and_removed_jobs() -> None:
    condor = HTCondor()
    held = condor.complete("2.0", parse_ads(data("condor_q_held.json")))  # type: ignore[arg-type]
    assert condor.stuck(held) and "condor_release" in condor.stuck_fix(held)
    idle = condor.complete("3.0", parse_ads(data("condor_q_idle.json")))  # type: ignore[arg-type]
    assert not condor.stuck(idle)
    removed = condor.complete("4.0", parse_ads(data("condor_history_removed.json")))  # type: ignore[arg-type]
    assert condor.failed(removed) and "removed" in condor.status_fix(removed)
    exit3 = condor.complete("5.0", parse_ads(data("condor_history_exit3.json")))  # type: ignore[arg-type]
    assert condor.failed(exit3) and "exited non-zero" in condor.status_fix(exit3)
    ok = JobStatus("6.0", "COMPLETED", "finished", exit_code="0")
    assert not condor.failed(ok) and condor.status_fix(ok) == ""


def test_condor_named_jobs() -> None:
    ads = json.loads(data("condor_q_held.json"))
    ads[0].update(ClusterId=12, ProcId=0)
    calls: list[str] = []

    def runner(command: str, stdin: object = None) -> tuple[int, str, str]:
        calls.append(command)
        return 0, json.dumps(ads), ""

    jobs = HTCondor(runner).named_jobs("eohpc-batch-1.0-workers", "eouser")
    assert [(j.job_id, j.state) for j in jobs or []] == [("12.0", "HELD")]
    argv = shlex.split(calls[0])
    assert argv[:3] == [
        "condor_q", "-constraint", 'JobBatchName == "eohpc-batch-1.0-workers" && Owner == "eouser"',
    ]  # fmt: skip
    assert HTCondor(lambda c, s=None: (0, "", "")).named_jobs("x", "u") == []


def test_worker_jobs_are_named_after_the_cluster() -> None:
    from eoshared.scheduler.workers import name_options

    assert name_options(PBS(), "eohpc-dask-1") == {"job_name": "eohpc-dask-1"}
    condor = name_options(HTCondor(), "eohpc-dask-1")
    # dask-jobqueue's HTCondor jobs take their batch_name from each worker's name otherwise
    assert condor["job_name"] == "eohpc-dask-1"
    assert condor["job_extra_directives"]["batch_name"] == "eohpc-dask-1"


def test_pbs_stopped_queue_and_every_node_offline_do_not_clear() -> None:
    nodes = {"nodes": {"eopbs": {"state": "offline"}, "n2": {"state": "down,offline"}}}

    def runner(command: str, stdin: object = None) -> tuple[int, str, str]:
        return (0, json.dumps(nodes), "") if command.startswith("pbsnodes") else (1, "", "")

    pbs = PBS(runner)
    stopped = pbs.complete("1.eopbs", JobFields("Q", "Not Running: Queue not started."))
    assert pbs.stuck(stopped) and "started = false" in pbs.stuck_fix(stopped)
    waiting = pbs.complete(
        "2.eopbs", JobFields("Q", "Not Running: Not enough free nodes available")
    )
    assert waiting.reason.endswith("every node is offline or down: eopbs offline, n2 down,offline")
    assert pbs.stuck(waiting) and "pbsnodes -l" in pbs.stuck_fix(waiting)
    nodes["nodes"]["n2"]["state"] = "free"
    busy = pbs.complete("3.eopbs", JobFields("Q", "Not Running: Not enough free nodes available"))
    assert not pbs.stuck(busy) and "offline" not in busy.reason
    never = pbs.complete("4.eopbs", JobFields("Q", "Can Never Run: Insufficient amount of x"))
    assert pbs.stuck(never) and "lower the request" in pbs.stuck_fix(never)


ANALYSIS = """129.000:  Run analysis summary ignoring user priority.  Of {total} machines,
      {rejected} are rejected by your job's requirements
      0 are able to run your job
"""


@pytest.mark.parametrize(
    ("total", "rejected", "stuck"), [(1, 1, True), (2, 1, False), (0, 0, False)]
)
def test_condor_idle_job_no_slot_matches(total: int, rejected: int, stuck: bool) -> None:
    calls: list[str] = []

    def runner(command: str, stdin: object = None) -> tuple[int, str, str]:
        calls.append(command)
        return 0, ANALYSIS.format(total=total, rejected=rejected), ""

    condor = HTCondor(runner)
    status = condor.complete("129.0", JobFields("IDLE", "no match found "))
    assert condor.stuck(status) is stuck
    if stuck:
        assert status.reason == (
            "no match found: Of 1 machines, 1 are rejected by your job's requirements; "
            "no slot matches the job's requirements"
        )
    condor.complete("129.0", JobFields("IDLE", "no match found "))
    assert calls == ["condor_q 129.0 -better-analyze"]  # analysed again only after a while
    assert not condor.stuck(condor.complete("130.0", JobFields("IDLE", "")))


def test_pbs_status_gives_the_id_qstat_gives() -> None:
    """dask-jobqueue keeps "169" of a worker job "169.eopbs"; its status says "169.eopbs"."""
    finished = json.loads(data("qstat_finished.json"))
    out = json.dumps({"Jobs": {"169.eopbs": next(iter(finished["Jobs"].values()))}})
    pbs = PBS(lambda c, s=None: (0, out, ""))
    assert pbs.status("169").job_id == "169.eopbs"
    assert pbs.status("169.eopbs").job_id == "169.eopbs"
    assert PBS(lambda c, s=None: (0, "", "")).status("169").state == "UNKNOWN"
