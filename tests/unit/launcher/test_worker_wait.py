"""The wait for Dask workers: worker jobs' states and reasons reported, hopeless waits ended."""

from __future__ import annotations

import time

import pytest
from distributed.exceptions import WorkerStartTimeoutError

from eoshared.batchsystem import Slurm
from eoshared.scheduler.workers import WorkersNotReady, submit_failure, wait_for_workers

SLURM = Slurm()


class FakeClient:
    """wait_for_workers that times out until ``arrive_after`` calls have been made."""

    def __init__(self, arrive_after: int | None, have: int = 0) -> None:
        self.calls = 0
        self.arrive_after = arrive_after
        self.have = have

    def wait_for_workers(self, n: int, timeout: float) -> None:
        self.calls += 1
        if self.arrive_after is not None and self.calls > self.arrive_after:
            return
        time.sleep(min(timeout, 0.01))
        raise WorkerStartTimeoutError(self.have, n, timeout)


def squeue(*outputs: str) -> tuple[Slurm, list[str]]:
    """A Slurm whose squeue prints ``outputs`` in turn (the last one from then on)."""
    commands: list[str] = []

    def run(command: str, stdin: str | bytes | None = None) -> tuple[int, str, str]:
        commands.append(command)
        return 0, outputs[min(len(commands), len(outputs)) - 1], ""

    return Slurm(run), commands


def test_named_jobs_parses_squeue() -> None:
    system, commands = squeue("12|PENDING|Resources\n13|RUNNING|None\n")
    jobs = system.named_jobs("eohpc-dask-1", "alice")
    assert jobs is not None
    assert [(j.job_id, j.state, j.reason, j.pending) for j in jobs] == [
        ("12", "PENDING", "Resources", True),
        ("13", "RUNNING", "", False),
    ]
    assert commands == ["squeue -h --name=eohpc-dask-1 -u alice -o '%i|%T|%r'"]
    assert Slurm(lambda c, s=None: (1, "", "error")).named_jobs("x", "alice") is None


@pytest.mark.parametrize(
    ("reason", "forever"),
    [("Resources", False), ("Priority", False), ("BeginTime", False), ("Dependency", False),
     ("PartitionConfig", True), ("PartitionNodeLimit", True), ("JobHeldUser", True),
     ("ReqNodeNotAvail, UnavailableNodes:n1", True), ("AssocMaxJobsLimit", True),
     ("QOSMaxJobsPerUserLimit", True), ("MaxCpuPerAccount", True), ("", False)],
)  # fmt: skip
def test_reasons_that_never_clear(reason: str, forever: bool) -> None:
    assert SLURM.waits_for_good(reason) is forever


def test_changes_are_reported_once_and_the_wait_ends_when_workers_arrive() -> None:
    system, _ = squeue("12|PENDING|Priority\n", "12|PENDING|Priority\n", "12|RUNNING|None\n")
    lines: list[str] = []
    wait_for_workers(
        FakeClient(arrive_after=3), 1, 30, system, "w", report=lines.append, poll=0.01, user="u"
    )
    assert lines == ["worker job 12 PENDING (Priority)", "worker job 12 RUNNING"]


def test_a_reason_that_never_clears_ends_the_wait_at_once() -> None:
    system, _ = squeue("12|PENDING|Resources\n", "12|PENDING|PartitionNodeLimit\n")
    lines: list[str] = []
    start = time.monotonic()
    with pytest.raises(WorkersNotReady, match="job 12 PENDING \\(PartitionNodeLimit\\)") as err:
        wait_for_workers(
            FakeClient(None, have=1), 2, 60, system, "w", report=lines.append, poll=0.01, user="u"
        )
    assert time.monotonic() - start < 5
    assert "1/2 workers arrived" in str(err.value) and "cancelled" in str(err.value)
    assert lines == [
        "worker job 12 PENDING (Resources)",
        "worker job 12 PENDING (PartitionNodeLimit)",
    ]


def test_timeout_names_the_pending_jobs_and_their_reasons() -> None:
    system, _ = squeue("12|RUNNING|None\n13|PENDING|Resources\n")
    with pytest.raises(WorkersNotReady) as err:
        wait_for_workers(
            FakeClient(None, have=1), 2, 0.2, system, "w", report=lambda _: None, poll=0.05,
            user="u",
        )  # fmt: skip
    message = str(err.value)
    assert "only 1/2 workers arrived within 0s" in message
    assert "worker job 13 PENDING (Resources)" in message


def test_a_rejected_submission_ends_the_wait_with_its_message() -> None:
    exc = RuntimeError(
        "Command exited with non-zero exit code.\nExit code: 1\nCommand:\nsbatch /tmp/x.sh\n"
        "stdout:\n\nstderr:\nsbatch: error: Batch job submission failed: Requested node "
        "configuration is not available\n"
    )
    failures = [submit_failure(exc)]
    system, commands = squeue("")
    with pytest.raises(WorkersNotReady, match="sbatch rejected a worker job: sbatch: error: Batch"):
        wait_for_workers(FakeClient(None), 1, 60, system, "w", failures=failures, poll=0.01)
    assert commands == []
    assert submit_failure(ValueError("plain")) == "plain"


def test_a_job_that_leaves_the_queue_is_reported() -> None:
    system, _ = squeue("12|PENDING|Priority\n", "", "")
    lines: list[str] = []
    wait_for_workers(
        FakeClient(arrive_after=3), 1, 30, system, "w", report=lines.append, poll=0.01, user="u"
    )
    assert lines == ["worker job 12 PENDING (Priority)", "worker job 12 left the queue"]
