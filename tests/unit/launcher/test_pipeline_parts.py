"""Staged pipelines without a cluster: schema, ledger (with concurrent processes), the array
task's retry and skip, the report, on_failure (a real HTTP listener), the job scripts."""

from __future__ import annotations

import http.server
import json
import multiprocessing
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from eoshared import ledger
from eoshared.batchsystem import BatchSystem, Slurm
from eoshared.batchsystem.htcondor import parse_config_int as condor_config_int
from eoshared.batchsystem.pbs import parse_max_array_size as pbs_array_limit
from eoshared.batchsystem.slurm import parse_max_array_size as slurm_array_limit
from eoshared.errors import BatchSystemError
from launcher.config import load_site, shipped_dir
from launcher.pipeline import task as pipeline_task
from launcher.pipeline.run import ArrayPlan, array_plan, step_script, task_time
from launcher.pipeline.spec import Pipeline, PipelineError, parse, rclone_env

BASE: dict[str, Any] = {
    "name": "ndvi",
    "scenes": ["a", "b"],
    "stage_in": {"from": "src:bucket/in"},
    "process": {"command": "tool {input}/{scene} {output}"},
    "stage_out": {"to": "dst:bucket/out"},
}


DATA = Path(__file__).parent / "data"


def with_(**changes: Any) -> dict[str, Any]:
    return {**BASE, **changes}


# ------------------------------------------------------------------------------ schema


def test_valid_pipeline_and_defaults() -> None:
    pipe = parse(BASE, env={})
    assert pipe.workdir == "~/.eohpc/pipelines/ndvi"
    assert pipe.retries == 1 and pipe.scenes == ["a", "b"]
    assert pipe.stage_in is not None and pipe.stage_in.remote == "src:bucket/in"
    assert Pipeline.from_json(json.loads(json.dumps(pipe.to_json()))).command == pipe.command


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        ({k: v for k, v in BASE.items() if k != "name"}, "'name': this key is required"),
        (with_(colour="red"), "'colour': unknown key"),
        (with_(process={"command": "tool {input}"}), "no {scene} placeholder"),
        (with_(process={"command": "tool {scene} {where}"}), "unknown placeholder {where}"),
        (with_(process={"command": "t {scene}", "retries": -1}), "'process.retries'"),
        (with_(process={"command": "t {scene}", "mem": "lots"}), "'process.mem'"),
        (with_(scenes={"glob": "*.tif"}, stage_in=None), "'stage_in'"),
        (with_(scenes=[]), "'scenes'"),
        (with_(scenes=["a", "a"]), "listed twice"),
        (with_(scenes=["../etc"]), "not a relative name"),
        (with_(workdir="scratch/x"), "'workdir'"),
        (with_(stage_in={"to": "x"}), "'stage_in.to': unknown key"),
        (with_(stage_in={"from": "s:b", "flags": ["--s3-secret-access-key", "x"]}), "secret"),
        (with_(remotes={"s": {"type": "s3", "secret_access_key": "x"}}), "'remotes.s.secret"),
        (with_(remotes={"s": {"type": "s3", "credentials": "aws"}}), "AWS_ACCESS_KEY_ID"),
        (with_(on_failure={"webhook": "ftp://x"}), "'on_failure.webhook'"),
        (with_(process={"command": "t {scene}", "mpi": 0}), "'process.mpi'"),
        (with_(process={"command": "t {scene}", "mpi": 2, "parallel": 2}), "keep one of them"),
        (with_(process={"command": "t {scene}", "mpiexec": "mpirun"}), "with process.mpi"),
        (with_(process={"command": "t {scene}", "mpi": 2, "mpiexec": " "}), "MPI launcher"),
    ],
)
def test_invalid_pipeline_names_key_and_fix(raw: dict[str, Any], names: str) -> None:
    if raw.get("stage_in") is None:
        raw = {k: v for k, v in raw.items() if k != "stage_in"}
    with pytest.raises(PipelineError) as error:
        parse(raw, env={})
    assert names in str(error.value)
    assert "Fix" in str(error.value) or "must hold" in str(error.value)


