"""PBS (OpenPBS, PBS Professional): qsub, qstat, qdel and qselect."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from eoshared.batchsystem.base import (
    BatchSystem,
    JobFields,
    JobSpec,
    JobStatus,
    NodeSize,
    PartitionLimits,
)
from eoshared.batchsystem.units import hms, job_memory_mib, parse_slurm_time

#: qstat's job states: queued, held, waiting (for its start time), in transit, suspended,
#: suspended while the workstation is busy; running, exiting, array begun; the rest is final
#: (F finished, X subjob finished, M moved).
PENDING_STATES = frozenset({"Q", "H", "W", "T", "S", "U"})
RUNNING_STATES = frozenset({"R", "E", "B"})
#: qstat's Hold_Types letters.
HOLD_TYPES = {"u": "user", "o": "operator", "s": "system", "p": "bad password"}
#: The scheduler's comment on a job no node can ever run (the request exceeds every node or
#: a queue or server limit): it does not clear by itself.
NEVER_RUN = "Can Never Run"
#: The scheduler's comment on a job of a queue an administrator stopped (``started = false``).
QUEUE_STOPPED = "Queue not started"
#: What the launcher adds to the comment of a job waiting for nodes when every node is
#: offline or down (``pbsnodes``): that does not clear by itself either.
NO_NODE_UP = "every node is offline or down"
#: Node states in which a node runs no new job.
NODE_DOWN_STATES = ("offline", "down", "unknown", "stale", "unresolvable", "maintenance")
#: Comments of a job that waits for nodes (the launcher then asks whether any node is up).
WAITS_FOR_NODES = ("Not enough free nodes available", "Insufficient amount of resource")
REASON_FIXES = {
    QUEUE_STOPPED: "its queue is stopped (qmgr: started = false); pick another queue "
    "('partition' in platforms.ini, `qstat -Q` lists them) or ask the administrators",
    NO_NODE_UP: "no node can run it until an administrator brings one back (`pbsnodes -l` "
    "lists them with their comment); pick another queue or ask the administrators",
    NEVER_RUN: "no node or queue limit can ever give what it asks for (ncpus, mem, walltime); "
    "lower the request or pick another queue (`pbsnodes -a`, `qstat -Qf`)",
}
#: PBS's own negative exit statuses of a job that did not run its script (JOB_EXEC_*).
EXEC_FAILURES = {
    "-1": "the job could not start on its node (JOB_EXEC_FAIL1)",
    "-2": "the job could not start on its node (JOB_EXEC_FAIL2)",
    "-3": "the job was aborted on its node (JOB_EXEC_RETRY)",
    "-4": "the job's session could not be created (JOB_EXEC_INITABT)",
    "-10": "the job's standard output or error could not be opened (JOB_EXEC_FAILUID)",
    "-11": "the job was rerun by its node and failed (JOB_EXEC_RERUN)",
}
#: The exit status of a job its MOM killed for running past its walltime.
KILLED_WALLTIME = "-29"
#: PBS's exit statuses of a job its MOM killed for exceeding a limit (JOB_EXEC_KILL_*).
KILLED = {
    "-24": "it was killed for using more CPUs than it asked for (JOB_EXEC_KILL_NCPUS_BURST); "
    "raise 'cpus'",
    "-25": "it was killed for using more CPU than it asked for (JOB_EXEC_KILL_NCPUS_SUM); "
    "raise 'cpus'",
    "-26": "it was killed for using more virtual memory than it asked for (JOB_EXEC_KILL_VMEM); "
    "raise 'mem'",
    "-27": "it was killed for using more memory than it asked for (JOB_EXEC_KILL_MEM); raise 'mem'",
    "-28": "it was killed for using more CPU time than it asked for (JOB_EXEC_KILL_CPUT)",
    KILLED_WALLTIME: "it ran past its walltime (JOB_EXEC_KILL_WALLTIME); ask for more 'time' "
    "(platforms.ini or the profile; `qstat -Qf` shows the queue's limit)",
}


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
    reason = str(job.get("comment", "")) if state in PENDING_STATES else ""
    if state == "H" and not reason:
        holds = ", ".join(HOLD_TYPES.get(t, t) for t in str(job.get("Hold_Types", "")))
        reason = f"held ({holds} hold)" if holds else "held"
    start = (job.get("estimated") or {}).get("start_time", "")
    exit_status = job.get("Exit_status")
    return JobFields(
        state=state,
        reason=reason,
        node=node,
        time_left=time_left,
        start_estimate=str(start) if start else "",
        exit_code="" if exit_status is None else str(exit_status),
        started=str(job.get("stime", "")) if state == "R" else "",
    )


#: The server's largest job array when it sets none (PBS's documented default).
DEFAULT_MAX_ARRAY_SIZE = 10000


def parse_max_array_size(output: str) -> int | None:
    """``max_array_size`` of ``qstat -B -f -F json`` (the server's default when unset)."""
    documents = json_documents(output)
    servers = documents[0].get("Server") if documents and isinstance(documents[0], dict) else None
    if not isinstance(servers, dict) or not servers:
        return None
    server = next(iter(servers.values()))
    if not isinstance(server, dict):
        return None
    return _int(server.get("max_array_size", DEFAULT_MAX_ARRAY_SIZE))


def json_documents(output: str) -> list[Any]:
    """The JSON documents printed one after another (one ``qstat -F json`` per job); a
    document that does not parse ends the list."""
    decoder = json.JSONDecoder()
    documents, index, text = [], 0, output.strip()
    while index < len(text):
        try:
            document, index = decoder.raw_decode(text, index)
        except ValueError:
            break
        documents.append(document)
        while index < len(text) and text[index].isspace():
            index += 1
    return documents


def parse_qstat_job(output: str) -> JobFields | None:
    """The first job of ``qstat -f -F json -x JOB`` under the id qstat gives it (``12.server``
    also when asked about ``12``, as dask-jobqueue keeps a worker job's id); None when PBS does
    not list it."""
    jobs = parse_qstat_jobs(output)
    if not jobs:
        return None
    job_id, fields = jobs[0]
    return dataclasses.replace(fields, job_id=job_id)


def parse_qstat_jobs(output: str) -> list[tuple[str, JobFields]]:
    """Parse ``qstat -f -F json`` of jobs, one document per job or several jobs in one:
    (job id, fields) each."""
    found = []
    for document in json_documents(output):
        jobs = document.get("Jobs") if isinstance(document, dict) else None
        for job_id, job in (jobs or {}).items():
            fields = parse_qstat_json(json.dumps({"Jobs": {job_id: job}}))
            if fields is not None:
                found.append((job_id, fields))
    return found


#: Separates the documents of the node-limits command (pbsnodes, qstat -Q, qstat -B).
LIMITS_SEPARATOR = "--eohpc-pbs-limits--"
#: One command, one round trip: the nodes, the queues, the server (its default queue and
#: limits). Only qstat -Q failing fails it.
LIMITS_COMMAND = (
    f"pbsnodes -a -F json 2>/dev/null; echo {LIMITS_SEPARATOR}; "
    f"qstat -Q -f -F json || exit 1; echo {LIMITS_SEPARATOR}; "
    "qstat -B -f -F json 2>/dev/null; exit 0"
)
_SIZE = re.compile(r"^\s*(\d+)\s*([kmgtp]?)([bw]?)\s*$", re.IGNORECASE)
_SIZE_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}


