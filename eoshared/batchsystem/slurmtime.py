"""SLURM time limits (`--time`) and Dask durations (`--lifetime 110m`) as seconds."""

from __future__ import annotations

import re

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