def test_aws_credentials_become_rclone_settings_in_the_env_file() -> None:
    env = {
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "s3cr3t with 'quote",
        "AWS_REGION": "eu-1",
        "MY_PASS": "pw",
    }
    remotes = {
        "src": {"type": "s3", "provider": "Ceph", "endpoint": "http://127.0.0.1:7480",
                "credentials": "aws"},
        "box": {"type": "sftp", "host": "h", "env": {"pass": "MY_PASS"}},
    }  # fmt: skip
    pipe = parse(with_(remotes=remotes), env=env)
    text = rclone_env(pipe.remotes)
    assert "export RCLONE_CONFIG_SRC_ACCESS_KEY_ID=AKIDEXAMPLE" in text
    assert "export RCLONE_CONFIG_SRC_ENV_AUTH=false" in text
    assert "export RCLONE_CONFIG_SRC_REGION=eu-1" in text
    assert "export RCLONE_CONFIG_BOX_PASS=pw" in text
    from launcher.pipeline.spec import read_env_file

    assert read_env_file(text)["RCLONE_CONFIG_SRC_SECRET_ACCESS_KEY"] == "s3cr3t with 'quote"
    # What travels as pipeline.json names the remotes, never their settings.
    assert "s3cr3t" not in json.dumps(pipe.to_json())


# ------------------------------------------------------------------------------ job scripts


def test_slurm_dependency_and_array_directives() -> None:
    assert Slurm().dependency_directive(["11", "12"]) == [
        "--dependency=afterok:11:12",
        "--kill-on-invalid-dep=yes",
    ]
    assert Slurm().array_directive(6, 2) == ["--array=0-5%2"]
    assert Slurm().array_directive(1) == ["--array=0-0"]


def test_a_batch_system_without_them_says_so() -> None:
    class Other(BatchSystem):
        name = "other"
        display_name = "Other"

    with pytest.raises(BatchSystemError, match="not supported yet on Other"):
        Other().dependency_directive(["1"])
    with pytest.raises(BatchSystemError, match="job arrays are not supported yet"):
        Other().array_directive(3)


