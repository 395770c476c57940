"""Faults at the cluster end: lost connections retried up to a bound, pending reasons that
never clear, failed final states with their fix, the walltime warning, worker jobs that left."""

from __future__ import annotations

from typing import Any

import pytest

from eoshared.batchsystem import JobStatus, Slurm
from eoshared.batchsystem.base import FINISHED, PENDING, RUNNING
from eoshared.errors import AuthenticationError, HostUnreachableError, LinkLostError
from eoshared.scheduler.workers import WorkersNotReady, wait_for_workers
from launcher.session.state import SessionState
from launcher.sites import remote
from launcher.sites.remote import RemoteSite, time_left_seconds


class FakeSite:
    host = "login.example"
    uid = "s"


def fake_remote(statuses: list[Any]) -> RemoteSite:
    site = object.__new__(RemoteSite)
    site.config = FakeSite()  # type: ignore[assignment]
    site.reconnect_for = 0.3

    class Batch(Slurm):
        def status(self, job_id: str) -> JobStatus:
            item = statuses.pop(0) if len(statuses) > 1 else statuses[0]
            if isinstance(item, Exception):
                raise item
            return item

    cancelled: list[str] = []
    site.batch = Batch(lambda c, s=None: (0, "", ""))
    site.cancel = lambda s: cancelled.append(s.job_id)  # type: ignore[method-assign]
    site.cancelled = cancelled  # type: ignore[attr-defined]
    return site


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(remote, "RECONNECT_RETRY_SECONDS", 0.01)
    monkeypatch.setattr(remote, "WATCH_SECONDS", 0.0)
    monkeypatch.setattr(remote, "POLL_SECONDS", 0.0)


def test_persist_retries_a_lost_connection_and_says_when_it_is_back() -> None:
    site = fake_remote([])
    calls = iter([HostUnreachableError("refused"), HostUnreachableError("refused"), "ok"])

    def call() -> str:
        item = next(calls)
        if isinstance(item, Exception):
            raise item
        return item

    lines: list[str] = []
    assert site.persist(call, lines.append) == "ok"
    assert len(lines) == 2
    assert "lost the connection to login.example" in lines[0] and "is back" in lines[1]


def test_persist_gives_up_after_the_bound_and_never_retries_refused_credentials() -> None:
    site = fake_remote([])

    def lost() -> None:
        raise HostUnreachableError("refused")

    with pytest.raises(LinkLostError, match="unreachable for"):
        site.persist(lost, lambda _: None)

    def refused() -> None:
        raise AuthenticationError("no")

    with pytest.raises(AuthenticationError):
        site.persist(refused, lambda _: None)


def state() -> SessionState:
    return SessionState("s", "sandbox", "7", "/run", "tok", 8888)


def test_wait_ready_cancels_a_job_pending_for_ever() -> None:
    site = fake_remote([JobStatus("7", "PENDING", PENDING, reason="PartitionDown")])
    with pytest.raises(Exception, match=r"PENDING \(PartitionDown\).*partition is down"):
        site.wait_ready(state(), 10, lambda _: None)
    assert site.cancelled == ["7"]  # type: ignore[attr-defined]


def test_failure_message_names_the_state_and_its_fix() -> None:
    site = fake_remote([])
    site.tail = lambda s, lines=30: "Killed"  # type: ignore[method-assign]
    status = JobStatus("7", "OUT_OF_MEMORY", FINISHED, exit_code="0:125")
    text = site.failure_message(state(), status, "Jupyter was ready")
    assert "state OUT_OF_MEMORY, exit code 0:125" in text and "Killed" in text
    assert "raise 'mem'" in text


def scheduler_site(
    monkeypatch: pytest.MonkeyPatch, reads: list[Any]
) -> tuple[RemoteSite, list[str]]:
    """A site whose scheduler file reads come from ``reads`` (an exception is raised) and
    whose job runs; copying the published files records the run directory."""
    site = fake_remote([JobStatus("7", "RUNNING", RUNNING, node="n1")])

    def wait_for_file(path: str, wait: float) -> str:
        item = reads.pop(0) if len(reads) > 1 else reads[0]
        if isinstance(item, Exception):
            raise item
        return str(item)

    copied: list[str] = []

    class Link:
        def read(self, path: str) -> bytes:
            return b""

    def copy_published(read: Any, run_dir: str, uid: str) -> str:
        copied.append(run_dir)
        return "info"

    site.link = Link()  # type: ignore[assignment]
    site.wait_for_file = wait_for_file  # type: ignore[method-assign]
    monkeypatch.setattr(remote.local_copy, "copy_published", copy_published)
    return site, copied


def test_wait_scheduler_retries_a_lost_connection_like_the_other_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lost = HostUnreachableError("Connection refused")
    site, copied = scheduler_site(monkeypatch, ["", lost, lost, "{...}"])
    lines: list[str] = []
    assert site.wait_scheduler(state(), 10, lines.append) == "info"  # type: ignore[comparison-overlap]
    assert copied == ["/run"]
    assert len(lines) == 2, lines
    assert "lost the connection to login.example" in lines[0] and "is back" in lines[1]
    assert site.cancelled == []  # type: ignore[attr-defined]


