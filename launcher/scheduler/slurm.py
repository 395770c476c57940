"""SLURM: sbatch, squeue, scontrol, sacct and scancel."""

from __future__ import annotations

import dataclasses
import shlex

from launcher.errors import SchedulerError
from launcher.scheduler.base import JobStatus, Scheduler

SQUEUE_FORMAT = "%T|%r|%N|%L|%S"


def parse_sbatch(output: str) -> str:
    """Return the job id from `sbatch --parsable` output ("id" or "id;cluster")."""
    line = output.strip().splitlines()[-1] if output.strip() else ""
    job_id = line.split(";")[0].strip()
    if not job_id.isdigit():
        raise SchedulerError(f"sbatch printed no job id: {output.strip()!r}")
    return job_id


def parse_squeue(job_id: str, output: str) -> JobStatus | None:
    """Parse one line of `squeue -h -o %T|%r|%N|%L|%S`; None when the job is not listed."""
    line = output.strip()
    if not line:
        return None
    state, reason, node, time_left, start = (line.splitlines()[0].split("|") + [""] * 5)[:5]
    return JobStatus(
        job_id=job_id,
        state=state,
        reason="" if reason == "None" else reason,
        node="" if node in ("", "(null)") else node,
        time_left=time_left,
        start_estimate="" if start in ("N/A", "Unknown") else start,
    )


def parse_scontrol(job_id: str, output: str) -> JobStatus | None:
    """Parse `scontrol show job -o` output; None when SLURM no longer knows the job."""
    fields = dict(
        item.split("=", 1) for item in output.split() if "=" in item and not item.startswith("=")
    )
    if "JobState" not in fields:
        return None
    node = fields.get("NodeList", "")
    return JobStatus(
        job_id=job_id,
        state=fields["JobState"],
        reason="" if fields.get("Reason") == "None" else fields.get("Reason", ""),
        node="" if node == "(null)" else node,
        time_left="",
        exit_code=fields.get("ExitCode", ""),
    )


def parse_sacct(job_id: str, output: str) -> JobStatus | None:
    """Parse `sacct -n -P -X -o State,ExitCode,NodeList` output."""
    line = output.strip().splitlines()[0] if output.strip() else ""
    parts = line.split("|")
    if len(parts) < 3:
        return None
    state = parts[0].split()[0]  # "CANCELLED by 1000" -> "CANCELLED"
    return JobStatus(job_id=job_id, state=state, exit_code=parts[1], node=parts[2])


class SlurmScheduler(Scheduler):
    """Submit and follow jobs with the SLURM command line tools on the login node."""

    def submit(self, script: str) -> str:
        """Submit the script on sbatch's stdin; SLURM's message is kept if it refuses."""
        code, out, err = self.run("sbatch --parsable", stdin=script)
        if code != 0:
            message = err.strip() or out.strip() or f"exit code {code}"
            raise SchedulerError(
                f"sbatch rejected the job: {message}. Fix the job settings (partition, account, "
                "time, cpus, mem) in platforms.ini or the platform profile."
            )
        return parse_sbatch(out)

    def status(self, job_id: str) -> JobStatus:
        """Ask squeue, then scontrol, then sacct (for jobs that already left the queue)."""
        jid = shlex.quote(job_id)
        code, out, _ = self.run(f"squeue -h -j {jid} -o '{SQUEUE_FORMAT}'")
        found = parse_squeue(job_id, out) if code == 0 else None
        if found is not None:
            if found.pending and not found.start_estimate:
                _, start, _ = self.run(f"squeue --start -h -j {jid} -o %S")
                estimate = start.strip()
                if estimate and estimate not in ("N/A", "Unknown"):
                    found = dataclasses.replace(found, start_estimate=estimate)
            return found
        code, out, _ = self.run(f"scontrol show job -o {jid}")
        found = parse_scontrol(job_id, out) if code == 0 else None
        if found is not None:
            return found
        code, out, _ = self.run(f"sacct -n -P -X -j {jid} -o State,ExitCode,NodeList")
        found = parse_sacct(job_id, out) if code == 0 else None
        return found or JobStatus(job_id=job_id, state="UNKNOWN")

    def cancel(self, job_id: str) -> None:
        """scancel the job; a job that already ended is not an error."""
        code, out, err = self.run(f"scancel {shlex.quote(job_id)}")
        if code != 0 and "Invalid job id" not in err + out:
            raise SchedulerError(f"scancel {job_id} failed: {(err or out).strip()}")
