"""HTCondor: condor_submit, condor_q, condor_history and condor_rm.

HTCondor has no header directives: a job is a *submit description* naming an executable. The
job script written for HTCondor carries its submit description as ``#HTCondor`` comment lines
(where other batch systems have ``#SBATCH`` or ``#PBS`` lines), ending with ``queue``. Submitting
saves the script into the job's run directory (it is the description's ``executable``, 0700)
and gives the comment lines, prefix removed, to ``condor_submit``.

Assumptions, as on the sites that run interactive jobs: the run directory is on a filesystem
the execute points share with the login node (``should_transfer_files = NO``), so the job
writes its output there while it runs; the job gets the login shell's ``HOME``, ``USER``,
``LOGNAME``, ``PATH`` and ``LANG`` (``getenv``) and its own id in ``HTCONDOR_JOB_ID``.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import time
from typing import Any

from eoshared.batchsystem.base import (
    BatchSystem,
    JobFields,
    JobSpec,
    JobStatus,
    NodeSize,
    PartitionLimits,
    Runner,
    local_runner,
)
from eoshared.batchsystem.units import job_memory_mib, parse_slurm_time
from eoshared.errors import BatchSystemError

#: JobStatus numbers and their names.
JOB_STATUS = {
    1: "IDLE",
    2: "RUNNING",
    3: "REMOVED",
    4: "COMPLETED",
    5: "HELD",
    6: "TRANSFERRING_OUTPUT",
    7: "SUSPENDED",
}
ATTRIBUTES = (
    "JobStatus,HoldReason,LastRejMatchReason,RemoteHost,LastRemoteHost,ExitCode,ExitBySignal,"
    "ExitSignal,JobCurrentStartDate,AllowedExecuteDuration,RemoveReason"
)
#: The job script's file in the run directory: the submit description's executable.
SCRIPT_NAME = "job.sh"
#: The job's own id, set by its submit description.
JOB_ID_VARIABLE = "HTCONDOR_JOB_ID"
#: The login shell's variables a job gets.
GETENV = "HOME, USER, LOGNAME, PATH, LANG"
DEFAULT_DISK = "1GB"
#: A running job past its allowed_execute_duration, as a ClassAd expression.
WALLTIME_EXCEEDED = (
    "JobStatus == 2 && AllowedExecuteDuration =!= undefined && "
    "time() - JobCurrentStartDate > AllowedExecuteDuration"
)
#: The hold reason of such a job; reached_walltime knows it (and HTCondor's own hold for the
#: same limit) by the words "execute duration".
WALLTIME_HOLD_REASON = "The job exceeded allowed execute duration"
#: condor_q -better-analyze's summary when the job's Requirements reject every slot.
REJECTED = re.compile(r"Of (\d+) machines,\s+(\d+) are rejected by your job's requirements")
#: What the launcher adds to the reason of an idle job no slot of the pool matches.
NO_SLOT_MATCHES = "no slot matches the job's requirements"
#: Seconds between two analyses of the same idle job (condor_q -better-analyze asks the
#: collector for every slot).
ANALYZE_SECONDS = 30.0
#: What dask-jobqueue's htcondor section must set besides cores and memory.
JOBQUEUE_REQUIRED = {"disk": 'each worker job\'s disk request, e.g. disk: "10GB"'}
#: Final states that are a failure whatever the exit code, and what to do about each.
FINAL_STATE_FIXES = {
    "REMOVED": "the job was removed (condor_rm by you or an administrator, or a policy); "
    "submit it again",
}


def _host(slot: Any) -> str:
    """``slot1_2@node.example.org`` -> ``node.example.org``."""
    return str(slot or "").rpartition("@")[2]


def parse_ads(output: str) -> JobFields | None:
    """Parse ``condor_q -json`` or ``condor_history -json`` of one job; None when absent."""
    text = output.strip()
    if not text:
        return None
    try:
        ads = json.loads(text)
    except ValueError:
        return None
    if not ads:
        return None
    return parse_ad(ads[0])


def parse_ad(ad: dict[str, Any]) -> JobFields | None:
    """The fields of one job's ClassAd; None when it has no JobStatus."""
    status = ad.get("JobStatus")
    state = JOB_STATUS.get(status, f"STATUS_{status}") if isinstance(status, int) else ""
    if not state:
        return None
    reason = ""
    if state == "HELD":
        reason = str(ad.get("HoldReason", ""))
    elif state == "IDLE":
        reason = str(ad.get("LastRejMatchReason", ""))
    elif state == "REMOVED":
        reason = str(ad.get("RemoveReason", ""))
    exit_code = ""
    if ad.get("ExitBySignal"):
        exit_code = f"signal {ad.get('ExitSignal', '?')}"
    elif ad.get("ExitCode") is not None:
        exit_code = str(ad["ExitCode"])
    time_left = ""
    limit, started = ad.get("AllowedExecuteDuration"), ad.get("JobCurrentStartDate")
    if state == "RUNNING" and isinstance(limit, int) and isinstance(started, int):
        left = max(0, limit - (int(time.time()) - started))
        time_left = f"{left // 3600}:{left % 3600 // 60:02d}:{left % 60:02d}"
    return JobFields(
        state=state,
        reason=reason,
        node=_host(ad.get("RemoteHost") or ad.get("LastRemoteHost")),
        time_left=time_left,
        exit_code=exit_code,
        started=str(started) if state == "RUNNING" and isinstance(started, int) else "",
    )