def test_step_scripts_chain_and_keep_secrets_out() -> None:
    site = load_site("sandbox", shipped_dir() / "platforms.ini")
    remote = SimpleNamespace(config=site, batch=Slurm())
    env = {"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "TOPSECRET"}
    pipe = parse(
        with_(
            remotes={"src": {"type": "s3", "credentials": "aws"}},
            process={"command": "t {scene}", "parallel": 3, "mem": "2G"},
            workdir="/scratch/u/ndvi",
        ),
        env=env,
    )
    stage_in = step_script(remote, pipe, "/r", "stage_in", [])  # type: ignore[arg-type]
    after = Slurm().dependency_directive
    plan = ArrayPlan(6)
    process = step_script(remote, pipe, "/r", "process", after(["41"]), plan)  # type: ignore[arg-type]
    # 2,500 scenes where an array holds 1,001 tasks: every third scene each, three times the time.
    strided = step_script(remote, pipe, "/r", "process", [], array_plan(2500, 1001))  # type: ignore[arg-type]
    assert "#SBATCH --array=0-1000%3" in strided and "--tasks 1001" in strided
    assert "--tasks" not in process
    stage_out = step_script(remote, pipe, "/r", "stage_out", after(["42"]))  # type: ignore[arg-type]
    assert "--dependency" not in stage_in
    assert 'rclone copy -v src:bucket/in "$WORKDIR"/input' in stage_in
    assert "#SBATCH --array=0-5%3" in process
    assert "#SBATCH --dependency=afterok:41" in process
    assert "#SBATCH --kill-on-invalid-dep=yes" in process
    assert "#SBATCH --mem=2G" in process
    assert '--index "$SLURM_ARRAY_TASK_ID"' in process
    assert "#SBATCH --dependency=afterok:42" in stage_out
    assert "--exclude '/.partial/**'" in stage_out
    for script in (stage_in, process, stage_out):
        assert '. "$RUN_DIR/rclone.env"' in script
        assert "TOPSECRET" not in script and "AKID" not in script


def test_mpi_process_step_is_one_job_of_ranks() -> None:
    from eoshared.batchsystem import PBS

    site = load_site("sandbox", shipped_dir() / "platforms.ini")
    pipe = parse(with_(process={"command": "t {scene}", "mpi": 4, "cpus": 2, "mem": "4G"}), env={})
    assert pipe.mpiexec == "mpirun"
    assert Pipeline.from_json(json.loads(json.dumps(pipe.to_json()))).mpi == 4
    plan = array_plan(10, pipe.mpi)  # 10 scenes on 4 ranks: up to 3 each
    slurm = step_script(
        SimpleNamespace(config=site, batch=Slurm()), pipe, "/r", "process", [], plan
    )  # type: ignore[arg-type]
    assert "--array" not in slurm and "#SBATCH --ntasks=4" in slurm
    assert "#SBATCH --cpus-per-task=2" in slurm and "#SBATCH --mem-per-cpu=2048M" in slurm
    assert "#SBATCH --output=/r/job-process.out" in slurm
    assert "#SBATCH --nodes" not in slurm
    assert (
        'exec mpirun "$(command -v python)" -m launcher.pipeline.task --run-dir "$RUN_DIR" '
        '--mpi 4 --task "${SLURM_JOB_ID}"'
    ) in slurm
    import dataclasses

    pbs_site = dataclasses.replace(
        site, profile=dataclasses.replace(site.profile, batch_system="pbs")
    )
    pbs_pipe = parse(
        with_(process={"command": "t {scene}", "mpi": 2, "mpiexec": "mpirun --bind-to none"}),
        env={},
    )
    pbs = step_script(
        SimpleNamespace(config=pbs_site, batch=PBS()), pbs_pipe, "/r", "process", [],
        array_plan(5, pbs_pipe.mpi),
    )  # type: ignore[arg-type]  # fmt: skip
    assert "select=2:ncpus=1:mpiprocs=1" in pbs and " -J " not in pbs
    assert 'exec mpirun --bind-to none --hostfile "$PBS_NODEFILE" "$(command -v' in pbs


def test_mpi_rank_refuses_a_world_of_the_wrong_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """A launcher that starts singletons (each rank 0 of 1) would have every process take
    every scene: refused with the fix; a missing mpi4py is named."""
    import sys

    world = SimpleNamespace(Get_rank=lambda: 0, Get_size=lambda: 1)
    fake = SimpleNamespace(MPI=SimpleNamespace(COMM_WORLD=world))
    monkeypatch.setitem(sys.modules, "mpi4py", fake)
    monkeypatch.setitem(sys.modules, "mpi4py.MPI", fake.MPI)
    assert pipeline_task.mpi_rank(1) == (0, 1)
    with pytest.raises(SystemExit, match="rank 0 of 1, not one of the job's 3 MPI ranks"):
        pipeline_task.mpi_rank(3)
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(SystemExit, match="needs mpi4py"):
        pipeline_task.mpi_rank(3)


# ------------------------------------------------------------------------------ ledger


def _hammer(path: str, worker: int, scenes: int) -> None:
    book = ledger.Ledger(path)
    for i in range(scenes):
        scene = f"w{worker}-s{i}"
        book.start(scene, run="r1")
        book.finish(scene, ok=i % 5 != 0, run="r1", output=f"out/{scene}", error="boom " * 50)
        book.start("shared", run="r1")  # every process bumps one scene's attempt count


def test_concurrent_processes_never_corrupt_the_ledger(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    workers, scenes = 8, 40
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_hammer, args=(str(path), w, scenes)) for w in range(workers)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    lines = path.read_bytes().splitlines()
    assert len(lines) == workers * scenes * 3
    assert all(json.loads(line)["scene"] for line in lines)  # every line whole
    records = ledger.Ledger(path).records()
    # Attempt numbers are handed out under the lock: no two processes got the same one.
    starts = [json.loads(x) for x in lines if json.loads(x)["scene"] == "shared"]
    assert sorted(e["attempt"] for e in starts) == list(range(1, workers * scenes + 1))
    assert records["shared"].attempts == workers * scenes
    done = [r for s, r in records.items() if s != "shared" and r.state == ledger.DONE]
    failed = [r for s, r in records.items() if s != "shared" and r.state == ledger.FAILED]
    assert len(done) == workers * (scenes - scenes // 5) and len(failed) == workers * scenes // 5
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_a_torn_last_line_is_skipped_and_not_glued_to_the_next(tmp_path: Path) -> None:
    book = ledger.Ledger(tmp_path / "l.jsonl")
    book.start("a")
    with (tmp_path / "l.jsonl").open("ab") as handle:
        handle.write(b'{"event": "done", "sce')
    book.finish("a", ok=True, output="x")
    assert book.records()["a"].state == ledger.DONE


# ------------------------------------------------------------------------------ the array task


def run_dir_for(tmp_path: Path, command: str, scenes: list[str], retries: int = 1) -> Path:
    workdir = tmp_path / "work"
    (workdir / "input").mkdir(parents=True)
    run_dir = tmp_path / "runs" / "run-1"
    run_dir.mkdir(parents=True)
    pipe = parse(with_(process={"command": command, "retries": retries}), env={})
    pipe.workdir = str(workdir)
    (run_dir / pipeline_task.PIPELINE_JSON).write_text(json.dumps(pipe.to_json()))
    (run_dir / pipeline_task.SCENES_TXT).write_text("\n".join(scenes) + "\n")
    return run_dir


def test_retry_succeeds_and_a_rerun_skips_done_scenes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline_task, "RETRY_PAUSE", 0.0)
    # The first attempt fails, the second (same inputs) writes its output.
    command = (
        "test {attempt} -ge 2 || {{ echo flaky {scene} >&2; exit 7; }}; echo ok > {output}/r.txt"
    )
    run_dir = run_dir_for(tmp_path, command, ["a", "b"])
    assert pipeline_task.process(run_dir, 0) == 0
    book = ledger.Ledger(tmp_path / "work" / ledger.LEDGER_NAME)
    record = book.records()["a"]
    assert (record.state, record.attempts, record.run_attempts) == (ledger.DONE, 2, 2)
    assert record.output == "dst:bucket/out/a"
    assert (tmp_path / "work" / "output" / "a" / "r.txt").read_text() == "ok\n"
    assert not list((tmp_path / "work" / "output" / ".partial").iterdir())
    # A re-run does not touch the done scene.
    assert pipeline_task.process(run_dir, 0) == 0
    assert book.records()["a"].attempts == 2
    assert book.todo(["a", "b"]) == ["b"]


def test_retries_exhausted_records_the_error_and_exits_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline_task, "RETRY_PAUSE", 0.0)
    run_dir = run_dir_for(tmp_path, "echo bad input {scene} >&2; exit 4", ["x"], retries=2)
    assert pipeline_task.process(run_dir, 0) == 0
    record = ledger.Ledger(tmp_path / "work" / ledger.LEDGER_NAME).records()["x"]
    assert (record.state, record.attempts) == (ledger.FAILED, 3)
    assert record.error == "exit status 4: bad input x"
    assert not (tmp_path / "work" / "output" / "x").exists()


