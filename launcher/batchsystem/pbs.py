"""PBS (OpenPBS, PBS Professional): qsub, qstat, qdel and qselect."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from launcher.batchsystem.base import BatchSystem, JobFields
from launcher.batchsystem.units import hms, job_memory_mib, time_seconds

if TYPE_CHECKING:
    from launcher.config import JobSpec

#: qstat's job states: queued, held, waiting (for its start time), in transit, suspended,
#: suspended while the workstation is busy; running, exiting, array begun; the rest is final
#: (F finished, X subjob finished, M moved).
PENDING_STATES = frozenset({"Q", "H", "W", "T", "S", "U"})
RUNNING_STATES = frozenset({"R", "E", "B"})


def _seconds(text: Any) -> int | None:
    """Seconds of a PBS duration (``HH:MM:SS``, ``MM:SS`` or seconds)."""
    try:
        parts = [int(p) for p in str(text).split(":")]
    except ValueError:
        return None
    total = 0
    for part in parts:
        total = total * 60 + part
    return total


def parse_qstat_json(output: str) -> JobFields | None:
    """Parse ``qstat -f -F json -x JOB`` (one job); None when PBS does not list it."""
    try:
        data = json.loads(output)
    except ValueError:
        return None
    jobs = data.get("Jobs") or {}
    if not jobs:
        return None
    job = next(iter(jobs.values()))
    state = str(job.get("job_state", ""))
    if not state:
        return None
    node = str(job.get("exec_host", "")).split("+")[0].split("/")[0]
    time_left = ""
    limit = _seconds((job.get("Resource_List") or {}).get("walltime", ""))
    used = _seconds((job.get("resources_used") or {}).get("walltime", "0"))
    if state == "R" and limit is not None and used is not None:
        time_left = hms(max(0, limit - used))
    start = (job.get("estimated") or {}).get("start_time", "")
    exit_status = job.get("Exit_status")
    return JobFields(
        state=state,
        reason=str(job.get("comment", "")) if state in PENDING_STATES else "",
        node=node,
        time_left=time_left,
        start_estimate=str(start) if start else "",
        exit_code="" if exit_status is None else str(exit_status),
    )


def pbs_memory(mib: int) -> str:
    """A PBS size: gigabytes when whole, else megabytes."""
    return f"{mib // 1024}gb" if mib % 1024 == 0 else f"{mib}mb"


class PBS(BatchSystem):
    """PBS Professional and OpenPBS, from the login node."""

    name = "pbs"
    directive_prefix = "#PBS"
    job_id_variable = "PBS_JOBID"
    # qsub reads the job script from standard input when given none.
    submit_command = "qsub"
    job_id_pattern = re.compile(r"(?m)^(\d+(?:\[\d*\])?\.\S+)\s*$")
    cancel_command = "qdel {job_id}"
    cancel_gone = ("Unknown Job Id", "Job has finished", "has finished")
    cancel_by_name = (
        "sh", "-c", 'qselect -N "$1" -u "$2" | xargs -r qdel', "sh", "{name}", "{user}",
    )  # fmt: skip
    # -x includes finished jobs while the server keeps their history (job_history_enable).
    status_queries = (("qstat -f -F json -x {job_id}", parse_qstat_json),)
    pending_states = PENDING_STATES
    running_states = RUNNING_STATES
    # -o names a file, not a pattern: each job has a run directory of its own.
    output_pattern = "job.out"
    jobqueue_section = "pbs"
    jobqueue_class = "PBSCluster"

    def header(self, job: JobSpec, job_name: str, output: str) -> list[str]:
        """qsub options of a one-chunk job whose output is written where it runs (-k oed)."""
        select = f"select=1:ncpus={job.cpus}"
        mib = job_memory_mib(job.mem, job.mem_per_cpu, job.cpus)
        if mib:
            select += f":mem={pbs_memory(mib)}"
        options = [f"-N {job_name}", f"-o {output}", "-j oe", "-k oed", f"-l {select}"]
        seconds = time_seconds(job.time)
        if seconds is not None:
            options.append(f"-l walltime={hms(seconds)}")
        if job.partition:
            options.append(f"-q {job.partition}")
        if job.account:
            options.append(f"-A {job.account}")
        return options
