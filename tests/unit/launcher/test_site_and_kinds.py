"""The two interfaces of the lifecycle: the site it drives (JobSite) and the kind of job
(JobKind) it hands a saved job to, without asking which one it has."""

from __future__ import annotations

import io
import stat
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from eoshared.errors import ClusterSiteError
from eoshared.scheduler.contract import STATE_DIR_ENV
from launcher.config import load_site
from launcher.jobs.lifecycle import KINDS, Lifecycle, kind_class
from launcher.session import state as saved
from launcher.session.options import Options
from launcher.sites.local import LocalSite


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "state"))
    return tmp_path / "state"


def lifecycle(site: Any) -> tuple[Lifecycle, io.StringIO]:
    out = io.StringIO()
    return Lifecycle(site, Console(file=out, width=200)), out


@pytest.mark.parametrize(
    ("kind", "mode", "saved_as"),
    [
        (saved.BATCH, "--mode batch", "batch mode"),
        (saved.PIPELINE, "--mode pipeline", "a pipeline"),
    ],
)
def test_the_local_site_refuses_the_kinds_that_need_a_batch_system(
    state_dir: Path, kind: str, mode: str, saved_as: str
) -> None:
    site = LocalSite(load_site("local"))
    lc, _ = lifecycle(site)
    with pytest.raises(ClusterSiteError) as started:
        lc.start(kind, Options())
    assert str(started.value) == f"{mode} needs a cluster site; the local site has no batch system."
    assert started.value.exit_code == 1
    job = saved.SessionState("local", "local", "7", "/r", "", 0, kind=kind)
    saved.save(job)
    with pytest.raises(ClusterSiteError, match=f"^{saved_as} needs a cluster site"):
        lc.status_record("7")
    with pytest.raises(ClusterSiteError, match=f"^{saved_as} needs a cluster site"):
        lc.logs("7", False, 10, io.StringIO())
    with pytest.raises(ClusterSiteError, match=f"^{saved_as} needs a cluster site"):
        lc.stop_saved("7")
    assert saved.find("local", "7") is None  # a job this site cannot reach is forgotten


def test_the_local_site_refuses_the_session_scheduler(state_dir: Path) -> None:
    site = LocalSite(load_site("local"))
    with pytest.raises(ClusterSiteError, match=r"^--scheduler needs a cluster site"):
        site.submit_jupyter(8888, 3)
    assert not (state_dir / "runs").exists()  # refused before anything was made


def test_the_local_run_directory_is_private(state_dir: Path) -> None:
    run_dir = Path(LocalSite(load_site("local")).new_run_dir("local", {"a.json": "{}"}))
    assert run_dir.parent == state_dir / "runs"
    for path in (run_dir, run_dir / "dask"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
    for path in (run_dir / "a.json", run_dir / "dask" / "eohpc.yaml"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (run_dir / "a.json").read_text() == "{}"


class Recorder:
    """A kind that records what the lifecycle asked of it."""

    def __init__(self, name: str, calls: list[tuple[str, str, str]]) -> None:
        self.name, self.calls = name, calls

    def status_record(self, lc: Lifecycle, state: saved.SessionState) -> dict[str, Any]:
        self.calls.append((self.name, "status", state.job_id))
        return {"kind": self.name}

    def stop(self, lc: Lifecycle, state: saved.SessionState) -> None:
        self.calls.append((self.name, "stop", state.job_id))

    def logs(self, lc: Lifecycle, state: saved.SessionState, *args: Any) -> None:
        self.calls.append((self.name, "logs", state.job_id))

    def attach(self, lc: Lifecycle, state: saved.SessionState, options: Options) -> int:
        self.calls.append((self.name, "attach", state.job_id))
        return 0


class FakeSite:
    """A site whose kinds are Recorders."""

    def __init__(self) -> None:
        self.config = load_site("local")
        self.reconnect_for = 0.0
        self.calls: list[tuple[str, str, str]] = []

    def kind(self, cls: type) -> Recorder:
        names = {kind_class(name): name for name in KINDS}
        return Recorder(names[cls], self.calls)


def test_the_lifecycle_hands_each_saved_job_to_its_kind(state_dir: Path) -> None:
    site = FakeSite()
    lc, _ = lifecycle(site)
    for job_id, kind in (("1", saved.JUPYTER), ("2", saved.BATCH), ("3", saved.PIPELINE)):
        saved.save(saved.SessionState("local", "local", job_id, "/r", "", 0, kind=kind))
    for job_id in ("1", "2", "3"):
        lc.status_record(job_id)
        lc.logs(job_id, False, 5, io.StringIO())
        lc.stop_saved(job_id)
    lc.attach(Options())
    expected = [
        (kind, call, job_id)
        for job_id, kind in (("1", "jupyter"), ("2", "batch"), ("3", "pipeline"))
        for call in ("status", "logs", "stop")
    ]
    assert site.calls == [*expected, ("jupyter", "attach", "1")]


def test_every_saved_kind_has_a_class_that_says_where_it_runs() -> None:
    assert set(KINDS) == {saved.JUPYTER, saved.BATCH, saved.PIPELINE}
    assert kind_class(saved.JUPYTER).needs_cluster is None
    assert kind_class(saved.BATCH).needs_cluster == ("--mode batch", "batch mode")
    assert kind_class(saved.PIPELINE).needs_cluster == ("--mode pipeline", "a pipeline")


def test_old_local_run_directories_are_pruned(state_dir: Path) -> None:
    import os
    import time

    from launcher.sites.local import KEEP_RUN_DAYS, KEEP_RUNS, prune_runs

    runs = state_dir / "runs"
    runs.mkdir(parents=True)
    now = time.time()
    made = []
    for n in range(KEEP_RUNS + 5):
        path = runs / f"local-{n:03d}"
        path.mkdir()
        os.utime(path, (now - n * 60, now - n * 60))  # local-000 is the newest
        made.append(path)
    old = runs / "local-old"
    old.mkdir()
    os.utime(old, (now - (KEEP_RUN_DAYS + 1) * 86400,) * 2)
    live = runs / "local-live"
    live.mkdir()
    os.utime(live, (now - 400 * 86400,) * 2)  # a saved session's: kept, however old
    saved.save(saved.SessionState("local", "local", "pid-1", str(live), "", 0))
    removed = prune_runs(runs, now)
    assert sorted(p.name for p in removed) == sorted(
        [p.name for p in made[KEEP_RUNS:]] + ["local-old"]
    )
    assert sorted(p.name for p in runs.iterdir()) == sorted(
        [p.name for p in made[:KEEP_RUNS]] + ["local-live"]
    )
