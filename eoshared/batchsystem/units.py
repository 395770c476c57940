"""The one parser of each kind of value the launcher reads: memory sizes and time limits the
way sbatch takes them (the profile's ``job:`` section, ``platforms.ini``), Dask's sizes and
durations (worker memory, lifetimes), and their forms in other batch systems' units.

Job memory is written the way sbatch takes it (``16G``, ``4000M``, a bare number of megabytes;
a trailing ``B`` or ``iB`` is allowed) and time limits as SLURM times (``04:00:00``,
``1-00:00:00``). Dask's sizes (``4GB`` = 4e9 bytes, ``4GiB``) are read by Dask's own parser.
"""

from __future__ import annotations

import math
import re
from typing import Any

_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)
_FACTORS = {"k": 1 / 1024, "": 1, "m": 1, "g": 1024, "t": 1024 * 1024}


def memory_mib(text: str) -> int:
    """MiB of a job memory size such as ``16G``, ``4000M``, ``2GB`` or ``512`` (megabytes),
    rounded up; ValueError for anything else."""
    match = _MEMORY.match(str(text))
    if match is None:
        raise ValueError(f"not a memory size: {text!r}")
    return math.ceil(float(match.group(1)) * _FACTORS[match.group(2).lower()])


def dask_memory_bytes(text: Any) -> int:
    """Bytes of a Dask size (``4GB`` = 4e9, ``4GiB``, ``512MiB``) or a number of bytes, read
    as dask-jobqueue reads ``memory``; ValueError for anything else."""
    from dask.utils import parse_bytes

    try:
        return parse_bytes(text) if isinstance(text, str) else int(text)
    except (TypeError, ValueError):
        raise ValueError(f"not a Dask memory size: {text!r}") from None


def job_memory_mib(mem: str | None, mem_per_cpu: str | None, cpus: int) -> int | None:
    """The whole job's memory (a per-CPU size times the CPUs), or None when unset."""
    if mem:
        return max(1, memory_mib(mem))
    if mem_per_cpu:
        return max(1, memory_mib(mem_per_cpu)) * max(1, cpus)
    return None


def hms(seconds: int) -> str:
    """Seconds as ``H:MM:SS`` (PBS's walltime format)."""
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


# ------------------------------------------------------------------------------ durations

UNLIMITED = ("INFINITE", "UNLIMITED")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)
_UNITS = {
    "": 1,
    "s": 1,
    "sec": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hr": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
}


def parse_slurm_time(text: str) -> int | None:
    """Seconds of a SLURM time limit; None for INFINITE/UNLIMITED.

    Accepts the formats of sbatch --time: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S.
    Raises ValueError for anything else.
    """
    value = str(text).strip()
    if value.upper() in UNLIMITED:
        return None
    days = 0
    if "-" in value:
        head, _, value = value.partition("-")
        days = _number(head, text)
        fields = [_number(part, text) for part in value.split(":")]
        if not 1 <= len(fields) <= 3:
            raise ValueError(f"not a SLURM time: {text!r}")
        hours, minutes, seconds = [*fields, 0, 0][:3]
    else:
        fields = [_number(part, text) for part in value.split(":")]
        if len(fields) == 1:
            hours, minutes, seconds = 0, fields[0], 0
        elif len(fields) == 2:
            hours, minutes, seconds = 0, fields[0], fields[1]
        elif len(fields) == 3:
            hours, minutes, seconds = fields
        else:
            raise ValueError(f"not a SLURM time: {text!r}")
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def parse_duration(text: str) -> float:
    """Seconds of a Dask duration such as '110m', '2h', '90 s' or '300' (seconds)."""
    match = _DURATION.match(str(text))
    if not match or match.group(2).lower() not in _UNITS:
        raise ValueError(f"not a duration: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2).lower()]


def format_seconds(seconds: float) -> str:
    """Seconds as H:MM:SS, the way the error messages show limits."""
    total = int(seconds)
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"


def _number(part: str, text: str) -> int:
    if not part.strip().isdigit():
        raise ValueError(f"not a SLURM time: {text!r}")
    return int(part)
