"""Chains of jobs (a pipeline's steps): one job per step with dependencies (SLURM, PBS), and
HTCondor's DAG run by DAGMan: the DAG's files, its submission, and each step's status read from
what condor_q and condor_history printed on the HTCondor rig (tests/unit/launcher/data,
condor_dag_*.txt: the output of ``dag_query``, captured from tests/cluster/htcondor_rig.py)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest

from eoshared.batchsystem import ChainStep, HTCondor, JobSpec, Slurm, local_runner
from eoshared.batchsystem.base import FINISHED, PENDING, RUNNING, UNKNOWN
from eoshared.batchsystem.htcondor import (
    DAG_CONFIG,
    DAG_FILE,
    DAG_SEPARATOR,
    dag_query,
    dag_text,
    parse_dag_jobs,
)
from eoshared.errors import BatchSystemError
from launcher.config import load_site
from launcher.pipeline.run import ArrayPlan, step_script, watch
from launcher.pipeline.spec import parse

DATA = Path(__file__).parent / "data"
STEPS = ("stage_in", "process", "stage_out")


def data(name: str) -> str:
    return (DATA / name).read_text()


def answering(output: str, calls: list[str] | None = None):  # type: ignore[no-untyped-def]
    """A runner that answers every command with ``output`` (and records the commands)."""

    def run(command: str, stdin: object = None) -> tuple[int, str, str]:
        if calls is not None:
            calls.append(command)
        return 0, output, ""

    return run


def chain_of(dagman: str) -> dict[str, str]:
    return dict.fromkeys(STEPS, dagman)


# ------------------------------------------------------------------ one job per step (base)


def test_one_job_per_step_each_after_the_one_before() -> None:
    submitted: list[str] = []

    def runner(command: str, stdin: object = None) -> tuple[int, str, str]:
        submitted.append(str(stdin))
        return 0, f"{40 + len(submitted)}\n", ""

    slurm = Slurm(runner)
    steps = [ChainStep(name, lambda options, n=name: f"{n} {options}") for name in STEPS]
    jobs = slurm.submit_chain(steps, "/r", "eohpc-pipe-x")
    assert jobs == {"stage_in": "41", "process": "42", "stage_out": "43"}
    assert submitted[0] == "stage_in []"
    assert "--dependency=afterok:41" in submitted[1] and "afterok:42" in submitted[2]
    assert slurm.chain_description(jobs) == (
        "stage_in job 41, process job 42 after 41, stage_out job 43 after 42"
    )


def test_a_failed_submission_cancels_the_steps_submitted_before() -> None:
    calls: list[str] = []

    def runner(command: str, stdin: object = None) -> tuple[int, str, str]:
        calls.append(command)
        if command.startswith("sbatch") and len([c for c in calls if "sbatch" in c]) == 2:
            return 1, "", "sbatch: error: invalid partition"
        return 0, "41\n", ""

    steps = [ChainStep(name, lambda options: "#!/bin/sh\n") for name in STEPS]
    with pytest.raises(BatchSystemError, match="invalid partition"):
        Slurm(runner).submit_chain(steps, "/r", "eohpc-pipe-x")
    assert calls[-1] == "scancel 41"


def test_after_a_failed_step_only_the_later_steps_still_queued_are_cancelled() -> None:
    calls: list[str] = []

    def runner(command: str, stdin: object = None) -> tuple[int, str, str]:
        calls.append(command)
        if command.startswith("squeue") and "43" in command:
            return 0, "PENDING|Dependency|||N/A\n", ""
        if command.startswith("squeue"):
            return 0, "", ""
        if command.startswith("sacct"):
            return 0, "CANCELLED by 0|0:0||\n", ""
        return 0, "", ""

    jobs = {"stage_in": "41", "process": "42", "stage_out": "43"}
    Slurm(runner).cancel_chain(jobs, after="stage_in")
    assert [c for c in calls if c.startswith("scancel")] == ["scancel 43"]  # 42 ended
    calls.clear()
    Slurm(runner).cancel_chain({"stage_in": "41", "process": "42"})
    assert calls == ["scancel 42", "scancel 41"]


# ------------------------------------------------------------------ HTCondor: the DAG's files


def test_the_dag_is_a_line_of_nodes_with_its_own_dagman_configuration() -> None:
    assert dag_text(list(STEPS), "eohpc-pipe-x").splitlines()[1:] == [
        f"CONFIG {DAG_CONFIG}",
        "JOB stage_in stage_in.sub",
        "JOB process process.sub",
        "JOB stage_out stage_out.sub",
        "PARENT stage_in CHILD process",
        "PARENT process CHILD stage_out",
    ]
    assert "RETRY" not in dag_text(list(STEPS), "x")
    assert dag_text(["process"], "x").splitlines()[2:] == ["JOB process process.sub"]


def test_an_array_is_queue_n_with_max_materialize_last_in_its_description() -> None:
    condor = HTCondor()
    assert condor.array_directive(6, 2) == ["max_materialize = 2", "queue 6"]
    assert condor.array_directive(1) == ["queue 1"]
    job = JobSpec(directives=[*condor.array_directive(6, 2), "requirements = HasX"])
    lines = condor.directives(job, "eohpc-pipe-x-process", "/r/job-process-$(ProcId).out")
    assert lines[-3:] == [
        "#HTCondor max_materialize = 2",
        "#HTCondor requirements = HasX",
        "#HTCondor queue 6",
    ]
    assert "#HTCondor queue" not in lines
    condor.check_chains()  # HTCondor runs pipelines


def test_htcondor_step_scripts_index_tasks_by_proc_id(tmp_path: Path) -> None:
    ini = tmp_path / "platforms.ini"
    ini.write_text("[condor]\nplatform = sandbox-htcondor\nhost = h\nuser = u\n")
    site = load_site("condor", ini)
    remote = SimpleNamespace(config=site, batch=HTCondor())
    pipe = parse(
        {
            "name": "ndvi",
            "scenes": ["a", "b"],
            "stage_in": {"from": "src:in"},
            "process": {"command": "t {scene}", "parallel": 3},
            "remotes": {"src": {"type": "alias", "remote": "/data"}},
        }
    )
    process = step_script(remote, pipe, "/r", "process", [], ArrayPlan(6))  # type: ignore[arg-type]
    assert process.splitlines()[1:3] == [
        "#HTCondor executable = /r/job.sh",
        "#HTCondor initialdir = /r",
    ]
    assert "#HTCondor output = /r/job-process-$(ProcId).out" in process
    assert "#HTCondor max_materialize = 3" in process
    assert [line for line in process.splitlines() if line.startswith("#HTCondor queue")] == [
        "#HTCondor queue 6"
    ]
    assert '--index "$EOHPC_ARRAY_INDEX" --task "${HTCONDOR_JOB_ID}"' in process


def test_submit_chain_writes_the_dag_and_submits_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command submit_chain runs, run by a shell with a condor_submit_dag that answers as
    HTCondor 23.9 did on the rig."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "condor_submit_dag"
    fake.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/args\ncat {DATA}/condor_submit_dag.txt\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    run_dir = tmp_path / "run it"
    run_dir.mkdir()

    def script(step: str):  # type: ignore[no-untyped-def]
        def render(options: list[str]) -> str:
            assert options == []  # DAGMan orders the nodes: no dependency directives
            queue = "queue 2" if step == "process" else "queue"
            return (
                f"#!/bin/bash\n#HTCondor executable = {run_dir}/job.sh\n"
                f"#HTCondor batch_name = eohpc-pipe-x-{step}\n"
                f"#HTCondor output = {run_dir}/job-{step}.out\n#HTCondor {queue}\n"
                f"echo 'it''s {step}'\n"
            )

        return render

    condor = HTCondor(local_runner)
    jobs = condor.submit_chain(
        [ChainStep(s, script(s)) for s in STEPS], str(run_dir), "eohpc-pipe-x"
    )
    assert jobs == chain_of("89.0")
    assert (tmp_path / "args").read_text().split() == [
        "-batch-name", "eohpc-pipe-x", DAG_FILE,
    ]  # fmt: skip
    assert (run_dir / DAG_FILE).read_text() == dag_text(list(STEPS), "eohpc-pipe-x")
    assert "DAGMAN_USE_DIRECT_SUBMIT = False" in (run_dir / DAG_CONFIG).read_text()
    process = (run_dir / "process.sub").read_text().splitlines()
    assert process == [
        f"executable = {run_dir}/job-process.sh",
        f"output = {run_dir}/job-process.out",
        "queue 2",
    ]  # the node jobs take the DAG's batch name
    executable = run_dir / "job-process.sh"
    assert "echo 'it''s process'" in executable.read_text()
    assert stat.S_IMODE(executable.stat().st_mode) == 0o700
    assert stat.S_IMODE((run_dir / DAG_FILE).stat().st_mode) == 0o600
    assert condor.chain_description(jobs) == (
        "DAGMan job 89.0 runs the DAG pipeline.dag (stage_in -> process -> stage_out)"
    )


def test_a_rejected_dag_says_why() -> None:
    def runner(command: str, stdin: object = None) -> tuple[int, str, str]:
        return 1, "", "ERROR: condor_submit_dag: no such file"

    with pytest.raises(BatchSystemError, match="condor_submit_dag rejected the DAG /r/pipeline"):
        HTCondor(runner).submit_chain([ChainStep("process", lambda o: "")], "/r", "x")


# ------------------------------------------------------------------ HTCondor: each step's state


def test_the_query_asks_for_the_dagman_job_and_its_nodes_in_one_command() -> None:
    command = dag_query("89")
    assert command.startswith("condor_q -constraint 'ClusterId == 89 || DAGManJobId == 89'")
    assert f"echo {DAG_SEPARATOR}; condor_history -constraint" in command
    with pytest.raises(BatchSystemError, match="not an HTCondor job id"):
        HTCondor(answering("")).chain_statuses(chain_of("89.0; rm -rf ~"))


def test_a_dag_that_succeeded() -> None:
    found = parse_dag_jobs(data("condor_dag_done.txt"), "89")
    assert found is not None and found.dagman is not None
    assert found.dagman["DAG_Status"] == 0 and sorted(found.nodes) == sorted(STEPS)
    assert len(found.nodes["process"]) == 6
    condor = HTCondor(answering(data("condor_dag_done.txt")))
    statuses = condor.chain_statuses(chain_of("89.0"))
    assert {s: (st.job_id, st.state, st.exit_code) for s, st in statuses.items()} == {
        "stage_in": ("90.0", "COMPLETED", "0"),
        "process": ("91", "COMPLETED", "0"),
        "stage_out": ("92.0", "COMPLETED", "0"),
    }
    assert all(condor.succeeded(status) for status in statuses.values())


def test_a_failed_stage_in_and_the_nodes_dagman_never_submitted() -> None:
    condor = HTCondor(answering(data("condor_dag_stage_in_failed.txt")))
    statuses = condor.chain_statuses(chain_of("93.0"))
    assert (statuses["stage_in"].job_id, statuses["stage_in"].exit_code) == ("94.0", "3")
    assert condor.failed(statuses["stage_in"])
    for step in ("process", "stage_out"):
        status = statuses[step]
        assert status.state == "NOT_RUN" and status.finished and condor.failed(status)
        assert status.reason == "DAGMan job 93.0 ended (a node failed) without submitting it"
        assert "a step before it failed" in condor.status_fix(status)


def test_a_task_that_failed_names_the_array_not_the_tasks_dagman_removed() -> None:
    condor = HTCondor(answering(data("condor_dag_task_failed.txt")))
    statuses = condor.chain_statuses(chain_of("84.0"))
    process = statuses["process"]
    assert (process.job_id, process.state, process.exit_code) == ("86", "COMPLETED", "3")
    assert condor.failed(process) and statuses["stage_out"].state == "NOT_RUN"


def test_a_removed_dag() -> None:
    condor = HTCondor(answering(data("condor_dag_removed.txt")))
    statuses = condor.chain_statuses(chain_of("95.0"))
    assert statuses["stage_in"].state == "COMPLETED" and condor.succeeded(statuses["stage_in"])
    assert statuses["process"].state == "REMOVED" and "DAGManJobId =?= 95" in (
        statuses["process"].reason
    )
    assert statuses["stage_out"].reason.startswith("DAGMan job 95.0 ended (the DAG was removed)")


def test_an_array_running_at_most_two_tasks_at_once() -> None:
    condor = HTCondor(answering(data("condor_dag_array_running.txt")))
    statuses = condor.chain_statuses(chain_of("98.0"))
    assert statuses["stage_in"].state == "COMPLETED"
    process = statuses["process"]
    assert (process.job_id, process.state, process.phase) == ("100", "RUNNING", RUNNING)
    assert process.reason == "4 of 6 tasks ended, 2 running" and process.node == "eocondor"
    stage_out = statuses["stage_out"]
    assert (stage_out.job_id, stage_out.state, stage_out.phase) == ("98.0", "WAITING", PENDING)
    assert stage_out.reason == (
        "DAGMan job 98.0 submits it once process has succeeded; 1 of 3 nodes done"
    )


def ad(cluster: int, proc: int, status: int, **more: object) -> str:
    fields = {"ClusterId": cluster, "ProcId": proc, "JobStatus": status, **more}
    return "{" + ", ".join(f'"{k}": {v!r}'.replace("'", '"') for k, v in fields.items()) + "}"


def test_between_two_tasks_of_an_array_it_is_still_running_while_dagman_runs() -> None:
    dagman = ad(98, 0, 2, DAG_NodesTotal=3, DAG_NodesDone=1)
    task = ad(100, 0, 4, DAGManJobId=98, DAGNodeName="process", TotalSubmitProcs=6, ExitCode=0)
    output = f"[{dagman}]\n{DAG_SEPARATOR}\n[{task}]\n"
    process = HTCondor(answering(output)).chain_statuses({"process": "98.0"})["process"]
    assert (process.state, process.phase, process.reason) == (
        "IDLE", PENDING, "1 of 6 tasks ended, 0 running",
    )  # fmt: skip
    # Once DAGMan has ended, the tasks it never queued did not run.
    output = f"{DAG_SEPARATOR}\n[{ad(98, 0, 4, DAG_Status=4)}, {task}]\n"
    process = HTCondor(answering(output)).chain_statuses({"process": "98.0"})["process"]
    assert (process.state, process.phase) == ("REMOVED", FINISHED)
    assert process.reason == "5 of 6 tasks never ran: DAGMan ended"


def test_before_dagman_submits_anything_and_when_nothing_knows_the_dag() -> None:
    output = f"[{ad(77, 0, 1)}]\n{DAG_SEPARATOR}\n"
    statuses = HTCondor(answering(output)).chain_statuses(chain_of("77.0"))
    assert statuses["stage_in"].reason == "DAGMan job 77.0 has not submitted it yet"
    assert all(s.state == "WAITING" and s.pending for s in statuses.values())
    held = f"[{ad(77, 0, 5, HoldReason='via condor_hold')}]\n{DAG_SEPARATOR}\n"
    statuses = HTCondor(answering(held)).chain_statuses(chain_of("77.0"))
    assert statuses["process"].reason == "DAGMan job 77.0 is held: via condor_hold"
    statuses = HTCondor(answering(f"\n{DAG_SEPARATOR}\n")).chain_statuses(chain_of("77.0"))
    assert all(s.state == UNKNOWN and s.finished for s in statuses.values())


def test_a_query_that_fails_is_an_error_not_a_state() -> None:
    def runner(command: str, stdin: object = None) -> tuple[int, str, str]:
        return 1, "", "Failed to connect to the schedd"

    with pytest.raises(BatchSystemError, match=r"could not tell the state of DAGMan job 7\.0"):
        HTCondor(runner).chain_statuses(chain_of("7.0"))
    assert parse_dag_jobs("not json", "7") is None


def test_stop_removes_the_dagman_job_and_a_failed_step_leaves_the_rest_to_dagman() -> None:
    calls: list[str] = []
    condor = HTCondor(answering("", calls))
    condor.cancel_chain(chain_of("93.0"), after="stage_in")
    assert calls == []
    condor.cancel_chain(chain_of("93.0"))
    assert calls == ["condor_rm 93.0"]


def test_the_pipeline_watch_ends_with_the_dag_and_removes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    site = SimpleNamespace(batch=HTCondor(answering(data("condor_dag_stage_in_failed.txt"), calls)))
    state = SimpleNamespace(jobs="stage_in=93.0,process=93.0,stage_out=93.0")
    shown: list[str] = []
    final = watch(site, state, shown.append)  # type: ignore[arg-type]
    assert [status.state for status in final.values()] == ["COMPLETED", "NOT_RUN", "NOT_RUN"]
    assert shown[0] == "- stage_in job 94.0: COMPLETED"
    assert not any(c.startswith("condor_rm") for c in calls)