def test_fewer_tasks_than_scenes_each_take_every_nth_scene_once(tmp_path: Path) -> None:
    scenes = [f"s{i}" for i in range(7)]
    run_dir = run_dir_for(tmp_path, "echo {scene} > {output}/r.txt", scenes)
    plan = array_plan(len(scenes), limit=3)
    assert (plan.tasks, plan.per_task) == (3, 3)
    for index in range(plan.tasks):
        assert pipeline_task.main(
            ["--run-dir", str(run_dir), "--index", str(index), "--task", f"t{index}",
             "--tasks", str(plan.tasks)]
        ) == 0  # fmt: skip
    records = ledger.Ledger(tmp_path / "work" / ledger.LEDGER_NAME).records()
    assert sorted(records) == scenes
    assert all(r.state == ledger.DONE and r.attempts == 1 for r in records.values())
    # Task i took scenes i, i + 3, i + 6: every scene exactly once.
    assert {s: r.task for s, r in records.items()} == {s: f"t{i % 3}" for i, s in
                                                       enumerate(scenes)}  # fmt: skip


@pytest.mark.parametrize(
    ("scenes", "limit", "tasks", "per_task"),
    [(6, None, 6, 1), (2500, 1001, 1001, 3), (2500, 1000, 1000, 3), (1000, 1000, 1000, 1),
     (1, 1001, 1, 1), (10, 3, 3, 4)],
)  # fmt: skip
def test_array_plan(scenes: int, limit: int | None, tasks: int, per_task: int) -> None:
    assert array_plan(scenes, limit) == ArrayPlan(tasks, per_task)


def test_a_task_of_several_scenes_asks_for_that_many_times_the_time() -> None:
    assert task_time("01:00:00", 3) == "3:00:00"
    assert task_time("1-00:00:00", 2) == "48:00:00"
    assert task_time("UNLIMITED", 3) == "UNLIMITED"
    assert task_time("00:30:00", 1) == "00:30:00"


