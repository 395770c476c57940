"""--mode pipeline on the PBS rig: stage-in, an array job (``qsub -J``) of one task per scene,
stage-out, chained with ``-W depend=afterok``, with the same file, ledger and report as on
SLURM (test_pipeline.py).

The rclone remotes are `alias` remotes onto a directory of the rig's root that the cluster
user owns; the test reads and writes it from this machine through the root's path.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from eoshared import ledger
from tests.support.pipeline_inputs import CHECK, CORRUPT, SCENES, give_to_user, write_inputs
from tests.support.pipeline_records import expected_attempts, timeline_of
from tests.support.rig_sites import OtherLauncher, launcher_on
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.pbs, pytest.mark.slow, pytest.mark.timeout(900)]

#: The exchange directory, as the cluster sees it.
EXCHANGE = f"/var/tmp/eo-pipe-{os.getpid()}"


@pytest.fixture
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OtherLauncher]:
    yield from launcher_on(request, "pbs", tmp_path)


@pytest.fixture
def exchange(site: OtherLauncher) -> Iterator[Path]:
    """The remotes' directory (source ``src/``, destination ``dst/``), as this machine sees
    it; owned by the cluster user."""
    chroot = site.rig_module.RIG  # type: ignore[attr-defined]
    path = chroot.host_path(EXCHANGE)
    for sub in ("src", "dst"):
        (path / sub).mkdir(parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def pipeline_file(tmp_path: Path, name: str, src: str, **extra: object) -> Path:
    doc = {
        "name": name,
        "scenes": {"glob": "*.txt"},
        "stage_in": {"from": f"src:{src}"},
        "process": {"command": CHECK, "retries": 1, "parallel": 3},
        "stage_out": {"to": "dst:"},
        "remotes": {
            "src": {"type": "alias", "remote": EXCHANGE},
            "dst": {"type": "alias", "remote": f"{EXCHANGE}/dst"},
        },
        **extra,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def qstat(site: OtherLauncher, job_id: str) -> dict[str, object]:
    """``qstat -f -F json -x`` of one job (an array job's subjobs with ``-t``)."""
    chroot = site.rig_module.RIG  # type: ignore[attr-defined]
    out = chroot.sh(f"qstat -f -F json -x {job_id}").stdout
    return dict(next(iter(json.loads(out)["Jobs"].values())))


def subjobs(site: OtherLauncher, job_id: str) -> list[dict[str, object]]:
    chroot = site.rig_module.RIG  # type: ignore[attr-defined]
    out = chroot.sh(f"qstat -f -F json -x -t {job_id}").stdout
    jobs = json.loads(out)["Jobs"]
    return [job for name, job in jobs.items() if "[]" not in name]


def when(value: object) -> datetime:
    """A time as qstat writes it (``Mon Dec  7 15:03:00 2026``)."""
    return datetime.strptime(str(value), "%a %b %d %H:%M:%S %Y")


def ledger_of(site: OtherLauncher, name: str) -> dict[str, ledger.SceneRecord]:
    chroot = site.rig_module.RIG  # type: ignore[attr-defined]
    user = site.rig_module.CLUSTER_USER  # type: ignore[attr-defined]
    workdir = chroot.host_path(f"/home/{user}/.eohpc/pipelines/{name}")
    return ledger.Ledger(workdir / ledger.LEDGER_NAME).records()


def test_six_scenes_one_corrupt_then_rerun(
    site: OtherLauncher, exchange: Path, tmp_path: Path
) -> None:
    write_inputs(exchange / "src", corrupt=True)
    give_to_user(site, exchange)
    name = f"six-{os.getpid()}"
    path = pipeline_file(tmp_path, name, "src")
    proc = site.run("--uid", "sandbox", "--mode", "pipeline", "--file", str(path), "--json",
                    timeout=600)  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    rep = json.loads(proc.stdout.strip().splitlines()[-1])
    failed = {r["scene"]: r for r in rep["scenes"] if r["state"] == "failed"}
    assert list(failed) == [f"{CORRUPT}.txt"], rep
    assert "corrupt input scene4.txt" in failed[f"{CORRUPT}.txt"]["error"]
    assert "exit status 3" in failed[f"{CORRUPT}.txt"]["error"]
    assert failed[f"{CORRUPT}.txt"]["attempts"] == 2  # the first try and one retry
    assert rep["done"] == 5 and not rep["ok"]
    assert "5 of 6 scenes done, 1 failed" in proc.stderr
    assert timeline_of(rep) == (expected_attempts(SCENES, CORRUPT), {"stage_in": 0, "stage_out": 0})
    results = sorted(p.name for p in (exchange / "dst").iterdir())
    assert results == [f"{s}.txt" for s in SCENES if s != CORRUPT]
    assert (exchange / "dst" / "scene1.txt" / "result.out").read_text() == "DATA SCENE1\n"
    # One array job of six subjobs between stage-in and stage-out, chained by afterok, each
    # ending with Exit_status 0 (a scene's failure is the ledger's, not the task's).
    jobs = rep["jobs"]
    assert re.fullmatch(r"\d+\[\]\.\S+", jobs["process"]["job_id"]), jobs
    stage_in, stage_out = (
        qstat(site, jobs["stage_in"]["job_id"]),
        qstat(site, jobs["stage_out"]["job_id"]),
    )
    tasks = subjobs(site, jobs["process"]["job_id"])
    assert len(tasks) == 6 and {t["Exit_status"] for t in tasks} == {0}, tasks
    assert stage_in["Exit_status"] == 0 and stage_out["Exit_status"] == 0
    # PBS keeps the chain as each job's "beforeok" once the later job may start.
    process = qstat(site, jobs["process"]["job_id"])
    assert f"beforeok:{jobs['process']['job_id']}" in str(stage_in["depend"])
    assert f"beforeok:{jobs['stage_out']['job_id']}" in str(process["depend"])
    assert all(when(t["stime"]) >= when(stage_in["obittime"]) for t in tasks)
    assert when(stage_out["stime"]) >= max(when(t["obittime"]) for t in tasks)
    assert {s: r.attempts for s, r in ledger_of(site, name).items()} == {
        f"{s}.txt": 2 if s == CORRUPT else 1 for s in SCENES
    }
    tasks_named = {r.task for r in ledger_of(site, name).values()}
    assert all(re.fullmatch(r"\d+\[\d\]\.\S+", t) for t in tasks_named), tasks_named

    # Replace the corrupt input: the re-run processes exactly that scene (a one-task array).
    write_inputs(exchange / "src", corrupt=False)
    give_to_user(site, exchange)
    again = site.run("--uid", "sandbox", "--mode", "pipeline", "--file", str(path), "--json",
                     timeout=600)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "6 scenes, 5 done already, 1 to process" in again.stderr
    second = ledger_of(site, name)
    assert {s: r.attempts for s, r in second.items()} == {
        f"{s}.txt": 3 if s == CORRUPT else 1 for s in SCENES
    }
    assert all(r.state == ledger.DONE for r in second.values())
    assert (exchange / "dst" / "scene4.txt" / "result.out").read_text() == "DATA SCENE4\n"
    rep2 = json.loads(again.stdout.strip().splitlines()[-1])
    assert rep2["ok"] and rep2["done"] == 6
    assert len(subjobs(site, rep2["jobs"]["process"]["job_id"])) == 1


def test_failing_stage_in_leaves_nothing_queued_and_says_which_step(
    site: OtherLauncher, exchange: Path, tmp_path: Path
) -> None:
    give_to_user(site, exchange)
    hook_out = tmp_path / "hook.json"
    hook_out.touch()
    hook_out.chmod(0o666)
    path = pipeline_file(
        tmp_path, f"nosrc-{os.getpid()}", "does-not-exist",
        scenes=[f"{s}.txt" for s in SCENES], on_failure={"command": f"cat > {hook_out}"},
    )  # fmt: skip
    proc = site.run("--uid", "sandbox", "--mode", "pipeline", "--file", str(path), "--json",
                    timeout=600)  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    rep = json.loads(proc.stdout.strip().splitlines()[-1])
    assert re.search(r"step stage_in \(job \S+\) ended F, exit status [1-9]", rep["error"]), rep
    # The steps after it never ran: PBS deleted them (no Exit_status) or the launcher did.
    for step in ("process", "stage_out"):
        assert "Exit_status" not in qstat(site, rep["jobs"][step]["job_id"]), step
    assert rep["pending"] == 6 and not rep["ok"]
    assert site.queue() == ""
    assert json.loads(hook_out.read_text())["error"] == rep["error"]


def test_detached_pipeline_status_logs_and_stop(
    site: OtherLauncher, exchange: Path, tmp_path: Path
) -> None:
    write_inputs(exchange / "src", corrupt=False)
    give_to_user(site, exchange)
    path = pipeline_file(tmp_path, f"slow-{os.getpid()}", "src")
    doc = yaml.safe_load(path.read_text())
    doc["process"]["command"] = "echo working on {scene}; sleep 120"
    path.write_text(yaml.safe_dump(doc))
    proc = site.run("--uid", "sandbox", "--mode", "pipeline", "--file", str(path), "--detach")
    assert proc.returncode == 0, proc.stderr
    pipe_id = proc.stdout.strip().splitlines()[-1]
    assert pipe_id.startswith("sandbox-pipe-slow-")

    def status() -> dict[str, str]:
        out = site.run("--uid", "sandbox", "--mode", "status", "--job", pipe_id, "--json")
        return dict(json.loads(out.stdout))

    # The array job begun (B), three tasks at once (parallel: 3), each scene counted.
    assert wait_until(lambda: status().get("process", "").endswith(" B"), 120, 2)
    assert wait_until(lambda: "3 running" in status().get("scenes", ""), 60, 2), status()
    now = status()
    assert now["stage_in"].endswith(" F") and now["kind"] == "pipeline"
    assert now["scenes"] == "0 done, 3 running, 0 failed, 3 pending of 6", now
    logs = site.run("--uid", "sandbox", "--mode", "logs", "--job", pipe_id).stdout
    assert "working on scene" in logs
    stop = site.run("--uid", "sandbox", "--mode", "stop", "--job", pipe_id)
    assert stop.returncode == 0, stop.stderr
    assert wait_until(lambda: site.queue() == "", 60), site.queue()
    processes = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True)
    assert "sleep 120" not in processes.stdout
