"""Staged pipelines: stage-in, one array task per scene, stage-out, submitted together.

``--mode pipeline --file pipeline.yaml`` (schema: :mod:`launcher.pipeline.spec`):

1. a fresh 0700 run directory receives ``pipeline.json`` and the private ``rclone.env`` (the
   remotes' secrets) through :meth:`RemoteSite.new_run_dir`'s private tar upload;
2. the scene list is the file's list, or is read from the stage-in source on the login node
   (``rclone lsf``/``rclone cat`` with ``rclone.env`` sourced);
3. the ledger in the pipeline's work directory (it survives the runs) says which scenes are
   done; only the others go into this run's ``scenes.txt``;
4. the steps are submitted as a chain, each starting once the one before it succeeded
   (:meth:`~eoshared.batchsystem.base.BatchSystem.submit_chain`: on SLURM and PBS one job per
   step with an ``afterok`` dependency, on HTCondor a DAG run by DAGMan); when a step fails,
   the steps after it do not run (the batch system cancels them or DAGMan never submits them;
   the launcher cancels what is left);
5. the launcher watches the steps (:meth:`~eoshared.batchsystem.base.BatchSystem.chain_statuses`)
   and, when they have all ended, reads the ledger and prints the report (``report.json`` and
   the page ``report.html`` in the run directory too, ``--mode report --job ID`` opens it),
   hands it to ``on_failure`` when something failed, and exits 0 only when every scene is
   done.

Layout on the cluster::

    <workdir>/                     0700; default ~/.eohpc/pipelines/<name>; kept across runs
        ledger.jsonl               the per-scene ledger (eoshared.ledger)
        input/                     stage-in's destination ({input})
        output/<scene>/            a done scene's results (stage-out copies output/)
        output/.partial/<scene>-<attempt>/   an attempt's {output}, renamed when it succeeds
    ~/.eohpc/runs/<site>-pipe-<name>-<time>-<hex>/   one per submission (the pipeline id)
        pipeline.json, rclone.env (0600), scenes.txt, report.json, report.html,
        steps.jsonl (each step's start and end, for the report's timeline),
        job-<step>.out, job-process-<index>.out (each step's output; HTCondor: the DAG too)
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, TextIO

from eoshared import ledger
from eoshared.batchsystem import BatchSystem, ChainStep, JobStatus
from eoshared.batchsystem.units import format_seconds, parse_slurm_time
from eoshared.errors import LauncherError
from launcher.pipeline import html_report
from launcher.pipeline.spec import Pipeline, PipelineError, rclone_env, read
from launcher.pipeline.task import PIPELINE_JSON, REPORT_JSON, SCENES_TXT
from launcher.session import state as saved
from launcher.session.state import PIPELINE, SessionState
from launcher.sites.jobscript import activation_lines, expand_home, job_exports, job_script
from launcher.sites.remote import POLL_SECONDS, RemoteSite

if TYPE_CHECKING:
    from launcher.session.kinds import Driver, Record
    from launcher.session.options import Options

ENV_FILE = "rclone.env"
REPORT_HTML = "report.html"
STEPS_JSONL = "steps.jsonl"
STEPS = ("stage_in", "process", "stage_out")


def quoted_dir(path: str) -> str:
    """A cluster directory for the job script, ``~/`` kept as ``$HOME``."""
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def rclone_command(source: str, dest: str, flags: list[str], extra: list[str]) -> str:
    """``rclone copy`` with the remote's flags (no secrets: those are in the environment)."""

    def arg(text: str) -> str:
        if text.startswith("$WORKDIR"):
            return '"$WORKDIR"' + shlex.quote(text[len("$WORKDIR") :])
        return shlex.quote(text)

    return " ".join(arg(a) for a in ["rclone", "copy", *extra, *flags, source, dest])


def step_output(step: str, index: str = "") -> str:
    """A step's output file in the run directory; an array task's has its index (or the
    batch system's placeholder for it) too."""
    return f"job-{step}-{index}.out" if index else f"job-{step}.out"


