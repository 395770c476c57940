"""A pipeline whose scenes run as the MPI ranks of one job (process.mpi): on the two-namespace
SLURM rig's partition of two compute nodes, Debian's OpenMPI starts the ranks (mpirun inside
the allocation), mpi4py tells each its rank, each rank takes its share of the scenes and writes
the ledger itself; on the PBS rig, mpirun takes the job's node file (two chunks on its one
MOM)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.launcher_run import Launcher
from tests.support.pipeline_inputs import (
    CHECK,
    CORRUPT,
    SCENES,
    chown_tree,
    give_to_user,
    write_inputs,
)
from tests.support.pipeline_records import (
    expected_attempts,
    job_records,
    ledger_records,
    timeline_of,
)
from tests.support.rig_sites import OtherLauncher, launcher_on

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.mark.netns
def test_scenes_as_mpi_ranks_on_two_nodes_then_rerun(
    multi_node: Launcher, exchange: Path, tmp_path: Path
) -> None:
    info = multi_node.info
    assert info is not None
    write_inputs(exchange / "src", corrupt=True)
    chown_tree(exchange, info.user)
    name = f"mpi-{os.getpid()}"
    doc = {
        "name": name,
        "scenes": {"glob": "*.txt"},
        "stage_in": {"from": "src:src"},
        # each rank asks for all 8 CPUs a rig node declares: SLURM puts the two on two nodes
        "process": {
            "command": CHECK + " && hostname > {output}/host",
            "retries": 1,
            "mpi": 2,
            "cpus": 8,
        },
        "stage_out": {"to": "dst:"},
        "remotes": {
            "src": {"type": "alias", "remote": str(exchange)},
            "dst": {"type": "alias", "remote": str(exchange / "dst")},
        },
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    first = multi_node.run("--uid", "whole-nodes", "--mode", "pipeline", "--file", str(path),
                           "--json", timeout=600)  # fmt: skip
    assert first.returncode == 1, first.stdout + first.stderr
    assert "6 scenes on 2 MPI ranks of one job, up to 3 scenes each (mpirun)" in first.stderr
    rep = json.loads(first.stdout.strip().splitlines()[-1])
    assert rep["done"] == 5 and not rep["ok"]
    failed = {r["scene"]: r for r in rep["scenes"] if r["state"] == "failed"}
    assert list(failed) == [f"{CORRUPT}.txt"] and failed[f"{CORRUPT}.txt"]["attempts"] == 2
    assert "corrupt input scene4.txt" in failed[f"{CORRUPT}.txt"]["error"]
    assert timeline_of(rep) == (expected_attempts(SCENES, CORRUPT), {"stage_in": 0, "stage_out": 0})
    # one job of two ranks processed the scenes: rank r took scenes r, r + 2, r + 4
    process_job = rep["jobs"]["process"]["job_id"]
    (record,) = job_records(info, process_job)
    assert record["NumNodes"] == "2" and record["NumTasks"] == "2", record
    tasks = {str(a["scene"]): str(a["task"]) for a in rep["attempts"]}
    scenes = sorted(f"{s}.txt" for s in SCENES)
    assert tasks == {s: f"{process_job}.{i % 2}" for i, s in enumerate(scenes)}, tasks
    hosts = {(exchange / "dst" / s / "host").read_text().strip() for s in tasks if s in (
        f"{x}.txt" for x in SCENES if x != CORRUPT)}  # fmt: skip
    assert hosts == {info.compute_hostname, info.second_compute_hostname}

    # The corrupt input replaced: the re-run gives its one scene to one rank.
    write_inputs(exchange / "src", corrupt=False)
    chown_tree(exchange, info.user)
    again = multi_node.run("--uid", "whole-nodes", "--mode", "pipeline", "--file", str(path),
                           "--json", timeout=600)  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert "6 scenes, 5 done already, 1 to process" in again.stderr
    assert "1 scenes on 1 MPI ranks of one job" in again.stderr
    workdir = f"/home/{info.user}/.eohpc/pipelines/{name}"
    records = ledger_records(info, workdir)
    assert {s: r["attempts"] for s, r in records.items()} == {
        f"{s}.txt": 3 if s == CORRUPT else 1 for s in SCENES
    }
    assert all(r["state"] == "done" for r in records.values())


PBS_EXCHANGE = f"/var/tmp/eo-mpi-{os.getpid()}"


@pytest.fixture
def pbs_site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OtherLauncher]:
    yield from launcher_on(request, "pbs", tmp_path)


@pytest.mark.pbs
def test_pbs_scenes_as_mpi_ranks(pbs_site: OtherLauncher, tmp_path: Path) -> None:
    chroot = pbs_site.rig_module.RIG  # type: ignore[attr-defined]
    exchange = chroot.host_path(PBS_EXCHANGE)
    for sub in ("src", "dst"):
        (exchange / sub).mkdir(parents=True)
    try:
        write_inputs(exchange / "src", corrupt=True)
        give_to_user(pbs_site, exchange)
        name = f"mpi-{os.getpid()}"
        doc = {
            "name": name,
            "scenes": {"glob": "*.txt"},
            "stage_in": {"from": "src:src"},
            "process": {"command": CHECK, "retries": 1, "mpi": 2},
            "stage_out": {"to": "dst:"},
            "remotes": {
                "src": {"type": "alias", "remote": PBS_EXCHANGE},
                "dst": {"type": "alias", "remote": f"{PBS_EXCHANGE}/dst"},
            },
        }
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(doc))
        run = pbs_site.run("--uid", "sandbox", "--mode", "pipeline", "--file", str(path),
                           "--json", timeout=600)  # fmt: skip
        assert run.returncode == 1, run.stdout + run.stderr
        rep = json.loads(run.stdout.strip().splitlines()[-1])
        assert rep["done"] == 5 and not rep["ok"]
        assert [r["scene"] for r in rep["scenes"] if r["state"] == "failed"] == [f"{CORRUPT}.txt"]
        assert timeline_of(rep) == (
            expected_attempts(SCENES, CORRUPT),
            {"stage_in": 0, "stage_out": 0},
        )
        process_job = rep["jobs"]["process"]["job_id"]
        tasks = {str(a["task"]) for a in rep["attempts"]}
        assert tasks == {f"{process_job}.0", f"{process_job}.1"}, tasks
        results = sorted(p.name for p in (exchange / "dst").iterdir())
        assert results == [f"{s}.txt" for s in SCENES if s != CORRUPT]
    finally:
        shutil.rmtree(exchange, ignore_errors=True)
