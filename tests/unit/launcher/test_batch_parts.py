"""Batch mode and session scheduler pieces that need no cluster."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from eoshared.scheduler.contract import STATE_DIR_ENV
from eoshared.scheduler.driver import script_env
from eoshared.scheduler.tls import create_session_tls
from launcher.cli import build_parser, split_script_args
from launcher.config import load_site, shipped_dir
from launcher.jobs.batch import job_exit_code
from launcher.session import state as saved
from launcher.sites.jobscript import render, render_batch

SITE = load_site("sandbox", shipped_dir() / "platforms.ini")


@pytest.mark.parametrize(
    ("code", "expected"),
    [("0:0", 0), ("3:0", 3), ("0:15", 143), ("1:9", 137), ("", None), ("x:0", None)],
)
def test_job_exit_code(code: str, expected: int | None) -> None:
    assert job_exit_code(code) == expected


def test_script_args_follow_the_double_dash() -> None:
    own, rest = split_script_args(["--mode", "batch", "--", "--in", "a b", "--", "x"])
    assert own == ["--mode", "batch"] and rest == ["--in", "a b", "--", "x"]
    assert split_script_args(["--mode", "run"]) == (["--mode", "run"], [])
    args = build_parser().parse_args([*own, "--script", "s.py", "--workers", "3"])
    assert args.mode == "batch" and args.workers == 3 and args.script == Path("s.py")


def test_batch_job_script() -> None:
    script = render_batch(SITE, "/home/u/.eohpc/runs/r1", "my analysis.py", ["a b", "$x"], 2, 300)
    assert "#SBATCH --job-name=eohpc-batch-sandbox" in script
    assert "#SBATCH --output=/home/u/.eohpc/runs/r1/job-%j.out" in script
    assert "#SBATCH --cpus-per-task=1" in script
    assert "source /opt/eo-rig/venv/bin/activate" in script
    assert 'export DASK_CONFIG="$RUN_DIR/dask"' in script
    assert "export EOHPC_BATCH_SYSTEM=slurm" in script
    assert "-m eoshared.scheduler.driver" in script
    assert "--workers 2" in script and "--timeout 300" in script
    assert """-- "$RUN_DIR"/'my analysis.py' 'a b' '$x'""" in script
    syntax = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
    assert syntax.returncode == 0, syntax.stderr


def test_jupyter_job_with_and_without_session_scheduler() -> None:
    plain = render(SITE, "/r")
    assert "--scheduler-max-jobs" not in plain
    assert "--ip 0.0.0.0 -- \\\n    lab" in plain
    with_scheduler = render(SITE, "/r", scheduler_max_jobs=3)
    assert "--ip 0.0.0.0 --scheduler-max-jobs 3 -- \\\n" in with_scheduler
    assert "export EOHPC_SCHEDULER_FILE=/r/scheduler/scheduler.json" in with_scheduler
    assert "export EOHPC_SESSION=sandbox" in with_scheduler
    assert "EOHPC_SCHEDULER_FILE" not in plain
    for script in (plain, with_scheduler):
        syntax = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
        assert syntax.returncode == 0, syntax.stderr


def test_batch_and_interactive_states_do_not_collide(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path))
    session = saved.SessionState("s", "p", "10", "/r", "tok", 8888)
    job = saved.SessionState("s", "p", "11", "/b", "", 0, kind=saved.BATCH)
    saved.save(session)
    saved.save(job)
    assert job.key == "s.batch-11"
    assert saved.load("s") == session
    assert saved.find("s", "11") == job and saved.find("s", "10") == session
    assert saved.find("s", "12") is None
    saved.delete(job.key)
    assert [s.job_id for s in saved.load_all()] == ["10"]
    assert stat.S_IMODE((tmp_path / "s.json").stat().st_mode) == 0o600


def test_batch_driver_environment_makes_a_plain_client_use_tls(tmp_path: Path) -> None:
    """The variables the batch driver exports configure distributed.Client() without arguments."""
    tls = create_session_tls(tmp_path / "tls")
    env = script_env("tls://node:1234", tls, tmp_path)
    for path in (tls.ca_file, tls.cert, tls.key):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    probe = (
        "import dask, distributed; s = distributed.Security(); "
        "print(dask.config.get('scheduler-address'), s.require_encryption, "
        "s.tls_ca_file, s.tls_client_key)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["tls://node:1234", "True", str(tls.ca_file), str(tls.key)]
