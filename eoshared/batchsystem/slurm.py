"""SLURM: sbatch, squeue, scontrol, sacct and scancel."""

from __future__ import annotations

import dataclasses
import math
import re
import shlex
from collections.abc import Mapping, Sequence

from eoshared.batchsystem.base import (
    BatchSystem,
    JobFields,
    JobSpec,
    JobStatus,
    NodeSize,
    PartitionLimits,
)
from eoshared.batchsystem.units import memory_mib, parse_slurm_time

SQUEUE_FORMAT = "%T|%r|%N|%L|%S"
NO_ESTIMATE = ("", "N/A", "Unknown")
#: The states in which a job runs (``Slurm.running_states``, read by the parsers too).
RUNNING_STATES = frozenset({"RUNNING", "COMPLETING"})
#: sinfo's node lines (name, CPUs, memory in MiB, partition; the default one ends in "*").
SINFO_NODE_FORMAT = "%N|%c|%m|%P"
#: Separates the sinfo and scontrol parts of the one node-limits command's output.
LIMITS_SEPARATOR = "--eohpc-partitions--"
#: squeue's lines about the jobs of one name: job id, state, reason.
NAMED_FORMAT = "%i|%T|%r"
#: Pending reasons that do not clear by themselves: the request exceeds a limit of the
#: partition, association or QOS, names something unusable, or is held (see SLURM's "Job
#: Reason Codes"). ``AssocMax*``, ``QOSMax*`` and ``Max*PerAccount`` are matched by prefix.
FOREVER_REASONS = frozenset(
    {
        "AccountNotAllowed",
        "BadConstraints",
        "DependencyNeverSatisfied",
        "InvalidAccount",
        "InvalidQOS",
        "JobHeldAdmin",
        "JobHeldUser",
        "PartitionConfig",
        "PartitionDown",
        "PartitionInactive",
        "PartitionNodeLimit",
        "PartitionTimeLimit",
        "QOSNotAllowed",
        "ReqNodeNotAvail",
    }
)
FOREVER_PREFIXES = ("AssocMax", "QOSMax")
#: SLURM's final states that are not a success, and what to do about each.
FINAL_STATE_FIXES = {
    "FAILED": "the job script exited non-zero: see the last lines of its output (a module that "
    "does not load, an environment path that does not exist, a crash); fix the profile's "
    "environment (modules, env_path) or run --mode install",
    "CANCELLED": "the job was cancelled (by you, by an administrator, or by a dependency); "
    "submit it again",
    "NODE_FAIL": "its node failed; submit the job again (the batch system ended it, not your code)",
    "BOOT_FAIL": "its node did not boot; submit the job again or pick another partition",
    "TIMEOUT": "it reached its walltime; ask for more time ('time' in platforms.ini, "
    "'worker_walltime' for Dask workers)",
    "DEADLINE": "it reached its deadline; submit it again with a later --deadline",
    "OUT_OF_MEMORY": "it used more memory than it asked for; raise 'mem' (or 'mem_per_cpu') in "
    "platforms.ini, 'worker_memory' for Dask workers",
    "PREEMPTED": "a job of higher priority preempted it; submit it again, or use a partition or "
    "QOS without preemption",
    "REVOKED": "a federated cluster revoked it; submit it again",
    "SPECIAL_EXIT": "it was requeued in a special state; release it with scontrol or submit again",
}
#: What to do about a pending reason that does not clear by itself, by reason code.
REASON_FIXES = {
    "ReqNodeNotAvail": "the nodes it needs are down, drained or reserved; pick another partition "
    "or ask the cluster's administrators (sinfo -R shows why)",
    "PartitionDown": "its partition is down; pick another partition or wait for the "
    "administrators to bring it up",
    "PartitionInactive": "its partition is inactive; pick another partition",
    "PartitionConfig": "the request does not fit the partition's configuration (size, account, "
    "QOS); change 'partition' or the sizes",
    "PartitionNodeLimit": "it asks for more nodes than the partition allows; lower the request",
    "PartitionTimeLimit": "its walltime exceeds the partition's MaxTime; lower 'time' (or "
    "'worker_walltime')",
    "JobHeldUser": "it is held; release it with `scontrol release JOBID` or cancel it",
    "JobHeldAdmin": "an administrator holds it; ask them, or cancel it",
    "DependencyNeverSatisfied": "a job it depends on failed; cancel it and submit again "
    "without the dependency",
    "InvalidAccount": "the account is not valid here; fix 'account'",
    "InvalidQOS": "the QOS is not valid here; fix the profile's directives",
    "AccountNotAllowed": "the account may not use this partition; change 'account' or 'partition'",
    "QOSNotAllowed": "the QOS may not use this partition; change the QOS or 'partition'",
    "BadConstraints": "no node has the features asked for; fix the constraint",
}