def size_mib(text: Any) -> int | None:
    """MiB (rounded down) of a PBS size (``16gb``, ``2048mb``, ``1024kb``, bytes, ``w`` words
    of 8 bytes); None when unreadable."""
    match = _SIZE.match(str(text)) if text is not None else None
    if match is None:
        return None
    scale = 8 if match.group(3).lower() == "w" else 1
    return int(match.group(1)) * scale * 1024 ** _SIZE_POWERS[match.group(2).lower()] // 1024**2


def _int(value: Any) -> int | None:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def _first(document: Any, key: str) -> dict[str, Any] | None:
    """``document[key]`` of a ``-F json`` document ({"Queue": {...}}), None if it has none."""
    found = document.get(key) if isinstance(document, dict) else None
    return found if isinstance(found, dict) else None


def parse_nodes(output: str, queue: str) -> tuple[NodeSize, ...]:
    """``pbsnodes -a -F json``: the nodes a job of ``queue`` may run on, with their
    ``resources_available`` ncpus and mem. Nodes associated with the queue (the node's
    ``queue`` attribute) if any are, else the nodes associated with no queue."""
    documents = json_documents(output)
    nodes = _first(documents[0], "nodes") if documents else None
    sizes: dict[bool, list[NodeSize]] = {True: [], False: []}
    for name, node in sorted((nodes or {}).items()):
        if not isinstance(node, dict):
            continue
        own_queue = node.get("queue")
        if own_queue and own_queue != queue:
            continue
        available = node.get("resources_available") or {}
        cpus = _int(available.get("ncpus"))
        if cpus is None:
            continue
        sizes[bool(own_queue)].append(NodeSize(name, cpus, size_mib(available.get("mem"))))
    return tuple(sizes[True] or sizes[False])


