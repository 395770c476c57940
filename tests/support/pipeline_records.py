"""What SLURM and the pipeline's ledger recorded of a pipeline's jobs."""

from __future__ import annotations

import subprocess
from datetime import datetime
from pathlib import Path

from tests.cluster import rig


def job_records(info: rig.ClusterInfo, job_id: str) -> list[dict[str, str]]:
    """`scontrol show job -o` records (one per array task); completed jobs stay 300 s."""
    out = subprocess.run(
        rig.slurm_cmd(info, "scontrol", "show", "job", "-o", job_id),
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [
        dict(item.split("=", 1) for item in line.split() if "=" in item)
        for line in out.splitlines()
        if line.strip()
    ]


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


def ledger_records(info: rig.ClusterInfo, workdir: str) -> dict[str, dict[str, object]]:
    from eoshared import ledger

    return {
        k: v.__dict__
        for k, v in ledger.Ledger(Path(workdir) / ledger.LEDGER_NAME).records().items()
    }


def timeline_of(rep: dict) -> tuple[list[str], dict[str, object]]:
    """A pipeline report's timeline: the scenes of this run's attempts (sorted) and the exit
    status each staging step recorded at its end."""
    scenes = sorted(str(a["scene"]) for a in rep["attempts"])
    ends = {str(e["step"]): e["status"] for e in rep["steps"] if e.get("event") == "end"}
    return scenes, ends


def expected_attempts(scenes: list[str], corrupt: str) -> list[str]:
    """The attempts of a first run of ``scenes`` where ``corrupt`` fails twice (one retry)."""
    return sorted([f"{s}.txt" for s in scenes] + [f"{corrupt}.txt"])
