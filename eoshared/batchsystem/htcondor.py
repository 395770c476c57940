"""HTCondor: condor_submit, condor_q, condor_history and condor_rm.

HTCondor has no header directives: a job is a *submit description* naming an executable. The
job script written for HTCondor carries its submit description as ``#HTCondor`` comment lines
(where other batch systems have ``#SBATCH`` or ``#PBS`` lines), ending with ``queue``. Submitting
saves the script into the job's run directory (it is the description's ``executable``, 0700)
and gives the comment lines, prefix removed, to ``condor_submit``.

Assumptions, as on the sites that run interactive jobs: the run directory is on a filesystem
the execute points share with the login node (``should_transfer_files = NO``), so the job
writes its output there while it runs; the job gets the login shell's ``HOME``, ``USER``,
``LOGNAME``, ``PATH`` and ``LANG`` (``getenv``), its own id in ``HTCONDOR_JOB_ID`` and its proc
id (an array task's index) in ``EOHPC_ARRAY_INDEX``.

A chain of jobs (a staged pipeline) is a DAG run by DAGMan: one node per step, an array step one
node of ``queue N`` jobs (at most ``max_materialize`` of them in the queue at once), submitted
with ``condor_submit_dag``. Its state is the DAGMan job's (``DAG_Status``) and its node jobs'
(``DAGNodeName``, ``DAGManJobId``) in condor_q and condor_history.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eoshared.batchsystem.base import (
    FINISHED,
    PENDING,
    RUNNING,
    UNKNOWN,
    BatchSystem,
    ChainStep,
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
#: The job's proc id (an array task's index), set by its submit description.
ARRAY_INDEX_VARIABLE = "EOHPC_ARRAY_INDEX"
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
    "NOT_RUN": "DAGMan did not run this step: a step before it failed, or its DAG was removed; "
    "see the steps before it",
}
#: The state of a DAG node that DAGMan has not submitted yet, and will once the node before it
#: succeeded.
WAITING = "WAITING"
#: The state of a DAG node that DAGMan ended without submitting.
NOT_RUN = "NOT_RUN"
#: A chain's files in its run directory: the DAG, DAGMan's configuration for it.
DAG_FILE = "pipeline.dag"
DAG_CONFIG = "pipeline.dag.config"
#: DAGMan's configuration of a chain's DAG. The schedd's direct submission (DAGMan's default)
#: ignores max_materialize: condor_submit bounds an array's jobs in the queue. DAGMan's counts in
#: its job ad (DAG_NodesDone, ...) are updated every 10 s (default 300 s).
DAG_CONFIG_TEXT = """\
# DAGMan's configuration of this DAG, written by eo-hpc.
DAGMAN_USE_DIRECT_SUBMIT = False
DAGMAN_QUEUE_UPDATE_INTERVAL = 10
"""
#: condor_submit_dag's line naming the DAGMan job's cluster.
DAG_SUBMITTED = re.compile(r"(?m)^\d+ job\(s\) submitted to cluster (\d+)\.")
#: DAG_Status values of a DAGMan job (DAG_STATUS_OK, _ERROR, _NODE_FAILED, ...).
DAG_STATUS = {
    0: "its DAG succeeded",
    1: "DAGMan hit an error",
    2: "a node failed",
    3: "the DAG was aborted",
    4: "the DAG was removed",
    5: "the DAG has a cycle",
    6: "the DAG was halted",
}
#: The attributes of a DAG's jobs (the DAGMan job and its node jobs) that chain_statuses reads.
DAG_ATTRIBUTES = (
    "ClusterId,ProcId,DAGNodeName,DAGManJobId,TotalSubmitProcs,DAG_Status,DAG_NodesTotal,"
    f"DAG_NodesDone,DAG_NodesFailed,{ATTRIBUTES}"
)
#: Separates condor_q's and condor_history's output of a DAG's jobs.
DAG_SEPARATOR = "--eohpc-dag-history--"


def _host(slot: Any) -> str:
    """``slot1_2@node.example.org`` -> ``node.example.org``."""
    return str(slot or "").rpartition("@")[2]


def parse_config_int(output: str) -> int | None:
    """A whole number that ``condor_config_val`` printed (None for anything else)."""
    text = output.strip()
    return int(text) if text.isdigit() else None


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


def dag_query(cluster: str) -> str:
    """One command: condor_q's and condor_history's ads of DAGMan job ``cluster`` and its node
    jobs, separated by DAG_SEPARATOR; it fails when condor_q does."""
    constraint = f"ClusterId == {cluster} || DAGManJobId == {cluster}"
    options = ["-constraint", constraint, "-json", "-attributes", DAG_ATTRIBUTES]
    return (
        f"{shlex.join(['condor_q', *options])} || exit 1; echo {DAG_SEPARATOR}; "
        f"{shlex.join(['condor_history', *options])}"
    )


@dataclass(frozen=True)
class DagJobs:
    """What condor_q and condor_history know of a DAGMan job and its node jobs (a job in both,
    as it left the queue between the two, as condor_history has it)."""

    #: The DAGMan job's ad; None when neither knows it.
    dagman: dict[str, Any] | None
    #: The node jobs' ads by node name, each node's by ProcId.
    nodes: dict[str, list[dict[str, Any]]]


def parse_dag_jobs(output: str, cluster: str) -> DagJobs | None:
    """The output of ``dag_query(cluster)``; None when it cannot be read."""
    queued, separator, history = output.partition(DAG_SEPARATOR)
    if not separator:
        return None
    ads: dict[tuple[int, int], dict[str, Any]] = {}
    for part in (queued, history):
        try:
            found = json.loads(part) if part.strip() else []
        except ValueError:
            return None
        if not isinstance(found, list):
            return None
        for ad in found:
            if isinstance(ad, dict) and isinstance(ad.get("ClusterId"), int):
                ads[(ad["ClusterId"], int(ad.get("ProcId") or 0))] = ad
    dagman = None
    nodes: dict[str, list[dict[str, Any]]] = {}
    for (job_cluster, _), ad in sorted(ads.items()):
        if str(job_cluster) == cluster:
            dagman = ad
        elif ad.get("DAGNodeName"):
            nodes.setdefault(str(ad["DAGNodeName"]), []).append(ad)
    return DagJobs(dagman, nodes)


def dag_text(nodes: Sequence[str], name: str) -> str:
    """A DAG of ``nodes`` in a line, each running once the one before it succeeded; node N's
    submit description is ``N.sub``. No RETRY: the caller retries what needs retrying."""
    return "\n".join(
        [
            f"# {name}, written by eo-hpc: each node runs once the one before it succeeded.",
            f"CONFIG {DAG_CONFIG}",
            *(f"JOB {node} {node}.sub" for node in nodes),
            *(f"PARENT {node} CHILD {after}" for node, after in itertools.pairwise(nodes)),
            "",
        ]
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
    array_index_variable = ARRAY_INDEX_VARIABLE
    array_index_placeholder = "$(ProcId)"
    array_task_label = f"${{{JOB_ID_VARIABLE}}}"
    array_limit_query = ("condor_config_val MAX_JOBS_PER_SUBMISSION", parse_config_int)
    array_limit_name = "MAX_JOBS_PER_SUBMISSION"
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
            f'environment = "{JOB_ID_VARIABLE}=$(ClusterId).$(ProcId) '
            f'{ARRAY_INDEX_VARIABLE}=$(ProcId)"',
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
        """The submit description's lines; the profile's own come before the final ``queue``
        (an array's ``queue N`` among the job's directives, else ``queue``)."""
        queue = f"{self.directive_prefix} queue"
        lines = []
        for line in super().directives(job, job_name, output):
            if re.fullmatch(rf"{self.directive_prefix} queue(\s.*)?", line):
                queue = line
            else:
                lines.append(line)
        return [*lines, queue]

    def array_directive(self, count: int, parallel: int | None = None) -> list[str]:
        """``queue N`` (the task's index is its ProcId) and, with ``parallel``,
        ``max_materialize``: at most that many of its jobs in the queue, so running, at once."""
        if count < 1:
            raise ValueError("a job array needs at least one task")
        throttle = [f"max_materialize = {parallel}"] if parallel else []
        return [*throttle, f"queue {count}"]

    def check_chains(self) -> None:
        """DAGMan chains the jobs; only the array is asked for."""
        self.array_directive(1)

    def node_description(self, script: str, executable: str) -> str:
        """A DAG node's submit description: the script's ``#HTCondor`` lines with
        ``executable`` (each step has its own script file) and the DAG's batch name (none of
        its own)."""
        prefix = f"{self.directive_prefix} "
        lines = []
        for row in script.splitlines():
            line = row.removeprefix(prefix)
            if line == row or line.startswith("batch_name ="):
                continue
            lines.append(f"executable = {executable}" if line.startswith("executable =") else line)
        return "\n".join(lines) + "\n"

    def submit_chain(self, steps: Sequence[ChainStep], run_dir: str, name: str) -> dict[str, str]:
        """Write the DAG (``pipeline.dag``: a node per step, in a line), DAGMan's configuration
        of it, each step's script (``job-<step>.sh``) and submit description (``<step>.sub``)
        into ``run_dir`` and submit the DAG with ``condor_submit_dag``, batch name ``name``.
        Every step is kept as the DAGMan job that runs it."""
        files = {
            DAG_FILE: dag_text([step.name for step in steps], name),
            DAG_CONFIG: DAG_CONFIG_TEXT,
        }
        scripts = []
        for step in steps:
            script = step.script([])
            scripts.append(f"job-{step.name}.sh")
            files[scripts[-1]] = script
            files[f"{step.name}.sub"] = self.node_description(script, f"{run_dir}/{scripts[-1]}")
        writes = " && ".join(
            f"printf '%s' {shlex.quote(text)} > {shlex.quote(path)}" for path, text in files.items()
        )
        submit = shlex.join(["condor_submit_dag", "-batch-name", name, DAG_FILE])
        command = (
            f"cd {shlex.quote(run_dir)} && umask 077 && {writes} && "
            f"chmod 700 {' '.join(map(shlex.quote, scripts))} && {submit}"
        )
        code, out, err = self.run(command, None)
        match = DAG_SUBMITTED.search(out) if code == 0 else None
        if match is None:
            message = err.strip() or out.strip() or f"exit code {code}"
            raise BatchSystemError(
                f"condor_submit_dag rejected the DAG {run_dir}/{DAG_FILE}: {message}"
            )
        dagman = f"{match.group(1)}.0"
        return {step.name: dagman for step in steps}

    def chain_description(self, jobs: Mapping[str, str]) -> str:
        """The DAGMan job and its DAG's nodes."""
        dagman = next(iter(jobs.values()), "?")
        return f"DAGMan job {dagman} runs the DAG {DAG_FILE} ({' -> '.join(jobs)})"

    def chain_statuses(self, jobs: Mapping[str, str]) -> dict[str, JobStatus]:
        """Each step's status: its node's job (an array's jobs together) once DAGMan submitted
        it; before, WAITING while the DAGMan job runs and NOT_RUN once it ended."""
        found: dict[str, DagJobs] = {}
        statuses: dict[str, JobStatus] = {}
        previous = ""
        for step, dagman in jobs.items():
            if dagman not in found:
                found[dagman] = self.dag_jobs(dagman)
            dag = found[dagman]
            ads = dag.nodes.get(step)
            dagman_status = self.dagman_status(dagman, dag.dagman)
            if ads:
                statuses[step] = self.node_status(ads, not dagman_status.finished)
            else:
                statuses[step] = self.unsubmitted(previous, dagman_status, dag.dagman)
            previous = step
        return statuses

    def cancel_chain(self, jobs: Mapping[str, str], after: str = "") -> None:
        """Remove the DAGMan job (condor_rm: its node jobs go with it). After a failed step
        nothing is removed: DAGMan submits no node after a failed one and ends."""
        if after:
            return
        for dagman in dict.fromkeys(jobs.values()):
            self.cancel(dagman)

    def dag_jobs(self, dagman: str) -> DagJobs:
        """The ads of DAGMan job ``dagman`` and its node jobs (one command)."""
        match = re.fullmatch(r"(\d+)(?:\.\d+)?", dagman)
        if match is None:
            raise BatchSystemError(f"'{dagman}' is not an HTCondor job id")
        cluster = match.group(1)
        code, out, err = self.run(dag_query(cluster), None)
        found = parse_dag_jobs(out, cluster) if code == 0 else None
        if found is None:
            raise BatchSystemError(
                f"condor_q could not tell the state of DAGMan job {dagman}: "
                f"{(err or out).strip()[-300:] or f'exit code {code}'}"
            )
        return found

    def dagman_status(self, dagman: str, ad: dict[str, Any] | None) -> JobStatus:
        """The DAGMan job's own status (a scheduler-universe job: no slot to analyse); its
        reason says DAG_Status once it has ended."""
        fields = parse_ad(ad) if ad else None
        if ad is None or fields is None:
            return JobStatus(job_id=dagman, state=UNKNOWN)
        status = super().complete(dagman, fields)
        code = ad.get("DAG_Status")
        if status.finished and isinstance(code, int):
            text = DAG_STATUS.get(code, f"DAG_Status {code}")
            status = dataclasses.replace(status, reason=text)
        return status

    def unsubmitted(self, previous: str, dagman: JobStatus, ad: dict[str, Any] | None) -> JobStatus:
        """A node DAGMan has not submitted: WAITING while DAGMan runs, NOT_RUN once it ended."""
        if dagman.state == UNKNOWN:
            return dagman
        if dagman.finished:
            ended = dagman.reason or dagman.state
            reason = f"DAGMan job {dagman.job_id} ended ({ended}) without submitting it"
            return JobStatus(job_id=dagman.job_id, state=NOT_RUN, phase=FINISHED, reason=reason)
        if dagman.state in self.held_states:
            reason = f"DAGMan job {dagman.job_id} is held: {dagman.reason}"
        elif previous:
            reason = f"DAGMan job {dagman.job_id} submits it once {previous} has succeeded"
        else:
            reason = f"DAGMan job {dagman.job_id} has not submitted it yet"
        if ad and isinstance(ad.get("DAG_NodesTotal"), int):
            reason += f"; {ad.get('DAG_NodesDone', 0)} of {ad['DAG_NodesTotal']} nodes done"
        return JobStatus(job_id=dagman.job_id, state=WAITING, phase=PENDING, reason=reason)

    def node_status(self, ads: list[dict[str, Any]], dag_runs: bool) -> JobStatus:
        """A submitted node's status from its jobs' ads: an array's (several jobs, id the
        cluster's) runs while one of its jobs is queued or, while DAGMan runs, is still to be
        queued; once ended, it is the first job that failed, else the first removed one."""
        procs = [(ad, fields) for ad in ads if (fields := parse_ad(ad)) is not None]
        if not procs:
            return JobStatus(job_id=str(ads[0].get("ClusterId", "?")), state=UNKNOWN)
        cluster = procs[0][0]["ClusterId"]
        total = max(len(procs), _number(procs[0][0].get("TotalSubmitProcs")) or 1)
        job_id = f"{cluster}.{procs[0][0].get('ProcId', 0)}" if total == 1 else str(cluster)
        queued = [(ad, f) for ad, f in procs if self.phase(f.state) != FINISHED]
        ended = [f for _, f in procs if self.phase(f.state) == FINISHED]
        if queued or (dag_runs and len(ended) < total):
            running = [(ad, f) for ad, f in queued if self.phase(f.state) == RUNNING]
            if queued:
                ad, fields = (running or queued)[0]
                status = self.complete(f"{cluster}.{ad.get('ProcId', 0)}", fields)
            else:
                status = JobStatus(job_id=job_id, state="IDLE", phase=PENDING)
            if total > 1:
                counts = f"{len(ended)} of {total} tasks ended, {len(running)} running"
                reason = f"{counts}; {status.reason}" if status.reason and not running else counts
                status = dataclasses.replace(status, reason=reason)
            return dataclasses.replace(status, job_id=job_id)
        failing = [f for f in ended if f.exit_code not in ("", "0")]
        removed = [f for f in ended if f.state in self.final_state_fixes]
        if failing or removed or len(ended) >= total:
            chosen = (failing or removed or ended)[0]
        else:
            never = total - len(ended)
            chosen = JobFields(
                state="REMOVED", reason=f"{never} of {total} tasks never ran: DAGMan ended"
            )
        return self.complete(job_id, chosen)

    def submit_command_for(self, script: str) -> str:
        """Save the script as its own executable, then submit its ``#HTCondor`` lines."""
        match = re.search(rf"(?m)^{self.directive_prefix} executable = (.+)$", script)
        if match is None:
            raise BatchSystemError(f"the job script has no '{self.directive_prefix} executable'")
        path = shlex.quote(match.group(1).strip())
        prefix = shlex.quote(f"s/^{self.directive_prefix} //p")
        return f"cat > {path} && chmod 700 {path} && sed -n {prefix} {path} | {self.submit_command}"