def _cap(
    limits: list[tuple[str, dict[str, Any]]], resource: str, parse: Any
) -> tuple[int | None, str]:
    """The smallest ``resources_max.<resource>`` of the queue and the server, and its name."""
    found: list[tuple[int, str]] = []
    for where, attributes in limits:
        value = parse((attributes.get("resources_max") or {}).get(resource))
        if value is not None:
            found.append((value, f"{where}resources_max.{resource}"))
    return min(found) if found else (None, f"resources_max.{resource}")


def parse_pbs_limits(output: str, queue: str | None) -> PartitionLimits | None:
    """The output of LIMITS_COMMAND: whether ``queue`` (None: the server's default queue)
    exists, its state, the nodes its jobs may run on and the queue's and server's
    ``resources_max`` (the smaller wins) and ``resources_default.mem``; None when the
    queues cannot be read."""
    parts = output.split(LIMITS_SEPARATOR)
    if len(parts) < 2:
        return None
    queue_docs = json_documents(parts[1])
    queues = _first(queue_docs[0], "Queue") if queue_docs else None
    if queues is None:
        return None
    server_docs = json_documents(parts[2]) if len(parts) > 2 else []
    servers = (_first(server_docs[0], "Server") if server_docs else None) or {}
    server = next(iter(servers.values()), None) if servers else None
    server = server if isinstance(server, dict) else {}
    if queue is None:
        queue = str(server.get("default_queue") or "")
        if not queue:
            return None
    names = tuple(sorted(queues))
    if queue not in queues:
        return PartitionLimits(partition=queue, exists=False, partitions=names, kind="queue")
    attributes = queues[queue] if isinstance(queues[queue], dict) else {}
    state = ""
    if str(attributes.get("enabled", "True")) == "False":
        state = "DISABLED"
    elif str(attributes.get("started", "True")) == "False":
        state = "STOPPED"
    sources = [("", attributes), ("server ", server)]
    cpus, cpus_name = _cap(sources, "ncpus", _int)
    mem, mem_name = _cap(sources, "mem", size_mib)
    walltime, time_name = _cap(sources, "walltime", _seconds)
    default_mem, default_name = None, ""
    for where, source in sources:
        value = size_mib((source.get("resources_default") or {}).get("mem"))
        if value is not None:
            default_mem = value
            default_name = f"the {where or 'queue '}default, resources_default.mem"
            break
    return PartitionLimits(
        partition=queue,
        partitions=names,
        nodes=parse_nodes(parts[0], queue),
        max_cpus_per_node=cpus,
        max_mem_per_node_mb=mem,
        max_time_seconds=walltime,
        state=state,
        kind="queue",
        limit_names=(cpus_name, mem_name, time_name),
        default_mem_mb=default_mem,
        default_mem_name=default_name,
    )


def parse_queues(output: str, queue: str) -> PartitionLimits | None:
    """``qstat -Q -f -F json`` alone: whether ``queue`` exists (with the queues there are),
    its state and limits, without nodes; None when the output cannot be read."""
    return parse_pbs_limits(f"{LIMITS_SEPARATOR}\n{output}", queue)


def pbs_memory(mib: int) -> str:
    """A PBS size: gigabytes when whole, else megabytes."""
    return f"{mib // 1024}gb" if mib % 1024 == 0 else f"{mib}mb"