def test_wait_scheduler_gives_up_after_the_bound_and_leaves_the_job(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    site, copied = scheduler_site(monkeypatch, [HostUnreachableError("Connection refused")])
    with pytest.raises(LinkLostError, match=r"login\.example has been unreachable for"):
        site.wait_scheduler(state(), 10, lambda _: None)
    assert copied == [] and site.cancelled == []  # type: ignore[attr-defined]


def test_watch_warns_once_before_the_walltime() -> None:
    running = [JobStatus("7", "RUNNING", RUNNING, time_left=t) for t in ("20:00", "9:00", "8:50")]
    site = fake_remote([*running, JobStatus("7", "TIMEOUT", FINISHED)])
    warnings: list[str] = []
    final = site.watch(state(), lambda _: None, 600, warnings.append)
    assert final.state == "TIMEOUT"
    assert len(warnings) == 1 and "reaches its walltime in 0:09:00" in warnings[0]


def test_watch_ends_and_cancels_a_job_held_while_it_ran() -> None:
    """HTCondor holds a job past its allowed_execute_duration: it never runs again by itself."""
    held = JobStatus("7", "JobHeldUser", PENDING, reason="held")
    site = fake_remote([JobStatus("7", "RUNNING", RUNNING), held])
    site.batch.held_states = frozenset({"JobHeldUser"})  # type: ignore[misc]
    assert site.watch(state(), lambda _: None) == held
    assert site.cancelled == ["7"]  # type: ignore[attr-defined]


def test_each_system_knows_a_job_that_reached_its_walltime() -> None:
    from eoshared.batchsystem import PBS, HTCondor
    from eoshared.batchsystem.htcondor import WALLTIME_HOLD_REASON

    assert Slurm().reached_walltime(JobStatus("1", "TIMEOUT", FINISHED))
    assert not Slurm().reached_walltime(JobStatus("1", "FAILED", FINISHED))
    pbs = PBS()
    killed = JobStatus("2.eopbs", "F", FINISHED, exit_code="-29")
    assert pbs.reached_walltime(killed) and "JOB_EXEC_KILL_WALLTIME" in pbs.status_fix(killed)
    assert not pbs.reached_walltime(JobStatus("2.eopbs", "F", FINISHED, exit_code="271"))
    assert "raise 'mem'" in pbs.status_fix(JobStatus("2.eopbs", "F", FINISHED, exit_code="-27"))
    condor = HTCondor()
    over = JobStatus("3.0", "HELD", PENDING, reason=f"{WALLTIME_HOLD_REASON} (60 s)")
    assert condor.reached_walltime(over) and condor.stuck(over)
    assert not condor.reached_walltime(JobStatus("3.0", "HELD", PENDING, reason="via condor_hold"))


@pytest.mark.parametrize(
    ("text", "seconds"), [("29:41", 1781), ("1-00:00:00", 86400), ("UNLIMITED", None), ("", None)]
)
def test_time_left(text: str, seconds: int | None) -> None:
    assert time_left_seconds(text) == seconds


class FakeClient:
    def __init__(self, job_ids: list[str]) -> None:
        class Job:
            def __init__(self, job_id: str) -> None:
                self.job_id = job_id

        self.cluster = type("C", (), {"workers": {i: Job(i) for i in job_ids}})()

    def wait_for_workers(self, n: int, timeout: float) -> None:
        raise TimeoutError


def test_a_worker_job_cancelled_before_it_was_seen_ends_the_wait() -> None:
    class Batch(Slurm):
        def named_jobs(self, job_name: str, user: str) -> list[JobStatus]:
            return []

        def status(self, job_id: str) -> JobStatus:
            return JobStatus(job_id, "CANCELLED", FINISHED, exit_code="0:15")

    system = Batch(lambda c, s=None: (0, "", ""))
    with pytest.raises(WorkersNotReady, match="worker job 12 ended CANCELLED"):
        wait_for_workers(FakeClient(["12"]), 1, 30, system, "w", poll=0.01, user="u")


def test_a_pbs_worker_job_is_one_job_under_both_of_its_ids() -> None:
    """dask-jobqueue keeps PBS's "169" of "169.eopbs": the removed worker job is reported once,
    under the id qstat gives, whichever poll first sees it gone."""
    from eoshared.batchsystem import PBS

    listings = [[JobStatus("169.eopbs", "R", RUNNING)], []]
    asked: list[str] = []

    class Batch(PBS):
        def named_jobs(self, job_name: str, user: str) -> list[JobStatus]:
            return listings.pop(0) if len(listings) > 1 else listings[0]

        def status(self, job_id: str) -> JobStatus:
            asked.append(job_id)
            return JobStatus(job_id, "F", FINISHED, exit_code="271")

    system = Batch(lambda c, s=None: (0, "", ""))
    with pytest.raises(WorkersNotReady, match=r"worker job 169\.eopbs ended F, exit code 271"):
        wait_for_workers(FakeClient(["169"]), 1, 30, system, "w", poll=0.01, user="u")
    assert asked == ["169.eopbs"]