@dataclass(frozen=True)
class ArrayPlan:
    """The process step's job array: its tasks, and the most scenes one task takes (more
    than one when the batch system's array limit is below the number of scenes)."""

    tasks: int
    per_task: int = 1


def array_plan(scenes: int, limit: int | None) -> ArrayPlan:
    """One task per scene, or as many tasks as ``limit`` allows, each taking every
    ``tasks``-th scene (so each takes ``per_task`` scenes at the most)."""
    tasks = scenes if limit is None else max(1, min(scenes, limit))
    return ArrayPlan(tasks, math.ceil(scenes / tasks))


def task_time(time_limit: str, per_task: int) -> str:
    """The time limit of a task taking ``per_task`` scenes: that many times one scene's
    (an unlimited one stays so)."""
    seconds = parse_slurm_time(time_limit) if per_task > 1 else None
    return format_seconds(seconds * per_task) if seconds is not None else time_limit


def step_script(
    site: RemoteSite,
    pipe: Pipeline,
    run_dir: str,
    step: str,
    chained: list[str],
    plan: ArrayPlan = ArrayPlan(0),
) -> str:
    """The job script of one step; ``chained`` are the header options that start it after the
    step before (the batch system's), ``plan`` the process step's array."""
    config = site.config
    batch = site.batch
    job = config.profile.job
    extra = list(chained)
    if step == "process":
        if not pipe.mpi:
            extra = [*batch.array_directive(plan.tasks, pipe.parallel), *extra]
        job = dataclasses.replace(
            job,
            cpus=pipe.cpus or 1,
            mem=pipe.mem or job.mem,
            mem_per_cpu=None if pipe.mem else job.mem_per_cpu,
            time=task_time(pipe.time or job.time, plan.per_task),
            tasks=plan.tasks if pipe.mpi else 1,
        )
        lines, python = activation_lines(config.profile)
        body = "\n".join(
            [*lines, *job_exports(config, run_dir), process_command(batch, pipe, python, plan)]
        )
    elif step == "stage_in":
        assert pipe.stage_in is not None
        job = dataclasses.replace(job, cpus=1)
        body = 'mkdir -p "$WORKDIR/input"\n' + rclone_command(
            pipe.stage_in.remote, "$WORKDIR/input", pipe.stage_in.flags, ["-v"]
        )
    else:
        assert pipe.stage_out is not None
        job = dataclasses.replace(job, cpus=1)
        body = rclone_command(
            "$WORKDIR/output",
            pipe.stage_out.remote,
            pipe.stage_out.flags,
            ["-v", "--exclude", "/.partial/**"],
        )
    job = dataclasses.replace(job, directives=[*extra, *job.directives])
    return job_script(
        "pipeline_job.sh",
        config,
        run_dir,
        job,
        f"eohpc-pipe-{pipe.name}-{step}",
        output=step_output(
            step, batch.array_index_placeholder if step == "process" and not pipe.mpi else ""
        ),
        step=step,
        pipeline=pipe.name,
        workdir=quoted_dir(pipe.workdir),
        body=body,
    )


def process_command(batch: BatchSystem, pipe: Pipeline, python: str, plan: ArrayPlan) -> str:
    """The process step's command: an array task's scenes, or with ``process.mpi`` the MPI
    ranks of one job (started by ``process.mpiexec``; the environment's Python by its full
    path, as a launcher may start ranks elsewhere with a plain PATH), each taking its share."""
    module = '-m launcher.pipeline.task --run-dir "$RUN_DIR"'
    if pipe.mpi:
        return (
            f'exec {batch.mpi_launcher(pipe.mpiexec)} "$(command -v {python})" {module} '
            f"--mpi {plan.tasks} "
            f'--task "${{{batch.job_id_variable}}}"'
        )
    stride = f" --tasks {plan.tasks}" if plan.per_task > 1 else ""
    return (
        f'exec {python} {module} --index "${batch.array_index_variable}" '
        f'--task "{batch.array_task_label}"{stride}'
    )


