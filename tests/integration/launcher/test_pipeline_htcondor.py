"""--mode pipeline on the HTCondor rig: a DAG run by DAGMan (stage-in, one node of one job per
scene, stage-out), watched, reported, stopped.

As on SLURM (tests/integration/launcher/test_pipeline.py) the rclone remotes are `alias` remotes
onto directories of the rig's root that the cluster user owns.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from eoshared import ledger
from tests.support.pipeline_inputs import CORRUPT, SCENES, give_to_user, write_inputs
from tests.support.pipeline_records import expected_attempts, timeline_of
from tests.support.rig_sites import OtherLauncher, launcher_on
from tests.support.waiting import wait_until

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.htcondor,
    pytest.mark.slow,
    pytest.mark.timeout(900),
]

PARALLEL = 2
#: The processing command: counts the tasks running at once (in the work directory), refuses an
#: input that is not "DATA ...", writes its result.
CHECK = (
    "mkdir -p {workdir}/running && touch {workdir}/running/{scene} && "
    "ls {workdir}/running | wc -l >> {workdir}/concurrency && sleep 3; "
    "rm -f {workdir}/running/{scene}; "
    "grep -q '^DATA' {input}/{scene} || {{ echo corrupt input {scene} >&2; exit 3; }}; "
    "tr a-z A-Z < {input}/{scene} > {output}/result.out"
)


@pytest.fixture
def condor(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OtherLauncher]:
    yield from launcher_on(request, "htcondor", tmp_path)


def root_of(site: OtherLauncher) -> Path:
    assert site.info is not None
    return Path(site.info.extra["root"])


@pytest.fixture
def exchange(condor: OtherLauncher) -> Iterator[tuple[Path, str]]:
    """A directory of the root the cluster user owns: (its path here, its path on the cluster)."""
    inside = f"/var/tmp/eo-pipe-{os.getpid()}"
    path = root_of(condor) / inside.lstrip("/")
    shutil.rmtree(path, ignore_errors=True)
    for sub in ("src", "dst"):
        (path / sub).mkdir(parents=True)
    yield path, inside
    shutil.rmtree(path, ignore_errors=True)


def pipeline_file(
    tmp_path: Path, inside: str, name: str, src: str, **extra: object
) -> tuple[Path, dict[str, Any]]:
    doc = {
        "name": name,
        "scenes": {"glob": "*.txt"} if extra.pop("glob", False) else [f"{s}.txt" for s in SCENES],
        "stage_in": {"from": f"src:{src}"},
        "process": {"command": CHECK, "retries": 1, "parallel": PARALLEL},
        "stage_out": {"to": "dst:"},
        "remotes": {
            "src": {"type": "alias", "remote": inside},
            "dst": {"type": "alias", "remote": f"{inside}/dst"},
        },
        **extra,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path, doc


def history(site: OtherLauncher, constraint: str) -> list[dict[str, Any]]:
    """condor_history's ads of the cluster user's jobs that match ``constraint``."""
    out = site.rig_module.RIG.sh(  # type: ignore[attr-defined]
        f"condor_history -constraint '{constraint}' -json", user=site.info.user, check=False
    ).stdout  # type: ignore[union-attr]
    return json.loads(out) if out.strip() else []


def dag_of(site: OtherLauncher, node_job: str) -> list[dict[str, Any]]:
    """The DAGMan job of a node job and all its node jobs, from condor_history once DAGMan
    has ended (a few seconds after its last node)."""
    cluster = node_job.split(".")[0]
    [node] = history(site, f"ClusterId == {cluster} && ProcId == 0")
    dagman = node["DAGManJobId"]
    assert wait_until(lambda: history(site, f"ClusterId == {dagman}") != [], 60)
    return history(site, f"ClusterId == {dagman} || DAGManJobId == {dagman}")


def run_pipeline(site: OtherLauncher, path: Path) -> tuple[int, dict[str, Any], str]:
    proc = site.run("--uid", "sandbox", "--mode", "pipeline", "--file", str(path), "--json",
                    timeout=600)  # fmt: skip
    return proc.returncode, json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def test_six_scenes_one_corrupt_then_rerun(
    condor: OtherLauncher, exchange: tuple[Path, str], tmp_path: Path
) -> None:
    info = condor.info
    assert info is not None
    path_here, inside = exchange
    write_inputs(path_here / "src", corrupt=True)
    give_to_user(condor, path_here)
    name = f"dag-{os.getpid()}"
    path, _ = pipeline_file(tmp_path, inside, name, "src", glob=True)
    code, rep, stderr = run_pipeline(condor, path)
    assert code == 1, stderr
    # The report names the corrupt scene, its exit status and its attempts; the table too.
    failed = {r["scene"]: r for r in rep["scenes"] if r["state"] == "failed"}
    assert list(failed) == [f"{CORRUPT}.txt"], rep
    assert "corrupt input scene4.txt" in failed[f"{CORRUPT}.txt"]["error"]
    assert "exit status 3" in failed[f"{CORRUPT}.txt"]["error"]
    assert failed[f"{CORRUPT}.txt"]["attempts"] == 2  # the first try and one retry
    assert rep["done"] == 5 and not rep["ok"] and rep["error"] == ""
    assert "5 of 6 scenes done, 1 failed" in stderr
    assert timeline_of(rep) == (expected_attempts(SCENES, CORRUPT), {"stage_in": 0, "stage_out": 0})
    assert "runs the DAG pipeline.dag (stage_in -> process -> stage_out)" in stderr
    results = sorted(p.name for p in (path_here / "dst").iterdir())
    assert results == [f"{s}.txt" for s in SCENES if s != CORRUPT]
    assert (path_here / "dst" / "scene1.txt" / "result.out").read_text() == "DATA SCENE1\n"
    # One DAG: its nodes ran in order, the array's six jobs at most PARALLEL at once.
    assert {step: job["state"] for step, job in rep["jobs"].items()} == dict.fromkeys(
        ("stage_in", "process", "stage_out"), "COMPLETED"
    )
    ads = dag_of(condor, rep["jobs"]["stage_in"]["job_id"])
    [dagman] = [ad for ad in ads if "DAGNodeName" not in ad]
    assert dagman["DAG_Status"] == 0 and dagman["DAG_NodesDone"] == 3
    nodes: dict[str, list[dict[str, Any]]] = {}
    for ad in ads:
        if "DAGNodeName" in ad:
            nodes.setdefault(ad["DAGNodeName"], []).append(ad)
    assert {node: len(jobs) for node, jobs in nodes.items()} == {
        "stage_in": 1, "process": 6, "stage_out": 1,
    }  # fmt: skip
    assert {ad["JobBatchName"] for ad in ads} == {f"eohpc-pipe-{name}"}
    assert str(nodes["process"][0]["ClusterId"]) == rep["jobs"]["process"]["job_id"]
    ended_in = nodes["stage_in"][0]["CompletionDate"]
    assert all(ad["JobStartDate"] >= ended_in for ad in nodes["process"])
    assert nodes["stage_out"][0]["JobStartDate"] >= max(
        ad["CompletionDate"] for ad in nodes["process"]
    )
    workdir = root_of(condor) / f"home/{info.user}/.eohpc/pipelines/{name}"
    at_once = [int(n) for n in (workdir / "concurrency").read_text().split()]
    assert len(at_once) == 7 and max(at_once) == PARALLEL, at_once  # 7: scene4's retry
    first = ledger.Ledger(workdir / ledger.LEDGER_NAME).records()
    assert {s: r.attempts for s, r in first.items()} == {
        f"{s}.txt": 2 if s == CORRUPT else 1 for s in SCENES
    }
    assert re.fullmatch(r"\d+\.\d", first["scene1.txt"].task)  # the array job's id.proc
    run_dir = root_of(condor) / f"home/{info.user}/.eohpc/runs/{rep['run']}"
    assert "PARENT stage_in CHILD process" in (run_dir / "pipeline.dag").read_text()
    assert sorted(p.name for p in run_dir.glob("job-process-*.out")) == [
        f"job-process-{i}.out" for i in range(6)
    ]

    # Replace the corrupt input: the re-run processes exactly that scene (the ledger says which
    # are done; no rescue DAG is involved).
    write_inputs(path_here / "src", corrupt=False)
    give_to_user(condor, path_here)
    code, rep2, stderr = run_pipeline(condor, path)
    assert code == 0, stderr
    assert "6 scenes, 5 done already, 1 to process" in stderr
    second = ledger.Ledger(workdir / ledger.LEDGER_NAME).records()
    assert {s: r.attempts for s, r in second.items()} == {
        f"{s}.txt": 3 if s == CORRUPT else 1 for s in SCENES
    }
    assert rep2["ok"] and rep2["done"] == 6
    assert (path_here / "dst" / "scene4.txt" / "result.out").read_text() == "DATA SCENE4\n"
    run_dir2 = root_of(condor) / f"home/{info.user}/.eohpc/runs/{rep2['run']}"
    assert not list(run_dir2.glob("*.rescue*"))
    assert oct((run_dir2 / "rclone.env").stat().st_mode & 0o777) == "0o600"


def test_failing_stage_in_leaves_nothing_queued(
    condor: OtherLauncher, exchange: tuple[Path, str], tmp_path: Path
) -> None:
    path_here, inside = exchange
    give_to_user(condor, path_here)
    hook_out = tmp_path / "hook.json"
    path, _ = pipeline_file(
        tmp_path, inside, f"dagnosrc-{os.getpid()}", "does-not-exist",
        on_failure={"command": f"cat > {hook_out}"},
    )  # fmt: skip
    code, rep, stderr = run_pipeline(condor, path)
    assert code == 1, stderr
    states = {step: job["state"] for step, job in rep["jobs"].items()}
    assert states == {"stage_in": "COMPLETED", "process": "NOT_RUN", "stage_out": "NOT_RUN"}
    assert re.search(r"step stage_in \(job \d+\.0\) ended COMPLETED, exit status \d+", rep["error"])
    assert "directory not found" in rep["error"]
    assert rep["pending"] == 6 and not rep["ok"]
    assert "DAGMan job" in stderr and "ended (a node failed) without submitting it" in stderr
    # DAGMan ended the DAG: the array and stage-out were never submitted, nothing is queued.
    assert condor.queue() == ""
    ads = dag_of(condor, rep["jobs"]["stage_in"]["job_id"])
    assert sorted(ad.get("DAGNodeName", "DAGMan") for ad in ads) == ["DAGMan", "stage_in"]
    assert [ad["DAG_Status"] for ad in ads if "DAGNodeName" not in ad] == [2]
    assert json.loads(hook_out.read_text())["error"] == rep["error"]


def test_detached_pipeline_status_logs_and_stop(
    condor: OtherLauncher, exchange: tuple[Path, str], tmp_path: Path
) -> None:
    path_here, inside = exchange
    write_inputs(path_here / "src", corrupt=False)
    give_to_user(condor, path_here)
    path, doc = pipeline_file(tmp_path, inside, f"dagslow-{os.getpid()}", "src")
    doc["process"]["command"] = "echo working on {scene}; sleep 120"
    path.write_text(yaml.safe_dump(doc))
    proc = condor.run("--uid", "sandbox", "--mode", "pipeline", "--file", str(path), "--detach")
    assert proc.returncode == 0, proc.stderr
    pipe_id = proc.stdout.strip().splitlines()[-1]
    assert pipe_id.startswith("sandbox-pipe-dagslow-")

    def status() -> dict[str, Any]:
        out = condor.run("--uid", "sandbox", "--mode", "status", "--job", pipe_id, "--json")
        return dict(json.loads(out.stdout))

    assert wait_until(lambda: "RUNNING" in status().get("process", ""), 180, 2)
    record = status()
    assert record["kind"] == "pipeline" and record["stage_in"].endswith("COMPLETED")
    assert re.fullmatch(r"\d+ RUNNING \(\d of 6 tasks ended, [12] running\)", record["process"])
    assert re.fullmatch(
        r"\d+\.0 WAITING \(DAGMan job \d+\.0 submits it once process has succeeded.*\)",
        record["stage_out"],
    )
    assert re.fullmatch(r"0 done, [12] running, 0 failed, [45] pending of 6", record["scenes"])
    assert wait_until(
        lambda: "working on" in condor.run(
            "--uid", "sandbox", "--mode", "logs", "--job", pipe_id).stdout, 60, 2
    )  # fmt: skip
    jobs = condor.rig_module.job_names()  # type: ignore[attr-defined]
    assert {name for name, _ in jobs.values()} == {f"eohpc-pipe-{doc['name']}"}
    assert len(jobs) == 1 + PARALLEL, jobs  # DAGMan and the array's jobs running at once
    stop = condor.run("--uid", "sandbox", "--mode", "stop", "--job", pipe_id)
    assert stop.returncode == 0, stop.stderr
    assert wait_until(lambda: condor.queue() == "", 60), condor.queue()
    gone = condor.run("--uid", "sandbox", "--mode", "status", "--job", pipe_id)
    assert gone.returncode != 0
