"""Parsing SLURM's output (pure functions; the commands themselves run in integration tests)."""

from __future__ import annotations

import pytest

from eoshared.batchsystem import Slurm
from eoshared.batchsystem.slurm import parse_sacct, parse_scontrol, parse_squeue
from eoshared.errors import BatchSystemError

SLURM = Slurm()


def test_sbatch() -> None:
    assert SLURM.parse_job_id("1234\n") == "1234"
    assert SLURM.parse_job_id("1234;cluster\n") == "1234"
    assert SLURM.parse_job_id("sbatch: warning: x\n1234\n") == "1234"
    with pytest.raises(BatchSystemError, match="sbatch printed no job id"):
        SLURM.parse_job_id("sbatch: error: nope")


def test_squeue_pending_and_running() -> None:
    pending = parse_squeue("PENDING|Resources|||2030-01-01T10:00:00\n")
    assert pending is not None and pending.reason == "Resources"
    assert SLURM.complete("7", pending).pending
    assert pending.start_estimate == "2030-01-01T10:00:00"
    running = parse_squeue("RUNNING|None|node1|29:50|2030-01-01T10:00:00")
    assert running is not None and running.node == "node1" and running.reason == ""
    assert SLURM.complete("7", running).running
    assert parse_squeue("") is None


def test_the_start_of_a_running_jobs_run_is_kept_and_a_pending_job_has_none() -> None:
    running = parse_squeue("RUNNING|None|node1|29:50|2030-01-01T10:00:00")
    assert running is not None and running.started == "2030-01-01T10:00:00"
    assert SLURM.complete("7", running).started == "2030-01-01T10:00:00"
    pending = parse_squeue("PENDING|BeginTime|||2030-01-01T10:02:00")
    assert pending is not None and pending.started == ""
    fields = parse_scontrol("JobId=7 JobState=RUNNING StartTime=2030-01-01T10:00:00 NodeList=n1")
    assert fields is not None and fields.started == "2030-01-01T10:00:00"


def test_scontrol_finished_job() -> None:
    out = (
        "JobId=7 JobName=x UserId=u(1) JobState=FAILED Reason=NonZeroExitCode "
        "Dependency=(null) ExitCode=1:0 NodeList=eorig-compute"
    )
    fields = parse_scontrol(out)
    assert fields is not None
    status = SLURM.complete("7", fields)
    assert status.finished and status.exit_code == "1:0"
    assert status.node == "eorig-compute" and status.reason == "NonZeroExitCode"
    assert parse_scontrol("slurm_load_jobs error: Invalid job id specified") is None


def test_sacct() -> None:
    fields = parse_sacct("CANCELLED by 1001|0:15|node1\n")
    assert fields is not None and fields.state == "CANCELLED" and fields.exit_code == "0:15"
    assert SLURM.complete("7", fields).finished


@pytest.mark.parametrize(
    ("state", "phase"),
    [
        ("PENDING", "pending"),
        ("REQUEUED", "pending"),
        ("RUNNING", "running"),
        ("COMPLETING", "running"),
        ("COMPLETED", "finished"),
        ("NODE_FAIL", "finished"),
        ("OUT_OF_MEMORY", "finished"),
    ],
)
def test_state_mapping(state: str, phase: str) -> None:
    assert SLURM.phase(state) == phase