#: The slot attributes the size check reads (condor_status).
SLOT_ATTRIBUTES = (
    "Name,Machine,SlotType,PartitionableSlot,TotalSlotCpus,TotalSlotMemory,TotalCpus,"
    "TotalMemory,Cpus,Memory"
)


def _number(*values: Any) -> int | None:
    """The first of ``values`` that is a number, as an int."""
    for value in values:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return int(value)
    return None


def parse_slots(output: str) -> PartitionLimits | None:
    """``condor_status -json``: the pool's slots, each with the most one job can get from it
    (a partitionable slot's or a static slot's TotalSlotCpus/TotalSlotMemory, else its
    machine's TotalCpus/TotalMemory; dynamic slots are carved out of a partitionable one and
    left out). An empty pool has no slots (a pool may add them on demand: nothing is refused);
    None when the output cannot be read."""
    text = output.strip()
    try:
        ads = json.loads(text) if text else []
    except ValueError:
        return None
    if not isinstance(ads, list):
        return None
    slots = []
    for ad in ads:
        if not isinstance(ad, dict) or str(ad.get("SlotType", "")) == "Dynamic":
            continue
        cpus = _number(ad.get("TotalSlotCpus"), ad.get("Cpus"), ad.get("TotalCpus"))
        if cpus is None:
            continue
        memory = _number(ad.get("TotalSlotMemory"), ad.get("Memory"), ad.get("TotalMemory"))
        name = str(ad.get("Name") or ad.get("Machine") or "?")
        slots.append(NodeSize(name, cpus, memory))
    return PartitionLimits(
        partition="",
        nodes=tuple(slots),
        kind="pool",
        node_word="slot",
        limit_names=("request_cpus", "request_memory", "allowed_execute_duration"),
    )


