"""Memory sizes and time limits of the profile's ``job:`` section, in other batch systems' units.

Profiles write memory the way sbatch takes it (``16G``, ``4000M``, a bare number of megabytes)
and time limits as SLURM times (``04:00:00``, ``1-00:00:00``).
"""

from __future__ import annotations

import re

from eoshared.batchsystem.slurmtime import parse_slurm_time

_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)
_FACTORS = {"k": 1 / 1024, "": 1, "m": 1, "g": 1024, "t": 1024 * 1024}


def memory_mib(text: str) -> int:
    """Megabytes (MiB) of a memory size such as ``16G``, ``4000M``, ``2GB`` or ``512``."""
    match = _MEMORY.match(str(text))
    if match is None:
        raise ValueError(f"not a memory size: {text!r}")
    return max(1, round(float(match.group(1)) * _FACTORS[match.group(2).lower()]))


def job_memory_mib(mem: str | None, mem_per_cpu: str | None, cpus: int) -> int | None:
    """The whole job's memory (a per-CPU size times the CPUs), or None when unset."""
    if mem:
        return memory_mib(mem)
    if mem_per_cpu:
        return memory_mib(mem_per_cpu) * max(1, cpus)
    return None


def time_seconds(text: str) -> int | None:
    """Seconds of a SLURM-style time limit (None when unlimited)."""
    return parse_slurm_time(text)


def hms(seconds: int) -> str:
    """Seconds as ``H:MM:SS`` (PBS's walltime format)."""
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
