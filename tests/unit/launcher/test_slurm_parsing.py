"""Parsing SLURM's output (pure functions; the commands themselves run in integration tests)."""

from __future__ import annotations

import pytest

from launcher.errors import SchedulerError
from launcher.scheduler.slurm import parse_sacct, parse_sbatch, parse_scontrol, parse_squeue


def test_sbatch() -> None:
    assert parse_sbatch("1234\n") == "1234"
    assert parse_sbatch("1234;cluster\n") == "1234"
    with pytest.raises(SchedulerError):
        parse_sbatch("sbatch: error: nope")


def test_squeue_pending_and_running() -> None:
    pending = parse_squeue("7", "PENDING|Resources|||2030-01-01T10:00:00\n")
    assert pending and pending.pending and pending.reason == "Resources"
    assert pending.start_estimate == "2030-01-01T10:00:00"
    running = parse_squeue("7", "RUNNING|None|node1|29:50|2030-01-01T10:00:00")
    assert running and running.running and running.node == "node1" and running.reason == ""
    assert parse_squeue("7", "") is None


def test_scontrol_finished_job() -> None:
    out = (
        "JobId=7 JobName=x UserId=u(1) JobState=FAILED Reason=NonZeroExitCode "
        "Dependency=(null) ExitCode=1:0 NodeList=eorig-compute"
    )
    status = parse_scontrol("7", out)
    assert status and status.finished and status.exit_code == "1:0"
    assert status.node == "eorig-compute" and status.reason == "NonZeroExitCode"
    assert parse_scontrol("7", "slurm_load_jobs error: Invalid job id specified") is None


def test_sacct() -> None:
    status = parse_sacct("7", "CANCELLED by 1001|0:15|node1\n")
    assert status and status.state == "CANCELLED" and status.exit_code == "0:15"