def parse_max_array_size(output: str) -> int | None:
    """``MaxArraySize`` of ``scontrol show config`` (indices below it: that many tasks from 0)."""
    match = re.search(r"(?m)^MaxArraySize\s*=\s*(\d+)\s*$", output)
    return int(match.group(1)) if match else None


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
        started=start if state in RUNNING_STATES and start not in NO_ESTIMATE else "",
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
        started=fields.get("StartTime", "") if fields["JobState"] in RUNNING_STATES else "",
    )


def parse_sacct(output: str) -> JobFields | None:
    """Parse `sacct -n -P -X -o State,ExitCode,NodeList` output."""
    line = output.strip().splitlines()[0] if output.strip() else ""
    parts = line.split("|")
    if len(parts) < 3:
        return None
    state = parts[0].split()[0]  # "CANCELLED by 1000" -> "CANCELLED"
    return JobFields(state=state, exit_code=parts[1], node=parts[2])


def _mib(text: str) -> int | None:
    """MiB of a sinfo/scontrol memory figure ("16000", "16000+"); None when not a number."""
    digits = text.strip().rstrip("+")
    return int(digits) if digits.isdigit() else None


def _limit(fields: dict[str, str], key: str) -> int | None:
    value = fields.get(key, "")
    return int(value) if value.isdigit() else None


def parse_partitions(output: str) -> dict[str, dict[str, str]]:
    """Each partition's fields in `scontrol show partition -o` output, by name."""
    partitions: dict[str, dict[str, str]] = {}
    for line in output.splitlines():
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        if fields.get("PartitionName"):
            partitions[fields["PartitionName"]] = fields
    return partitions


def parse_sinfo_nodes(output: str, partition: str) -> tuple[NodeSize, ...]:
    """The nodes of ``partition`` in `sinfo -h -N -o '%N|%c|%m|%P'` output."""
    nodes: dict[str, NodeSize] = {}
    for line in output.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 4 or parts[3].rstrip("*") != partition:
            continue
        cpus = _mib(parts[1])
        if parts[0] and cpus is not None:
            nodes[parts[0]] = NodeSize(parts[0], cpus, _mib(parts[2]))
    return tuple(nodes.values())


def parse_node_limits(output: str, partition: str | None) -> PartitionLimits | None:
    """The limits of ``partition`` (None: the default one) in the output of the node-limits
    command (sinfo nodes, separator, scontrol partitions); None when they cannot be told."""
    sinfo, found, scontrol = output.partition(LIMITS_SEPARATOR)
    partitions = parse_partitions(scontrol) if found else {}
    if not partitions:
        return None
    if partition is None:
        partition = next((n for n, f in partitions.items() if f.get("Default") == "YES"), None)
        if partition is None:
            return None
    fields = partitions.get(partition)
    if fields is None:
        return PartitionLimits(partition=partition, exists=False, partitions=tuple(partitions))
    try:
        max_time = parse_slurm_time(fields.get("MaxTime", "UNLIMITED"))
    except ValueError:
        max_time = None
    return PartitionLimits(
        partition=partition,
        partitions=tuple(partitions),
        nodes=parse_sinfo_nodes(sinfo, partition),
        max_cpus_per_node=_limit(fields, "MaxCPUsPerNode"),
        max_mem_per_node_mb=_limit(fields, "MaxMemPerNode"),
        max_time_seconds=max_time,
        state=fields.get("State", ""),
    )