class HTCondor(BatchSystem):
    """HTCondor's access point (schedd) on the login node."""

    name = "htcondor"
    display_name = "HTCondor"
    directive_prefix = "#HTCondor"
    job_id_variable = JOB_ID_VARIABLE
    submit_command = "condor_submit -terse -"
    # "-terse" prints "<first id> - <last id>", e.g. "123.0 - 123.0".
    job_id_pattern = re.compile(r"(?m)^(\d+\.\d+)\s+-\s+\d+\.\d+\s*$")
    cancel_command = "condor_rm {job_id}"
    cancel_gone = ("Couldn't find", "not found", "already")
    cancel_by_name = (
        "condor_rm", "-constraint", 'JobBatchName == "{name}" && Owner == "{user}"',
    )  # fmt: skip
    status_queries = (
        (f"condor_q {{job_id}} -json -attributes {ATTRIBUTES}", parse_ads),
        (f"condor_history {{job_id}} -json -limit 1 -attributes {ATTRIBUTES}", parse_ads),
    )
    pending_states = frozenset({"IDLE", "HELD", "SUSPENDED"})
    running_states = frozenset({"RUNNING", "TRANSFERRING_OUTPUT"})
    suspended_states = frozenset({"SUSPENDED"})
    output_pattern = "job.out"
    jobqueue_section = "htcondor"
    jobqueue_class = "HTCondorCluster"
    # dask-jobqueue's htcondor section has neither queue nor account, nor a walltime; its
    # jobs need a disk request, and it names each job (batch_name) after its worker.
    jobqueue_inherits = ()
    jobqueue_walltime = False
    jobqueue_required = JOBQUEUE_REQUIRED
    jobqueue_name_directive = "batch_name"
    setup_variables = ("_CONDOR_JOB_AD", "CONDOR_CONFIG")
    held_states = frozenset({"HELD"})
    held_fix = (
        "it is held: its hold reason says why (condor_hold, a file it cannot read or write, "
        "a policy); fix that and `condor_release JOBID`, or remove it"
    )
    final_state_fixes = FINAL_STATE_FIXES
    default_reason_fix = (
        "change what the job asks for (request_cpus, request_memory, request_disk, or a "
        "'requirements' line in the profile's directives; `condor_status` lists the slots), "
        "or ask the pool's administrators"
    )
    #: What to do about a job that completed with a non-zero exit code.
    exit_fix = (
        "the job script exited non-zero: see the last lines of its output (a module that does "
        "not load, an environment path that does not exist, a crash); fix the profile's "
        "environment (modules, env_path) or run --mode install"
    )

    def __init__(self, run: Runner = local_runner) -> None:
        super().__init__(run)
        #: job id -> (when, what) of the last analysis of an idle job that found no match.
        self._analyses: dict[str, tuple[float, str]] = {}

    @classmethod
    def jobqueue_memory_mib(cls, n_bytes: int) -> int:
        """RequestMemory as dask-jobqueue computes it: whole MiB, rounded down."""
        return max(1, n_bytes // 1024**2)

    def no_match(self, job_id: str) -> str:
        """``Of 1 machines, 1 are rejected by your job's requirements`` when every slot of the
        pool rejects the idle job (condor_q -better-analyze), else ""."""
        when, found = self._analyses.get(job_id, (0.0, ""))
        if time.monotonic() - when < ANALYZE_SECONDS:
            return found
        code, out, _ = self.run(f"condor_q {shlex.quote(job_id)} -better-analyze", None)
        match = REJECTED.search(out) if code == 0 else None
        found = ""
        if match and int(match.group(1)) > 0 and match.group(1) == match.group(2):
            found = " ".join(match.group(0).split())
        self._analyses[job_id] = (time.monotonic(), found)
        return found

    def complete(self, job_id: str, fields: JobFields) -> JobStatus:
        """An idle job the negotiator found no match for is analysed: when every slot
        rejects it, its reason says so (it does not clear by itself)."""
        status = super().complete(job_id, fields)
        if status.state == "IDLE" and status.reason:
            rejected = self.no_match(job_id)
            if rejected:
                reason = f"{status.reason.strip()}: {rejected}; {NO_SLOT_MATCHES}"
                status = dataclasses.replace(status, reason=reason)
        return status

    def waits_for_good(self, reason: str) -> bool:
        """True when no slot of the pool matches the job's requirements."""
        return NO_SLOT_MATCHES in reason

    def reached_walltime(self, status: JobStatus) -> bool:
        """Held for running past its ``allowed_execute_duration`` (the job's ``time``)."""
        return status.state == "HELD" and "execute duration" in status.reason.lower()

    def failed(self, status: JobStatus) -> bool:
        """Removed, or completed with a non-zero exit code or by a signal."""
        return status.finished and (
            status.state in self.final_state_fixes or status.exit_code not in ("", "0")
        )

    def status_fix(self, status: JobStatus) -> str:
        """The fix of a removed job, or of one whose script failed."""
        if not self.failed(status):
            return ""
        return self.state_fix(status.state) or self.exit_fix

    def node_limits(self, partition: str | None) -> PartitionLimits | None:
        """The pool's slots and their sizes (condor_status, one command); HTCondor has no
        queues, so ``partition`` is not asked about."""
        code, out, _ = self.run(f"condor_status -json -attributes {SLOT_ATTRIBUTES}", None)
        return parse_slots(out) if code == 0 else None

    def named_jobs(self, job_name: str, user: str) -> list[JobStatus] | None:
        """The queued jobs of ``user`` whose batch name is ``job_name``."""
        constraint = f'JobBatchName == "{job_name}" && Owner == "{user}"'
        argv = ["condor_q", "-constraint", constraint, "-json", "-attributes",
                f"ClusterId,ProcId,{ATTRIBUTES}"]  # fmt: skip
        code, out, _ = self.run(shlex.join(argv), None)
        if code != 0:
            return None
        try:
            ads = json.loads(out) if out.strip() else []
        except ValueError:
            return None
        jobs = []
        for ad in ads:
            fields = parse_ad(ad)
            if fields is not None and "ClusterId" in ad:
                job = self.complete(f"{ad['ClusterId']}.{ad.get('ProcId', 0)}", fields)
                if not job.finished:
                    jobs.append(job)
        return jobs

    def header(self, job: JobSpec, job_name: str, output: str) -> list[str]:
        """The submit description (without ``queue``), its executable the script itself."""
        run_dir = output.rpartition("/")[0] or "."
        lines = [
            f"executable = {run_dir}/{SCRIPT_NAME}",
            f"initialdir = {run_dir}",
            f"batch_name = {job_name}",
            f"output = {output}",
            f"error = {output}",
            f"log = {run_dir}/job.log",
            "should_transfer_files = NO",
            f"getenv = {GETENV}",
            f'environment = "{JOB_ID_VARIABLE}=$(ClusterId).$(ProcId)"',
            f"request_cpus = {job.cpus}",
            f"request_disk = {DEFAULT_DISK}",
        ]
        mib = job_memory_mib(job.mem, job.mem_per_cpu, job.cpus)
        if mib:
            lines.append(f"request_memory = {mib}")
        seconds = parse_slurm_time(job.time)
        if seconds is not None:
            lines.append(f"allowed_execute_duration = {seconds}")
            # The schedd's own check of the same limit (every PERIODIC_EXPR_INTERVAL): HTCondor
            # 23.9 left a job running minutes past its allowed_execute_duration.
            lines += [
                f"periodic_hold = {WALLTIME_EXCEEDED}",
                f'periodic_hold_reason = "{WALLTIME_HOLD_REASON} ({seconds} s)"',
            ]
        if job.account:
            lines.append(f"accounting_group = {job.account}")
        return lines

    def directives(self, job: JobSpec, job_name: str, output: str) -> list[str]:
        """The submit description's lines; the profile's own come before the final ``queue``."""
        return [*super().directives(job, job_name, output), f"{self.directive_prefix} queue"]

    def submit_command_for(self, script: str) -> str:
        """Save the script as its own executable, then submit its ``#HTCondor`` lines."""
        match = re.search(rf"(?m)^{self.directive_prefix} executable = (.+)$", script)
        if match is None:
            raise BatchSystemError(f"the job script has no '{self.directive_prefix} executable'")
        path = shlex.quote(match.group(1).strip())
        prefix = shlex.quote(f"s/^{self.directive_prefix} //p")
        return f"cat > {path} && chmod 700 {path} && sed -n {prefix} {path} | {self.submit_command}"
