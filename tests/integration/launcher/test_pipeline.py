"""--mode pipeline on the two-namespace cluster: stage-in, a per-scene array, stage-out.

The rclone remotes are `alias` remotes onto directories the cluster user can read and write
(the rig has no object store): defined in the pipeline file, they reach the jobs through the
private rclone.env like any remote with credentials.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.cluster import rig
from tests.support.launcher_run import Launcher, checked_sandbox
from tests.support.pipeline_inputs import CHECK, CORRUPT, SCENES, chown_tree, write_inputs
from tests.support.pipeline_records import (
    expected_attempts,
    job_records,
    ledger_records,
    timeline_of,
    when,
)
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.netns, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture
def pipe_launcher(
    netns_cluster: rig.ClusterInfo, cluster_venv: str, tmp_path: Path
) -> Iterator[Launcher]:
    yield from checked_sandbox(netns_cluster, cluster_venv, tmp_path)


def pipeline_file(tmp_path: Path, exchange: Path, name: str, src: str, **extra: object) -> Path:
    doc = {
        "name": name,
        "scenes": {"glob": "*.txt"} if extra.pop("glob", False) else [f"{s}.txt" for s in SCENES],
        "stage_in": {"from": f"src:{src}"},
        "process": {"command": CHECK, "retries": 1},
        "stage_out": {"to": "dst:"},
        "remotes": {
            "src": {"type": "alias", "remote": str(exchange)},
            "dst": {"type": "alias", "remote": str(exchange / "dst")},
        },
        **extra,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_six_scenes_one_corrupt_then_rerun(
    pipe_launcher: Launcher, exchange: Path, tmp_path: Path
) -> None:
    info = pipe_launcher.info
    assert info is not None
    write_inputs(exchange / "src", corrupt=True)
    chown_tree(exchange, info.user)
    name = f"six-{os.getpid()}"
    path = pipeline_file(tmp_path, exchange, name, "src", glob=True)
    proc = pipe_launcher.run("--uid", "sandbox", "--mode", "pipeline", "--file", str(path),
                             "--json", timeout=600)  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    rep = json.loads(proc.stdout.strip().splitlines()[-1])
    # The report names the corrupt scene and its error; the table says the same.
    failed = {r["scene"]: r for r in rep["scenes"] if r["state"] == "failed"}
    assert list(failed) == [f"{CORRUPT}.txt"], rep
    assert "corrupt input scene4.txt" in failed[f"{CORRUPT}.txt"]["error"]
    assert "exit status 3" in failed[f"{CORRUPT}.txt"]["error"]
    assert failed[f"{CORRUPT}.txt"]["attempts"] == 2  # the first try and one retry
    assert rep["done"] == 5 and not rep["ok"]
    assert "scene4.txt" in proc.stderr and "5 of 6 scenes done, 1 failed" in proc.stderr
    # The timeline: every attempt of this run, and stage-in and stage-out ended with status 0.
    assert timeline_of(rep) == (expected_attempts(SCENES, CORRUPT), {"stage_in": 0, "stage_out": 0})
    # The other five results are at the destination; nothing of the failed one.
    results = sorted(p.name for p in (exchange / "dst").iterdir())
    assert results == [f"{s}.txt" for s in SCENES if s != CORRUPT]
    assert (exchange / "dst" / "scene1.txt" / "result.out").read_text() == "DATA SCENE1\n"
    # Stage-in, processing and stage-out ran in this order, chained by afterok.
    jobs = rep["jobs"]
    stage_in = job_records(info, jobs["stage_in"]["job_id"])[0]
    tasks = job_records(info, jobs["process"]["job_id"])
    stage_out = job_records(info, jobs["stage_out"]["job_id"])[0]
    assert len(tasks) == 6 and {t["JobState"] for t in tasks} == {"COMPLETED"}
    assert all(when(t["StartTime"]) >= when(stage_in["EndTime"]) for t in tasks)
    assert when(stage_out["StartTime"]) >= max(when(t["EndTime"]) for t in tasks)
    for record in (stage_out, *tasks):
        assert record["JobState"] == "COMPLETED"
    workdir = f"/home/{info.user}/.eohpc/pipelines/{name}"
    first = ledger_records(info, workdir)
    assert {s: r["attempts"] for s, r in first.items()} == {
        f"{s}.txt": 2 if s == CORRUPT else 1 for s in SCENES
    }

    # Replace the corrupt input: the re-run processes exactly that scene.
    write_inputs(exchange / "src", corrupt=False)
    chown_tree(exchange, info.user)
    again = pipe_launcher.run("--uid", "sandbox", "--mode", "pipeline", "--file", str(path),
                              "--json", timeout=600)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "6 scenes, 5 done already, 1 to process" in again.stderr
    second = ledger_records(info, workdir)
    assert {s: r["attempts"] for s, r in second.items()} == {
        f"{s}.txt": 3 if s == CORRUPT else 1 for s in SCENES
    }
    assert all(r["state"] == "done" for r in second.values())
    assert (exchange / "dst" / "scene4.txt" / "result.out").read_text() == "DATA SCENE4\n"
    rep2 = json.loads(again.stdout.strip().splitlines()[-1])
    assert rep2["ok"] and rep2["done"] == 6

    # The report pages: the first run's by its id, the newest without one; saved privately.
    page = pipe_launcher.run("--uid", "sandbox", "--mode", "report", "--job", rep["run"],
                             "--no-browser")  # fmt: skip
    assert page.returncode == 0, page.stderr
    saved = Path(re.search(r"report of pipeline \S+: (\S+)", page.stderr).group(1))  # type: ignore[union-attr]
    text = saved.read_text()
    assert "corrupt input scene4.txt" in text and 'id="timeline-svg"' in text
    assert rep["run"] in text and oct(saved.stat().st_mode & 0o777) == "0o600"
    cluster_page = Path(f"/home/{info.user}/.eohpc/runs/{rep['run']}/report.html")
    assert oct(cluster_page.stat().st_mode & 0o777) == "0o600"
    newest = pipe_launcher.run("--uid", "sandbox", "--mode", "report", "--no-browser")
    assert newest.returncode == 0 and f"report of pipeline {rep2['run']}:" in newest.stderr
    for bad, says in (("../x", "is not a pipeline id"), ("nosuchrun", "no pipeline run")):
        refused = pipe_launcher.run("--uid", "sandbox", "--mode", "report", "--job", bad,
                                    "--no-browser")  # fmt: skip
        assert refused.returncode == 2 and says in refused.stderr, refused.stderr

    # The secrets file stayed private; nothing of it in a job script.
    run_dir = rep2["run"]
    env_file = Path(f"/home/{info.user}/.eohpc/runs/{run_dir}/rclone.env")
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    assert oct(env_file.parent.stat().st_mode & 0o777) == "0o700"


def test_failing_stage_in_cancels_the_downstream_jobs(
    pipe_launcher: Launcher, exchange: Path, tmp_path: Path
) -> None:
    info = pipe_launcher.info
    assert info is not None
    chown_tree(exchange, info.user)
    hook_out = tmp_path / "hook.json"
    hook_out.touch()
    hook_out.chmod(0o666)
    path = pipeline_file(
        tmp_path, exchange, f"nosrc-{os.getpid()}", "does-not-exist",
        on_failure={"command": f"cat > {hook_out}"},
    )  # fmt: skip
    proc = pipe_launcher.run("--uid", "sandbox", "--mode", "pipeline", "--file", str(path),
                             "--json", timeout=600)  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    rep = json.loads(proc.stdout.strip().splitlines()[-1])
    states = {step: job["state"] for step, job in rep["jobs"].items()}
    assert states["stage_in"] == "FAILED", states
    assert states["process"] == "CANCELLED" and states["stage_out"] == "CANCELLED", states
    assert re.search(r"step stage_in \(job \d+\) ended FAILED", rep["error"])
    assert rep["pending"] == 6 and not rep["ok"]
    # Nothing of the pipeline is left pending on a dependency that can never be satisfied.
    assert pipe_launcher.squeue() == ""
    # on_failure received the same report.
    assert json.loads(hook_out.read_text())["error"] == rep["error"]


def test_detached_pipeline_status_logs_stop_and_no_secret_shown(
    pipe_launcher: Launcher, exchange: Path, tmp_path: Path
) -> None:
    info = pipe_launcher.info
    assert info is not None
    write_inputs(exchange / "src", corrupt=False)
    chown_tree(exchange, info.user)
    secret = f"s3cr3t-{os.getpid()}-value"
    pipe_launcher.env["PIPE_SECRET"] = secret
    path = pipeline_file(tmp_path, exchange, f"slow-{os.getpid()}", "src")
    doc = yaml.safe_load(path.read_text())
    doc["process"]["command"] = "echo working on {scene}; sleep 120"
    doc["remotes"]["src"]["env"] = {"description": "PIPE_SECRET"}
    path.write_text(yaml.safe_dump(doc))
    proc = pipe_launcher.run("--uid", "sandbox", "--mode", "pipeline", "--file", str(path),
                             "--detach")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    pipe_id = proc.stdout.strip().splitlines()[-1]
    assert pipe_id.startswith("sandbox-pipe-slow-")

    def running() -> bool:
        out = pipe_launcher.run("--uid", "sandbox", "--mode", "status", "--job", pipe_id,
                                "--json").stdout  # fmt: skip
        return "RUNNING" in json.loads(out).get("process", "")

    assert wait_until(running, 120, 2)
    status = json.loads(
        pipe_launcher.run("--uid", "sandbox", "--mode", "status", "--job", pipe_id, "--json").stdout
    )
    assert status["stage_in"].endswith("COMPLETED") and status["kind"] == "pipeline"
    job_ids = [status[step].split()[0] for step in ("stage_in", "process", "stage_out")]
    assert wait_until(
        lambda: "working on" in pipe_launcher.run(
            "--uid", "sandbox", "--mode", "logs", "--job", job_ids[1]).stdout, 60, 2
    )  # fmt: skip
    # The report page of the running pipeline: the scenes being worked on, stage-in done.
    page = pipe_launcher.run("--uid", "sandbox", "--mode", "report", "--job", pipe_id,
                             "--no-browser")  # fmt: skip
    assert page.returncode == 0, page.stderr
    saved = Path(re.search(r"report of pipeline \S+: (\S+)", page.stderr).group(1))  # type: ignore[union-attr]
    text = saved.read_text()
    assert "in progress" in text and "scene1.txt" in text and ">stage-in<" in text
    assert secret not in text
    # The secret is in no process's command line and in no job record or script.
    ps = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
    assert secret not in ps
    for job in job_ids:
        assert secret not in pipe_launcher.scontrol_job(job)
    stop = pipe_launcher.run("--uid", "sandbox", "--mode", "stop", "--job", pipe_id)
    assert stop.returncode == 0, stop.stderr
    assert wait_until(lambda: pipe_launcher.squeue() == "", 60)
