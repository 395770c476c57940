"""SLURM: sbatch, squeue, scontrol, sacct and scancel."""

from __future__ import annotations

import dataclasses
import re
import shlex
from typing import TYPE_CHECKING

from launcher.batchsystem.base import BatchSystem, JobFields, JobStatus

if TYPE_CHECKING:
    from launcher.config import JobSpec

SQUEUE_FORMAT = "%T|%r|%N|%L|%S"
NO_ESTIMATE = ("", "N/A", "Unknown")


def parse_squeue(output: str) -> JobFields | None:
    """Parse one line of `squeue -h -o %T|%r|%N|%L|%S`; None when the job is not listed."""
    line = output.strip()
    if not line:
        return None
    state, reason, node, time_left, start = (line.splitlines()[0].split("|") + [""] * 5)[:5]
    return JobFields(
        state=state,
        reason="" if reason == "None" else reason,
        node="" if node in ("", "(null)") else node,
        time_left=time_left,
        start_estimate="" if start in NO_ESTIMATE else start,
    )


def parse_scontrol(output: str) -> JobFields | None:
    """Parse `scontrol show job -o` output; None when SLURM no longer knows the job."""
    fields = dict(
        item.split("=", 1) for item in output.split() if "=" in item and not item.startswith("=")
    )
    if "JobState" not in fields:
        return None
    node = fields.get("NodeList", "")
    return JobFields(
        state=fields["JobState"],
        reason="" if fields.get("Reason") == "None" else fields.get("Reason", ""),
        node="" if node == "(null)" else node,
        exit_code=fields.get("ExitCode", ""),
    )


def parse_sacct(output: str) -> JobFields | None:
    """Parse `sacct -n -P -X -o State,ExitCode,NodeList` output."""
    line = output.strip().splitlines()[0] if output.strip() else ""
    parts = line.split("|")
    if len(parts) < 3:
        return None
    state = parts[0].split()[0]  # "CANCELLED by 1000" -> "CANCELLED"
    return JobFields(state=state, exit_code=parts[1], node=parts[2])


class Slurm(BatchSystem):
    """SLURM's command line tools on the login node."""

    name = "slurm"
    directive_prefix = "#SBATCH"
    job_id_variable = "SLURM_JOB_ID"
    submit_command = "sbatch --parsable"
    job_id_pattern = re.compile(r"(?m)^(\d+)(?:;\S*)?$")
    cancel_command = "scancel {job_id}"
    cancel_gone = ("Invalid job id",)
    cancel_by_name = ("scancel", "--name={name}", "--user={user}")
    status_queries = (
        (f"squeue -h -j {{job_id}} -o '{SQUEUE_FORMAT}'", parse_squeue),
        ("scontrol show job -o {job_id}", parse_scontrol),
        ("sacct -n -P -X -j {job_id} -o State,ExitCode,NodeList", parse_sacct),
    )
    pending_states = frozenset({"PENDING", "CONFIGURING", "REQUEUED", "RESIZING", "SUSPENDED"})
    running_states = frozenset({"RUNNING", "COMPLETING"})
    jobqueue_section = "slurm"
    jobqueue_class = "SLURMCluster"
    array_index_variable = "SLURM_ARRAY_TASK_ID"

    def dependency_directive(self, job_ids: list[str]) -> list[str]:
        """``--dependency=afterok:A:B``; ``--kill-on-invalid-dep=yes`` cancels the job as soon
        as a dependency failed instead of leaving it pending (DependencyNeverSatisfied)."""
        if not job_ids:
            return []
        return [f"--dependency=afterok:{':'.join(job_ids)}", "--kill-on-invalid-dep=yes"]

    def array_directive(self, count: int, parallel: int | None = None) -> list[str]:
        """``--array=0-N[%P]``."""
        if count < 1:
            raise ValueError("a job array needs at least one task")
        throttle = f"%{parallel}" if parallel else ""
        return [f"--array=0-{count - 1}{throttle}"]

    def header(self, job: JobSpec, job_name: str, output: str) -> list[str]:
        """sbatch options of a one-node, one-task job."""
        options = [
            f"--job-name={job_name}",
            f"--output={output}",
            f"--time={job.time}",
            "--nodes=1",
            "--ntasks=1",
            f"--cpus-per-task={job.cpus}",
        ]
        if job.partition:
            options.append(f"--partition={job.partition}")
        if job.account:
            options.append(f"--account={job.account}")
        if job.mem:
            options.append(f"--mem={job.mem}")
        if job.mem_per_cpu:
            options.append(f"--mem-per-cpu={job.mem_per_cpu}")
        return options

    def complete(self, job_id: str, fields: JobFields) -> JobStatus:
        """A pending job gets squeue's start estimate when the first query had none."""
        status = super().complete(job_id, fields)
        if status.pending and not status.start_estimate:
            _, start, _ = self.run(f"squeue --start -h -j {shlex.quote(job_id)} -o %S", None)
            if start.strip() not in NO_ESTIMATE:
                status = dataclasses.replace(status, start_estimate=start.strip())
        return status