def test_array_limits_as_each_batch_system_prints_them() -> None:
    assert slurm_array_limit("AccountingStorageType   = (null)\nMaxArraySize            = 1001\n"
                             "MaxJobCount             = 10000\n") == 1001  # fmt: skip
    assert slurm_array_limit("MaxJobCount = 10000") is None
    assert pbs_array_limit((DATA / "qstat_server.json").read_text()) == 10000
    server = json.loads((DATA / "qstat_server.json").read_text())
    next(iter(server["Server"].values()))["max_array_size"] = 1000
    assert pbs_array_limit(json.dumps(server)) == 1000
    assert pbs_array_limit("") is None
    assert condor_config_int("20000\n") == 20000 and condor_config_int("Not defined") is None


# ------------------------------------------------------------------------------ report


def test_report_counts_and_table(tmp_path: Path) -> None:
    book = ledger.Ledger(tmp_path / "l.jsonl")
    for scene in ("a", "b", "c"):
        book.start(scene, run="r")
    book.finish("a", ok=True, run="r", output="dst:out/a")
    book.finish("b", ok=False, run="r", error="exit status 3: corrupt input b")
    rep = ledger.report(book.records(), ["a", "b", "c", "d"], pipeline="p")
    assert (rep["done"], rep["failed"], rep["pending"], rep["ok"]) == (1, 2, 1, False)
    rows = {r["scene"]: r for r in rep["scenes"]}
    assert rows["c"]["error"] == ledger.INTERRUPTED  # still "running" after every job ended
    assert rows["d"]["attempts"] == 0
    text = ledger.table(rep)
    assert "corrupt input b" in text and "dst:out/a" in text
    assert text.splitlines()[-1] == "1 of 4 scenes done, 2 failed, 1 not processed"
    assert ledger.report(book.records(), ["a"])["ok"]
    # while the jobs run, a started scene counts as running
    live = ledger.report(book.records(), ["a", "b", "c", "d"], finished=False)
    assert (live["done"], live["failed"], live["running"], live["pending"]) == (1, 1, 1, 1)
    assert not ledger.report(book.records(), ["a"], error="step stage_out failed")["ok"]


def test_long_errors_keep_their_start_and_end(tmp_path: Path) -> None:
    book = ledger.Ledger(tmp_path / "l.jsonl")
    book.start("x", run="r")
    traceback = "\n".join(f'  File "/m/mod{i}.py", line {i}, in f{i}' for i in range(80))
    cause = "exit status 3: corrupt input x.tif"
    book.finish("x", ok=False, run="r", error=f"{cause}\n{traceback}\nRead failed. See previous")
    rep = ledger.report(book.records(), ["x"])
    stored = rep["scenes"][0]["error"]
    assert len(stored) <= ledger.ERROR_CHARS and stored.startswith(cause)
    assert stored.endswith("Read failed. See previous")
    row = ledger.table(rep).splitlines()[2]
    assert "exit status 3: corrupt input" in row and " ... " in row
    assert row.endswith("Read failed. See previous")
    assert ledger.shorten_middle("short", 60) == "short"
    assert len(ledger.shorten_middle("y" * 100, 60)) == 60


# ------------------------------------------------------------------------------ on_failure


def test_webhook_and_command_receive_the_report(tmp_path: Path) -> None:
    received: list[tuple[str, dict[str, Any]]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.headers["Content-Type"], json.loads(body)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        rep = {"ok": False, "failed": 1, "scenes": [{"scene": "b", "error": "corrupt"}]}
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        out = tmp_path / "report.json"
        problems = ledger.notify(rep, command=f"cat > {out}", webhook=url)
        assert problems == []
        assert received == [("application/json", rep)]
        assert json.loads(out.read_text()) == rep
    finally:
        server.shutdown()
        server.server_close()
    # A listener that is gone, and a failing command, are reported, not raised.
    problems = ledger.notify(rep, command="exit 5", webhook=url)
    assert len(problems) == 2 and "exited 5" in problems[0] and "webhook" in problems[1]


def test_a_run_directory_removed_mid_run_is_reported_not_a_traceback() -> None:
    from launcher.pipeline.run import final_report

    remote = SimpleNamespace(link=SimpleNamespace(read=lambda path, offset=0: b""))
    state = SimpleNamespace(run_dir="/home/u/.eohpc/runs/s-pipe-x-1", uid="s")
    final = {"process": SimpleNamespace(job_id="104", state="FAILED")}
    with pytest.raises(
        PipelineError,
        match=r"run directory /home/u/\.eohpc/runs/s-pipe-x-1 .*"
        r"vanished.*process 104 FAILED",
    ):
        final_report(remote, state, final)  # type: ignore[arg-type]