def resolve_scenes(site: RemoteSite, pipe: Pipeline, run_dir: str) -> list[str]:
    """The scene list: the file's, or read from the stage-in source on the login node."""
    if pipe.scenes:
        return pipe.scenes
    assert pipe.stage_in is not None
    source = pipe.stage_in.remote.rstrip("/")
    if pipe.scenes_file:
        rclone = shlex.join(["rclone", "cat", f"{source}/{pipe.scenes_file}"])
        key = f"scenes.file ({pipe.scenes_file})"
    else:
        rclone = shlex.join(
            ["rclone", "lsf", "-R", "--files-only", "--include", pipe.scenes_glob, source]
        )
        key = f"scenes.glob ({pipe.scenes_glob})"
    code, out, err = site.link.run(
        f"cd {shlex.quote(run_dir)} && set -a && . ./{ENV_FILE} && set +a && {rclone}"
    )
    if code != 0:
        raise PipelineError(
            f"pipeline key '{key}': rclone could not read {source} on the login node: "
            f"{err.strip()[-300:]}. Fix: check stage_in.from and the remote's definition."
        )
    scenes = [
        line.strip() for line in out.splitlines() if line.strip() and not line.startswith("#")
    ]
    if not scenes:
        raise PipelineError(f"pipeline key '{key}': no scenes found in {source}. Fix: check it.")
    return list(dict.fromkeys(scenes))


def read_ledger(site: RemoteSite, workdir: str) -> dict[str, ledger.SceneRecord]:
    """The pipeline's ledger as the cluster holds it now."""
    data = site.link.read(f"{workdir}/{ledger.LEDGER_NAME}")
    return ledger.fold(ledger.parse_events(data))


def submit(
    site: RemoteSite, pipe: Pipeline, say: Callable[[str], None]
) -> tuple[SessionState | None, dict[str, Any]]:
    """Prepare the run and submit its jobs. Returns the state to save (None when every scene
    is done already) and the run's description (pipeline, run, scenes, jobs)."""
    config = site.config
    batch = site.batch
    # Refuse a batch system without chained/array jobs before anything is created.
    batch.check_chains()
    if pipe.mpi:
        batch.check_multi_node(
            "a pipeline of MPI ranks (process.mpi)",
            "leave out process.mpi and process.mpiexec: each scene is then an array task",
        )
    limit = pipe.mpi or batch.array_limit()
    if limit is not None and limit < 1:
        raise PipelineError(
            f"job arrays are turned off on this cluster ({batch.display_name}'s "
            f"{batch.array_limit_name} is {limit}); a pipeline needs one. Fix: ask the "
            "cluster's administrators, or process the scenes with --mode batch."
        )
    home = site.link.home()
    pipe = dataclasses.replace(pipe, workdir=expand_home(pipe.workdir, home))
    site.link.check(
        f"umask 077 && mkdir -p {shlex.quote(pipe.workdir)}/input {shlex.quote(pipe.workdir)}"
        f"/output && chmod 700 {shlex.quote(pipe.workdir)}"
    )
    files = {
        PIPELINE_JSON: json.dumps(pipe.to_json(), indent=2),
        ENV_FILE: rclone_env(pipe.remotes),
    }
    run_dir = site.new_run_dir(f"{config.uid}-pipe-{pipe.name}", files)
    run = PurePosixPath(run_dir).name
    scenes = resolve_scenes(site, pipe, run_dir)
    records = read_ledger(site, pipe.workdir)
    todo = [s for s in scenes if s not in records or records[s].state != ledger.DONE]
    info: dict[str, Any] = {
        "pipeline": pipe.name,
        "run": run,
        "run_dir": run_dir,
        "workdir": pipe.workdir,
        "scenes": scenes,
        "todo": todo,
        "jobs": {},
    }
    say(
        f"pipeline {pipe.name}: {len(scenes)} scenes, {len(scenes) - len(todo)} done already, "
        f"{len(todo)} to process (run directory {run_dir})"
    )
    if not todo:
        return None, info
    site.link.check(
        f"umask 077 && cat > {shlex.quote(run_dir)}/{SCENES_TXT}", stdin="\n".join(todo) + "\n"
    )
    plan = array_plan(len(todo), limit)
    time_limit = task_time(pipe.time or config.profile.job.time, plan.per_task)
    if pipe.mpi:
        say(
            f"- {len(todo)} scenes on {plan.tasks} MPI ranks of one job, up to "
            f"{plan.per_task} scenes each ({pipe.mpiexec}); the job asks for {plan.per_task} "
            f"times the process time: {time_limit}"
        )
    elif plan.per_task > 1:
        say(
            f"- {len(todo)} scenes in {plan.tasks} array tasks of up to {plan.per_task} scenes "
            f"each ({batch.display_name}'s {batch.array_limit_name} is {limit}); a task asks "
            f"for {plan.per_task} times the process time: "
            f"{task_time(pipe.time or config.profile.job.time, plan.per_task)}"
        )
    steps = [
        ChainStep(step, functools.partial(step_script, site, pipe, run_dir, step, plan=plan))
        for step in STEPS
        if step == "process" or getattr(pipe, step) is not None
    ]
    jobs = batch.submit_chain(steps, run_dir, f"eohpc-pipe-{pipe.name}")
    say(f"- submitted: {batch.chain_description(jobs)}")
    info["jobs"] = jobs
    state = SessionState(
        uid=config.uid,
        platform=config.platform,
        job_id=next(iter(jobs.values())),
        run_dir=run_dir,
        token="",
        local_port=0,
        kind=PIPELINE,
        jobs=",".join(f"{k}={v}" for k, v in jobs.items()),
    )
    return state, info


