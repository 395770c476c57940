"""A pipeline of more scenes than one job array may hold, on each batch system's rig.

Each rig is set up like a site with a low array limit (SLURM ``MaxArraySize=100`` in the
rig's slurm.conf, PBS ``max_array_size`` set to 100 for the test, HTCondor
``MAX_JOBS_PER_SUBMISSION = 100`` in the pool's config), so that 2,500 tiny scenes need 25 per
task: every scene is done and reported exactly once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from eoshared import ledger
from tests.support.rig_sites import BATCH_SYSTEMS, RigSite, launcher_on, slurm_site

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(900)]

SCENES = [f"tile-{i:04d}" for i in range(2500)]
#: The array limit each rig is set up with, and its name in the batch system's words.
LIMIT = 100
LIMIT_NAMES = {
    "slurm": "SLURM's MaxArraySize",
    "pbs": "PBS's max_array_size",
    "htcondor": "HTCondor's MAX_JOBS_PER_SUBMISSION",
}


@pytest.fixture(params=BATCH_SYSTEMS)
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RigSite]:
    if request.param == "slurm":
        yield from slurm_site(request, tmp_path)
        return
    launcher = launcher_on(request, request.param, tmp_path)
    site = next(launcher)
    chroot = site.rig_module.RIG  # type: ignore[attr-defined]
    if request.param == "pbs":
        chroot.sh(f"qmgr -c 'set server max_array_size = {LIMIT}'")
    try:
        yield site
    finally:
        if request.param == "pbs":
            chroot.sh("qmgr -c 'unset server max_array_size'", check=False)
        next(launcher, None)


def on_this_machine(site: RigSite, path: str) -> Path:
    """A path of the cluster as this machine sees it (a PBS or HTCondor rig's root)."""
    module = getattr(site, "rig_module", None)
    return Path(path) if module is None else module.RIG.host_path(path)  # type: ignore[attr-defined]


def test_more_scenes_than_an_array_holds_are_each_done_once(site: RigSite, tmp_path: Path) -> None:
    name = f"scale-{os.getpid()}"
    doc = {
        "name": name,
        "scenes": SCENES,
        "process": {
            "command": "echo {scene} > {output}/r.txt",
            "parallel": 8,
            "time": "00:05:00",
            "retries": 0,
        },
    }
    path = tmp_path / "scale.yaml"
    path.write_text(yaml.safe_dump(doc))
    proc = site.run("--uid", "sandbox", "--mode", "pipeline", "--file", str(path), "--json",
                    timeout=840)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    said = " ".join(proc.stderr.split())
    assert (
        f"2500 scenes in {LIMIT} array tasks of up to 25 scenes each "
        f"({LIMIT_NAMES[site.system]} is {LIMIT}); a task asks for 25 times the process time: "
        "2:05:00"
    ) in said, said
    rep = json.loads(proc.stdout.strip().splitlines()[-1])
    assert rep["ok"] and rep["done"] == 2500 and rep["total"] == 2500
    assert sorted(r["scene"] for r in rep["scenes"]) == SCENES
    user = site.info.user if site.info is not None else ""
    workdir = on_this_machine(site, f"/home/{user}/.eohpc/pipelines/{name}")
    records = ledger.Ledger(workdir / ledger.LEDGER_NAME).records()
    assert sorted(records) == SCENES
    assert {(r.state, r.attempts) for r in records.values()} == {(ledger.DONE, 1)}
    # LIMIT array tasks, each with its own output file, each named in the ledger.
    tasks = {r.task for r in records.values()}
    assert len(tasks) == LIMIT, sorted(tasks)[:5]
    assert (workdir / "output" / "tile-2499" / "r.txt").read_text() == "tile-2499\n"
    run_dir = on_this_machine(site, f"/home/{user}/.eohpc/runs/{rep['run']}")
    assert len(list(run_dir.glob("job-process-*.out"))) == LIMIT
