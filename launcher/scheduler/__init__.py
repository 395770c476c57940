"""Schedulers the launcher can submit jobs to."""

from __future__ import annotations

from launcher.errors import ConfigError
from launcher.scheduler.base import JobStatus, Scheduler
from launcher.scheduler.slurm import SlurmScheduler
from launcher.ssh import SSHLink

__all__ = ["JobStatus", "Scheduler", "SlurmScheduler", "scheduler_for"]


def scheduler_for(name: str, link: SSHLink) -> Scheduler:
    """Return the scheduler a profile names."""
    if name == "slurm":
        return SlurmScheduler(link)
    raise ConfigError(f"scheduler '{name}' cannot run remote jobs; use 'slurm'.")