class PBS(BatchSystem):
    """PBS Professional and OpenPBS, from the login node."""

    name = "pbs"
    display_name = "PBS"
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
    status_queries = (("qstat -f -F json -x {job_id}", parse_qstat_job),)
    pending_states = PENDING_STATES
    running_states = RUNNING_STATES
    suspended_states = frozenset({"S", "U"})
    # -o names a file, not a pattern: each job has a run directory of its own.
    output_pattern = "job.out"
    jobqueue_section = "pbs"
    jobqueue_class = "PBSCluster"
    jobqueue_resource_key = "resource-spec"
    setup_variables = ("PBS_CONF_FILE",)
    held_states = frozenset({"H"})
    held_fix = "it is held (its reason says by whom); release it with `qrls JOBID`, or cancel it"
    reason_fixes = REASON_FIXES
    array_index_variable = "PBS_ARRAY_INDEX"
    array_index_placeholder = "^array_index^"
    array_task_label = "${PBS_JOBID}"
    array_limit_query = ("qstat -B -f -F json", parse_max_array_size)
    array_limit_name = "max_array_size"
    multi_node_jobs = True
    # OpenMPI is often built without PBS's task manager (Debian's is): its hosts from the
    # job's node file, one line per chunk
    mpiexec_hosts = '--hostfile "$PBS_NODEFILE"'

    @classmethod
    def resource_spec(cls, spec: str) -> tuple[int | None, int | None]:
        """ncpus and mem of a select statement (``select=1:ncpus=4:mem=16gb``): what
        dask-jobqueue's PBS jobs ask for in place of cores and memory."""
        cpus = re.search(r"(?:^|:)ncpus=(\d+)", spec)
        mem = re.search(r"(?:^|:)mem=([^:]+)", spec)
        return (int(cpus.group(1)) if cpus else None, size_mib(mem.group(1)) if mem else None)

    @classmethod
    def jobqueue_memory_mib(cls, n_bytes: int) -> int:
        """``mem=`` as dask-jobqueue writes it (pbs_format_bytes_ceil): whole GiB from 10 GiB
        on, else whole MiB, rounded up."""
        if n_bytes >= 10 * 1024**3:
            return math.ceil(n_bytes / 1024**3) * 1024
        return max(1, math.ceil(n_bytes / 1024**2))

    def job_key(self, job_id: str) -> str:
        """The sequence number: dask-jobqueue keeps ``12`` of ``12.server``."""
        return job_id.split(".", 1)[0]

    def reason_code(self, reason: str) -> str:
        """What of the scheduler's comment REASON_FIXES knows: every node offline or down, a
        stopped queue (anywhere in a "Not Running" comment), else the comment up to its first
        colon ("Can Never Run: ..." -> "Can Never Run"). The job waits for good when the code
        has a fix there."""
        for forever in (NO_NODE_UP, QUEUE_STOPPED):
            if forever in reason:
                return forever
        return reason.split(":")[0].strip()

    def nodes_down(self) -> str:
        """``eopbs offline, n2 down`` when every node is offline or down, else ""."""
        code, out, _ = self.run("pbsnodes -a -F json", None)
        documents = json_documents(out) if code == 0 else []
        nodes = documents[0].get("nodes") if documents and isinstance(documents[0], dict) else None
        if not isinstance(nodes, dict) or not nodes:
            return ""
        states = {name: str((node or {}).get("state", "")) for name, node in nodes.items()}
        if not all(any(d in state for d in NODE_DOWN_STATES) for state in states.values()):
            return ""
        return ", ".join(f"{name} {state}" for name, state in sorted(states.items()))

    def complete(self, job_id: str, fields: JobFields) -> JobStatus:
        """A job waiting for nodes while every node is offline or down says so."""
        status = super().complete(job_id, fields)
        if status.state == "Q" and any(text in status.reason for text in WAITS_FOR_NODES):
            down = self.nodes_down()
            if down:
                reason = f"{status.reason}; {NO_NODE_UP}: {down}"
                status = dataclasses.replace(status, reason=reason)
        return status

    def failed(self, status: JobStatus) -> bool:
        """PBS's final state (F) is the same for every job: a failure is a non-zero
        Exit_status."""
        return status.finished and status.exit_code not in ("", "0")

    def succeeded(self, status: JobStatus) -> bool:
        """Exit_status 0: a job deleted before it ran (qdel, or a job it depended on failed)
        ends F with no Exit_status at all."""
        return status.finished and status.exit_code == "0"

    def reached_walltime(self, status: JobStatus) -> bool:
        """Its MOM killed it for running past its walltime (Exit_status -29)."""
        return status.finished and status.exit_code == KILLED_WALLTIME

    def status_fix(self, status: JobStatus) -> str:
        """What to do about a job that ended with a non-zero Exit_status."""
        code = status.exit_code
        if not self.failed(status):
            return ""
        if code in KILLED:
            return KILLED[code]
        if code in EXEC_FAILURES:
            return f"{EXEC_FAILURES[code]}; submit it again or ask the administrators"
        if code.isdigit() and int(code) > 256:
            return (
                f"it was killed by signal {int(code) - 256} (qdel, its walltime or memory "
                "limit, or an administrator); raise 'time' or 'mem' if it ran out, else "
                "submit it again"
            )
        return (
            "the job script exited non-zero: see the last lines of its output (a module that "
            "does not load, an environment path that does not exist, a crash); fix the "
            "profile's environment (modules, env_path) or run --mode install"
        )

    def named_jobs(self, job_name: str, user: str) -> list[JobStatus] | None:
        """The queued jobs of ``user`` named ``job_name`` with their state and comment."""
        command = (
            f"ids=$(qselect -N {shlex.quote(job_name)} -u {shlex.quote(user)}) || exit 1; "
            # One qstat per job: given several ids, `qstat -f -F json` prints only the first.
            # -x: a job that ended since qselect listed it is still shown (and left out).
            'for id in $ids; do qstat -f -F json -x "$id"; done; exit 0'
        )
        code, out, _ = self.run(command, None)
        if code != 0:
            return None
        jobs = [self.complete(job_id, fields) for job_id, fields in parse_qstat_jobs(out)]
        return [job for job in jobs if not job.finished]

    def node_limits(self, partition: str | None) -> PartitionLimits | None:
        """The queue asked for (None: the server's default queue): whether it exists, its
        state, its nodes' ncpus and mem (pbsnodes) and the queue's and server's limits
        (qstat -Q, qstat -B), in one command."""
        code, out, _ = self.run(LIMITS_COMMAND, None)
        return parse_pbs_limits(out, partition) if code == 0 else None

    def dependency_directive(self, job_ids: list[str]) -> list[str]:
        """``-W depend=afterok:A:B`` (an array job by its ``N[].server`` id): PBS deletes the
        job once one of them failed, rather than leave it waiting."""
        if not job_ids:
            return []
        return [f"-W depend=afterok:{':'.join(job_ids)}"]

    def array_directive(self, count: int, parallel: int | None = None) -> list[str]:
        """``-J 0-N[%P]``. A PBS array holds at least two subjobs, so one task is asked for
        as ``-J 0-1:2`` (indices 0 to 1 in steps of 2: index 0 alone)."""
        if count < 1:
            raise ValueError("a job array needs at least one task")
        indices = "0-1:2" if count == 1 else f"0-{count - 1}"
        throttle = f"%{parallel}" if parallel else ""
        return [f"-J {indices}{throttle}"]

    def on_each_node(self, command: Sequence[str], env: Mapping[str, str]) -> list[str]:
        """``pbsdsh``: the command once per line of the job's node file, which holds one
        line per chunk (each chunk asks for one MPI process)."""
        return ["pbsdsh", "--", *command]

    def header(self, job: JobSpec, job_name: str, output: str) -> list[str]:
        """qsub options of a one-chunk job, or of one chunk per node or task of ``job`` (placed
        by the server's default; a profile's ``directives`` may add ``-l place=scatter`` for
        one host each), whose output is written where it runs (-k oed)."""
        chunks = max(job.nodes, job.tasks)
        select = f"select={chunks}:ncpus={job.cpus}"
        if chunks > 1:
            select += ":mpiprocs=1"
        mib = job_memory_mib(job.mem, job.mem_per_cpu, job.cpus)
        if mib:
            select += f":mem={pbs_memory(mib)}"
        options = [f"-N {job_name}", f"-o {output}", "-j oe", "-k oed", f"-l {select}"]
        seconds = parse_slurm_time(job.time)
        if seconds is not None:
            options.append(f"-l walltime={hms(seconds)}")
        if job.partition:
            options.append(f"-q {job.partition}")
        if job.account:
            options.append(f"-A {job.account}")
        return options