def job_ids(state: SessionState) -> dict[str, str]:
    """The pipeline's jobs by step."""
    return dict(item.split("=", 1) for item in state.jobs.split(",") if "=" in item)


def statuses(site: RemoteSite, state: SessionState) -> dict[str, JobStatus]:
    """Each step's status."""
    return site.batch.chain_statuses(job_ids(state))


def cancel(site: RemoteSite, state: SessionState) -> None:
    """Cancel every job of the pipeline (those that ended already are no error)."""
    site.batch.cancel_chain(job_ids(state))


def watch(
    site: RemoteSite, state: SessionState, show: Callable[[str], None]
) -> dict[str, JobStatus]:
    """Wait until every step has ended; stop the steps after one that failed."""
    shown: dict[str, str] = {}
    cancelled = False
    while True:
        current = statuses(site, state)
        for step, status in current.items():
            text = f"{status.state}" + (f" ({status.reason})" if status.reason else "")
            if shown.get(step) != text:
                shown[step] = text
                show(f"- {step} job {status.job_id}: {text}")
        failed = [s for s, st in current.items() if st.finished and not site.batch.succeeded(st)]
        if failed and not cancelled:
            site.batch.cancel_chain(job_ids(state), after=failed[0])
            cancelled = True
        if all(status.finished for status in current.values()):
            return current
        time.sleep(POLL_SECONDS)


def final_report(
    site: RemoteSite, state: SessionState, final: dict[str, JobStatus]
) -> dict[str, Any]:
    """The run's report from the ledger and the jobs' final states; saved as report.json."""
    stored = site.link.read(f"{state.run_dir}/{PIPELINE_JSON}")
    if not stored:
        raise PipelineError(
            f"the run directory {state.run_dir} (or its {PIPELINE_JSON}) vanished on the cluster "
            "while the pipeline ran; the jobs' states were: "
            + ", ".join(f"{step} {st.job_id} {st.state}" for step, st in final.items())
            + ". Fix: keep ~/.eohpc/runs in place while a pipeline runs, then run it again "
            "(the ledger in the work directory keeps the scenes already done)."
        )
    pipe = Pipeline.from_json(json.loads(stored))
    error = ""
    for step, status in final.items():
        if not site.batch.succeeded(status):
            index = "0" if step == "process" and not pipe.mpi else ""
            tail = site.tail_file(f"{state.run_dir}/{step_output(step, index)}", 5)
            ended = status.state + (f", exit status {status.exit_code}" if status.exit_code else "")
            error = f"step {step} (job {status.job_id}) ended {ended}: {tail}"
            break
    rep = run_report(
        site,
        state.run_dir,
        pipe,
        finished=True,
        site=state.uid,
        jobs={s: {"job_id": st.job_id, "state": st.state} for s, st in final.items()},
        error=error,
    )
    run_dir = shlex.quote(state.run_dir)
    site.link.check(f"umask 077 && cat > {run_dir}/{REPORT_JSON}", stdin=json.dumps(rep))
    site.link.check(f"umask 077 && cat > {run_dir}/{REPORT_HTML}", stdin=html_report.render(rep))
    return rep