class Slurm(BatchSystem):
    """SLURM's command line tools on the login node."""

    name = "slurm"
    display_name = "SLURM"
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
    running_states = RUNNING_STATES
    suspended_states = frozenset({"SUSPENDED"})
    jobqueue_section = "slurm"
    jobqueue_class = "SLURMCluster"
    jobqueue_memory_per_cpu = ("--mem", "--mem-per-cpu")
    setup_variables = ("SLURM_CONF",)
    final_state_fixes = FINAL_STATE_FIXES
    reason_fixes = REASON_FIXES
    default_reason_fix = (
        "the request exceeds a limit of your account or QOS, or names something unusable; "
        "change the request or ask the cluster's administrators (scontrol show job JOBID "
        "explains)"
    )

    array_index_variable = "SLURM_ARRAY_TASK_ID"
    array_index_placeholder = "%a"
    array_task_label = "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
    array_limit_query = ("scontrol show config", parse_max_array_size)
    array_limit_name = "MaxArraySize"
    multi_node_jobs = True

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

    def on_each_node(self, command: Sequence[str], env: Mapping[str, str]) -> list[str]:
        """``srun``, one task on each node of the allocation with the job's CPUs per task
        (given, as srun from SLURM 23.11 on no longer takes them from the job); a task that
        fails does not end the others."""
        return [
            "srun",
            f"--nodes={env.get('SLURM_JOB_NUM_NODES', '1')}",
            "--ntasks-per-node=1",
            f"--cpus-per-task={env.get('SLURM_CPUS_PER_TASK', '1')}",
            "--kill-on-bad-exit=0",
            *command,
        ]

    def header(self, job: JobSpec, job_name: str, output: str) -> list[str]:
        """sbatch options of a one-task job, of one task on each of ``job.nodes``, or of
        ``job.tasks`` tasks placed by SLURM (memory then per CPU: ``--mem`` is per node)."""
        if job.tasks > 1:
            shape = [f"--ntasks={job.tasks}"]
            if job.mem and not job.mem_per_cpu:
                per_cpu = math.ceil(memory_mib(job.mem) / job.cpus)
                job = dataclasses.replace(job, mem=None, mem_per_cpu=f"{per_cpu}M")
        elif job.nodes > 1:
            shape = [f"--nodes={job.nodes}", "--ntasks-per-node=1"]
        else:
            shape = ["--nodes=1", "--ntasks=1"]
        options = [
            f"--job-name={job_name}",
            f"--output={output}",
            f"--time={job.time}",
            *shape,
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

    def node_limits(self, partition: str | None) -> PartitionLimits | None:
        """The partition's nodes (sinfo) and limits (scontrol), in one command."""
        only = f" -p {shlex.quote(partition)}" if partition else ""
        command = (
            f"sinfo -h -N{only} -o '{SINFO_NODE_FORMAT}'; echo {LIMITS_SEPARATOR}; "
            "scontrol show partition -o"
        )
        code, out, _ = self.run(command, None)
        return parse_node_limits(out, partition) if code == 0 else None

    def named_jobs(self, job_name: str, user: str) -> list[JobStatus] | None:
        """The queued jobs of ``user`` named ``job_name`` with their state and reason."""
        argv = ["squeue", "-h", f"--name={job_name}", "-u", user, "-o", NAMED_FORMAT]
        code, out, _ = self.run(shlex.join(argv), None)
        if code != 0:
            return None
        jobs = []
        for line in out.splitlines():
            job_id, state, reason = [*line.strip().split("|", 2), "", ""][:3]
            if job_id and state:
                fields = JobFields(state=state, reason="" if reason == "None" else reason)
                jobs.append(super().complete(job_id, fields))
        return jobs

    walltime_states = frozenset({"TIMEOUT"})

    def waits_for_good(self, reason: str) -> bool:
        """True for reasons that need a changed request or an administrator."""
        code = self.reason_code(reason)
        return (
            code in FOREVER_REASONS
            or code.startswith(FOREVER_PREFIXES)
            or (code.startswith("Max") and code.endswith("PerAccount"))
        )

    def complete(self, job_id: str, fields: JobFields) -> JobStatus:
        """A pending job gets squeue's start estimate when the first query had none."""
        status = super().complete(job_id, fields)
        if status.pending and not status.start_estimate:
            _, start, _ = self.run(f"squeue --start -h -j {shlex.quote(job_id)} -o %S", None)
            if start.strip() not in NO_ESTIMATE:
                status = dataclasses.replace(status, start_estimate=start.strip())
        return status
