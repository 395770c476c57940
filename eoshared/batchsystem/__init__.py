"""Batch systems the launcher submits jobs to, one small declarative class each."""

from __future__ import annotations

from eoshared.batchsystem.base import (
    FINISHED,
    PENDING,
    RUNNING,
    UNKNOWN,
    BatchSystem,
    ChainStep,
    JobSpec,
    JobStatus,
    NodeSize,
    PartitionLimits,
    Runner,
    local_runner,
)
from eoshared.batchsystem.htcondor import HTCondor
from eoshared.batchsystem.pbs import PBS
from eoshared.batchsystem.slurm import Slurm
from eoshared.errors import ConfigError

__all__ = [
    "BATCH_SYSTEMS",
    "FINISHED",
    "PBS",
    "PENDING",
    "RUNNING",
    "UNKNOWN",
    "BatchSystem",
    "ChainStep",
    "HTCondor",
    "JobSpec",
    "JobStatus",
    "NodeSize",
    "PartitionLimits",
    "Runner",
    "Slurm",
    "batch_system_class",
    "local_runner",
]

#: Every batch system by its profile name.
BATCH_SYSTEMS: dict[str, type[BatchSystem]] = {cls.name: cls for cls in (Slurm, PBS, HTCondor)}


def batch_system_class(name: str) -> type[BatchSystem]:
    """The batch system a profile names."""
    try:
        return BATCH_SYSTEMS[name]
    except KeyError:
        raise ConfigError(
            f"batch system '{name}' cannot run jobs; use one of: {', '.join(BATCH_SYSTEMS)}."
        ) from None