def run_report(
    cluster: RemoteSite, run_dir: str, pipe: Pipeline, *, finished: bool, **extra: Any
) -> dict[str, Any]:
    """The report of run ``run_dir`` as the cluster's files hold it now: the ledger's records
    (this run's scenes after those done in earlier runs), this run's attempts and its steps'
    start and end events; ``finished``: every job has ended."""
    events = ledger.parse_events(cluster.link.read(f"{pipe.workdir}/{ledger.LEDGER_NAME}"))
    records = ledger.fold(events)
    run = PurePosixPath(run_dir).name
    todo = cluster.link.read(f"{run_dir}/{SCENES_TXT}").decode().split()
    scenes = list(dict.fromkeys([*(s for s in records if s not in todo), *todo]))
    return ledger.report(
        records,
        scenes,
        finished=finished,
        pipeline=pipe.name,
        run=run,
        **extra,
        attempts=[a for a in ledger.attempt_spans(events) if a["run"] == run],
        steps=step_events(cluster.link.read(f"{run_dir}/{STEPS_JSONL}")),
    )


def step_events(data: bytes) -> list[dict[str, Any]]:
    """The steps' start and end events of ``steps.jsonl``; torn or foreign lines skipped."""
    return [e for e in ledger.json_objects(data) if isinstance(e.get("time"), int | float)]


def on_failure(pipe_file: Path | None, rep: dict[str, Any], say: Callable[[str], None]) -> None:
    """Hand a failed run's report to the pipeline's on_failure command and/or webhook."""
    if rep["ok"] or pipe_file is None:
        return
    pipe = read(pipe_file)
    if not (pipe.on_failure_command or pipe.on_failure_webhook):
        return
    for problem in ledger.notify(rep, pipe.on_failure_command, pipe.on_failure_webhook):
        say(f"warning: {problem}")


def status_record(site: RemoteSite, state: SessionState) -> dict[str, Any]:
    """What status reports about a pipeline: each step's state and the ledger's counts."""
    current = statuses(site, state)
    record: dict[str, Any] = {
        "uid": state.uid,
        "kind": state.kind,
        "pipeline_id": PurePosixPath(state.run_dir).name,
        "run_dir": state.run_dir,
    }
    for step, status in current.items():
        record[step] = f"{status.job_id} {status.state}" + (
            f" ({status.reason})" if status.reason else ""
        )
    finished = all(s.finished for s in current.values())
    if finished and site.link.read(f"{state.run_dir}/{REPORT_JSON}"):
        rep = json.loads(site.link.read(f"{state.run_dir}/{REPORT_JSON}"))
    else:
        pipe = Pipeline.from_json(json.loads(site.link.read(f"{state.run_dir}/{PIPELINE_JSON}")))
        todo = site.link.read(f"{state.run_dir}/{SCENES_TXT}").decode().split()
        rep = ledger.report(read_ledger(site, pipe.workdir), todo, finished=finished)
    record["scenes"] = (
        f"{rep['done']} done, {rep.get('running', 0)} running, {rep['failed']} failed, "
        f"{rep['pending']} pending of {rep['total']}"
    )
    running = [r for r in rep["scenes"] if r["state"] == ledger.RUNNING]
    if running:
        shown = ", ".join(
            f"{r['scene']} ({r['task']})" if r["task"] else r["scene"] for r in running[:10]
        )
        record["running"] = shown + (f" and {len(running) - 10} more" if len(running) > 10 else "")
    record["ok"] = rep["ok"] if finished else None
    return record


