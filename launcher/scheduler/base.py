"""The scheduler interface: submit, query, cancel a batch job over an SSH connection."""

from __future__ import annotations

import abc
from dataclasses import dataclass

from launcher.errors import SchedulerError
from launcher.ssh import SSHLink

PENDING_STATES = frozenset({"PENDING", "CONFIGURING", "REQUEUED", "RESIZING", "SUSPENDED"})
RUNNING_STATES = frozenset({"RUNNING", "COMPLETING"})


@dataclass(frozen=True)
class JobStatus:
    """What the scheduler says about one job."""

    job_id: str
    state: str
    reason: str = ""
    node: str = ""
    time_left: str = ""
    start_estimate: str = ""
    exit_code: str = ""

    @property
    def pending(self) -> bool:
        """True while the job waits in the queue."""
        return self.state in PENDING_STATES

    @property
    def running(self) -> bool:
        """True while the job runs."""
        return self.state in RUNNING_STATES

    @property
    def finished(self) -> bool:
        """True once the job has left the queue for good."""
        return not (self.pending or self.running)


class Scheduler(abc.ABC):
    """A batch scheduler reached through the site's SSH link."""

    def __init__(self, link: SSHLink) -> None:
        self.link = link

    def run(self, command: str, stdin: str | bytes | None = None) -> tuple[int, str, str]:
        """Run a command on the login node and return (exit code, stdout, stderr)."""
        return self.link.run(command, stdin)

    def check(self, command: str, stdin: str | bytes | None = None) -> str:
        """Run a command and return its stdout, raising SchedulerError on failure."""
        code, out, err = self.run(command, stdin)
        if code != 0:
            message = (err or out).strip() or f"exit code {code}"
            raise SchedulerError(f"`{command.split()[0]}` failed: {message}")
        return out

    @abc.abstractmethod
    def submit(self, script: str) -> str:
        """Submit a batch script and return the job id."""

    @abc.abstractmethod
    def status(self, job_id: str) -> JobStatus:
        """Return the job's state, also after it left the queue."""

    @abc.abstractmethod
    def cancel(self, job_id: str) -> None:
        """Cancel the job (no error if it already ended)."""