def logs(site: RemoteSite, state: SessionState, lines: int, follow: bool) -> None:
    """The tails of every step's output (each file under its name)."""
    pattern = f"{shlex.quote(state.run_dir)}/job-*.out"
    if follow:
        site.link.stream(f"tail -n {int(lines)} -F {pattern}")
        return
    code, out, err = site.link.run(f"tail -n {int(lines)} {pattern}")
    print(out.rstrip() if code == 0 else f"(no output yet: {err.strip()})", flush=True)


def require_file(path: Path | None) -> Pipeline:
    """The pipeline file of --file, read and validated."""
    if path is None:
        raise LauncherError("--mode pipeline needs --file PIPELINE.yaml.")
    return read(path)


def print_report(lc: Driver, rep: dict[str, Any], as_json: bool) -> int:
    """The report as a table for the user (and as JSON on standard output); its exit status."""
    lc.say(ledger.table(rep))
    if as_json:
        print(json.dumps(rep), flush=True)
    return 0 if rep["ok"] else 1


class PipelineKind:
    """A staged pipeline of a cluster site: its steps' jobs, saved together; its id is the
    name of its run directory."""

    #: What starts one and what a saved one is called, where a site has no batch system.
    needs_cluster = ("--mode pipeline", "a pipeline")

    def __init__(self, site: RemoteSite) -> None:
        self.site = site

    def start(self, lc: Driver, options: Options) -> int:
        """Submit the pipeline of ``options.file``; unless detached, wait for it, print its
        report and return 0 only when every scene is done."""
        pipe = require_file(options.file)
        self.site.check_build(lc.problem)
        state, info = submit(self.site, pipe, lc.say)
        if state is None:
            records = read_ledger(self.site, info["workdir"])
            rep = ledger.report(records, info["scenes"], pipeline=pipe.name, run=info["run"])
            return print_report(lc, rep, options.as_json)
        saved.save(state)
        pipe_id = Path(state.run_dir).name
        if options.detach:
            print(pipe_id, flush=True)
            lc.say(f"--mode status/logs/stop --job {pipe_id} show, follow or cancel it")
            return 0
        return self.attach(lc, state, options)

    def attach(self, lc: Driver, state: SessionState, options: Options) -> int:
        """Watch the pipeline's jobs until they have all ended; report."""
        try:
            final = watch(self.site, state, lc.say)
        except KeyboardInterrupt:
            pipe_id = Path(state.run_dir).name
            return lc.interrupted(state, "pipeline", f"--job {pipe_id} finds it")
        return self.report(lc, state, final, options)

    def report(
        self, lc: Driver, state: SessionState, final: dict[str, JobStatus], options: Options
    ) -> int:
        """The run's report (saved as report.json), handed to on_failure when something
        failed; printed; 0 only when every scene is done."""
        rep = final_report(self.site, state, final)
        lc.forget(state)
        on_failure(options.file, rep, lc.say)
        return print_report(lc, rep, options.as_json)

    def status_record(self, lc: Driver, state: SessionState) -> Record:
        """Each step's job and state and the ledger's counts."""
        record = status_record(self.site, state)
        return {
            k: v if v is None or isinstance(v, int | str) else str(v) for k, v in record.items()
        }

    def stop(self, lc: Driver, state: SessionState) -> None:
        """Cancel every job of the pipeline and forget it."""
        try:
            cancel(self.site, state)
        finally:
            lc.forget(state)
        lc.say(f"stopped pipeline {Path(state.run_dir).name} of site '{lc.config.uid}'")

    def logs(self, lc: Driver, state: SessionState, follow: bool, lines: int, out: TextIO) -> None:
        """The tails of every step's output (follow: as they grow, until Ctrl-C)."""
        with contextlib.suppress(KeyboardInterrupt):
            logs(self.site, state, lines, follow)
