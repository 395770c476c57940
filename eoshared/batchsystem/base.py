"""The batch-system adaptor: what one batch system's commands are, and what its states mean.

A batch system is described as data in the manner of dask-jobqueue: the submit and cancel
commands, the pattern of the job id that submission prints, the queries that tell a job's state
and how to read them, which native states mean "pending" and "running", and the header
directives of a job script. Commands run through a ``Runner`` (the site's SSH link on the
laptop, a local subprocess on the cluster), so this module imports nothing of SSH.
"""

from __future__ import annotations

import math
import re
import shlex
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from eoshared.errors import BatchSystemError

#: Run a shell command with optional standard input; return (exit code, stdout, stderr).
Runner = Callable[[str, "str | bytes | None"], tuple[int, str, str]]

PENDING = "pending"
RUNNING = "running"
FINISHED = "finished"
#: The state of a job that no query knows (any more).
UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class JobSpec:
    """What one job asks of the batch system (a profile's ``job:`` section with the site's
    overrides): the header directives of the Jupyter and batch jobs."""

    partition: str | None = None
    time: str = "01:00:00"
    cpus: int = 1
    mem: str | None = None
    mem_per_cpu: str | None = None
    account: str | None = None
    directives: list[str] = field(default_factory=list)
    #: Nodes of one allocation (batch mode's ``--nodes``): ``cpus`` and the memory are per
    #: node, and the job has one task per node.
    nodes: int = 1
    #: Tasks of the job placed where the batch system finds room (a pipeline's MPI ranks):
    #: ``cpus`` and the memory are per task.
    tasks: int = 1


@dataclass(frozen=True)
class JobStatus:
    """What the batch system says about one job; ``state`` is its own name for the state."""

    job_id: str
    state: str
    phase: str = FINISHED
    reason: str = ""
    node: str = ""
    time_left: str = ""
    start_estimate: str = ""
    exit_code: str = ""
    #: When the job's current run started, as the batch system writes it ("" when it is not
    #: running or the query does not say): a change while it runs means it was put back in the
    #: queue and started again between two queries.
    started: str = ""

    @property
    def pending(self) -> bool:
        """True while the job waits in the queue."""
        return self.phase == PENDING

    @property
    def running(self) -> bool:
        """True while the job runs."""
        return self.phase == RUNNING

    @property
    def finished(self) -> bool:
        """True once the job has left the queue for good."""
        return self.phase == FINISHED


@dataclass(frozen=True)
class JobFields:
    """What one status query found: the native state and the fields it reported."""

    state: str
    reason: str = ""
    node: str = ""
    time_left: str = ""
    start_estimate: str = ""
    exit_code: str = ""
    #: When the job's current run started, as the batch system writes it ("" when it is not
    #: running or the query does not say): a change while it runs means it was put back in the
    #: queue and started again between two queries.
    started: str = ""
    #: The id the query lists the job under when it writes ids its own way (qstat's
    #: ``12.server`` for ``12``); "" for the id asked about.
    job_id: str = ""


@dataclass(frozen=True)
class NodeSize:
    """One node of a partition: its name, CPUs and memory in MiB (None when not reported)."""

    name: str
    cpus: int
    memory_mb: int | None = None


@dataclass(frozen=True)
class PartitionLimits:
    """What a partition offers one job: its nodes and the partition's own limits.

    ``partition`` is the partition asked for, or the batch system's default one; when it
    does not exist, ``exists`` is False and ``partitions`` lists those that do. A limit of
    None is unlimited or unknown."""

    partition: str
    exists: bool = True
    partitions: tuple[str, ...] = ()
    nodes: tuple[NodeSize, ...] = ()
    max_cpus_per_node: int | None = None
    max_mem_per_node_mb: int | None = None
    max_time_seconds: int | None = None
    state: str = ""
    #: The batch system's word for it ("partition", PBS's "queue", HTCondor's "pool").
    kind: str = "partition"
    #: Its word for what holds one job ("node", HTCondor's "slot").
    node_word: str = "node"
    #: The names of the three limits above, as the batch system's own config calls them.
    limit_names: tuple[str, str, str] = ("MaxCPUsPerNode", "MaxMemPerNode", "MaxTime")
    #: The memory a job gets when it asks for none (PBS's resources_default.mem), MiB.
    default_mem_mb: int | None = None
    #: Where the default memory is set.
    default_mem_name: str = ""

    @property
    def where(self) -> str:
        """``partition 'short'``, ``queue 'workq'``, or ``the pool`` when it has no name."""
        return f"{self.kind} '{self.partition}'" if self.partition else f"the {self.kind}"


@dataclass(frozen=True)
class ChainStep:
    """One step of a chain of jobs, each step starting once the one before it succeeded."""

    #: The step's name (``stage_in``); the chain's jobs are kept and reported by it.
    name: str
    #: The step's job script, given the header options that start it after the step before
    #: (none for the first step, nor where the batch system orders the steps itself).
    script: Callable[[list[str]], str]


#: A status query: a command template (``{job_id}`` is quoted in) and the parser of its output,
#: which returns None when the query does not know the job.
StatusQuery = tuple[str, Callable[[str], "JobFields | None"]]
#: A command that prints the most tasks one job array may have, and its parser.
ArrayLimitQuery = tuple[str, Callable[[str], "int | None"]]


def local_runner(command: str, stdin: str | bytes | None = None) -> tuple[int, str, str]:
    """Run a shell command on this machine (the cluster side of a job)."""
    data = stdin.encode() if isinstance(stdin, str) else stdin
    proc = subprocess.run(
        ["/bin/sh", "-c", command], input=data, capture_output=True, timeout=120, check=False
    )
    return (
        proc.returncode,
        proc.stdout.decode(errors="replace"),
        proc.stderr.decode(errors="replace"),
    )


class BatchSystem:
    """One batch system: fill the class attributes and ``header`` in a subclass."""

    #: The profile's ``batch_system:`` value.
    name: ClassVar[str]
    #: How messages name it ("SLURM", "PBS", "HTCondor").
    display_name: ClassVar[str]
    #: Prefix of a header directive line in a job script (``#SBATCH``).
    directive_prefix: ClassVar[str]
    #: The environment variable holding the job id inside a job.
    job_id_variable: ClassVar[str]
    #: Submits the job script given on standard input; prints the job id.
    submit_command: ClassVar[str]
    #: The job id in the submit command's output (group 1).
    job_id_pattern: ClassVar[re.Pattern[str]]
    #: Cancels one job; ``{job_id}`` is filled in.
    cancel_command: ClassVar[str]
    #: Texts of a failed cancel that mean the job has already ended.
    cancel_gone: ClassVar[tuple[str, ...]] = ()
    #: Cancels every job of ``{user}`` named ``{name}`` (argv template).
    cancel_by_name: ClassVar[tuple[str, ...]]
    #: Queries tried in turn until one knows the job.
    status_queries: ClassVar[tuple[StatusQuery, ...]]
    #: Native states that mean the job waits, and that it runs; every other state is final.
    pending_states: ClassVar[frozenset[str]]
    running_states: ClassVar[frozenset[str]]
    #: Waiting states of a job suspended where it ran (it resumes there, its processes kept);
    #: any other waiting state after running means the job was put back in the queue.
    suspended_states: ClassVar[frozenset[str]] = frozenset()
    #: The job's output file in its run directory, as the submit directive names it.
    output_pattern: ClassVar[str] = "job-%j.out"
    #: dask-jobqueue's config section and cluster class for this batch system.
    jobqueue_section: ClassVar[str]
    jobqueue_class: ClassVar[str]
    #: Final states that are not a success, by native name: what to do about each.
    final_state_fixes: ClassVar[dict[str, str]] = {}
    #: What to do about a pending reason that does not clear by itself, by reason code.
    reason_fixes: ClassVar[dict[str, str]] = {}
    #: The fix of a pending reason that does not clear by itself and has none of its own.
    default_reason_fix: ClassVar[str] = (
        "change the request (partition, account, QOS, size) or ask the cluster's administrators"
    )

    #: Final states of a job that ran for as long as it asked for (SLURM's TIMEOUT).
    walltime_states: ClassVar[frozenset[str]] = frozenset()

    #: Native states of a job that is held: it waits until someone releases it.
    held_states: ClassVar[frozenset[str]] = frozenset()
    #: What to do about a held job.
    held_fix: ClassVar[str] = "it is held; release it or cancel it"

    #: The environment variable holding an array task's index inside the job.
    array_index_variable: ClassVar[str] = ""
    #: What an array task's output file name holds where the batch system writes the task's
    #: index (SLURM's ``%a``).
    array_index_placeholder: ClassVar[str] = ""
    #: How an array task is named in the ledger: a shell word of the job's own variables.
    array_task_label: ClassVar[str] = ""
    #: The query of the most tasks one job array may have (None: none known), and the name of
    #: that setting in the batch system's own words.
    array_limit_query: ClassVar[ArrayLimitQuery | None] = None
    array_limit_name: ClassVar[str] = ""

    #: Keys of that section the worker jobs take over from the Jupyter job's settings.
    jobqueue_inherits: ClassVar[tuple[str, ...]] = ("queue", "account")
    #: Whether that section has a ``walltime`` its workers retire before (``--lifetime``).
    jobqueue_walltime: ClassVar[bool] = True
    #: Keys that section must set besides cores, memory and walltime, each with what it is.
    jobqueue_required: ClassVar[dict[str, str]] = {}
    #: The worker jobs' memory options when a site may take memory per CPU only: the per-job
    #: one dask-jobqueue writes and the per-CPU one that replaces it (SLURM's ``--mem``,
    #: ``--mem-per-cpu``); () when its jobs have no such choice.
    jobqueue_memory_per_cpu: ClassVar[tuple[str, ...]] = ()
    #: The submit directive that names the worker jobs when dask-jobqueue names them after each
    #: worker rather than ``job_name`` (HTCondor's ``batch_name``); "" when ``job_name`` does.
    jobqueue_name_directive: ClassVar[str] = ""
    #: The key of that section whose value, when set, is the worker job's whole request in
    #: place of cores and memory (PBS's ``resource-spec``); "" when it has none. Read by
    #: ``resource_spec``.
    jobqueue_resource_key: ClassVar[str] = ""
    #: Variables that tell the batch system is set up in a process (besides ``job_id_variable``).
    setup_variables: ClassVar[tuple[str, ...]] = ()

    def __init__(self, run: Runner = local_runner) -> None:
        self.run = run

    # Chained and array jobs (staged pipelines). A batch system that cannot express them yet
    # leaves the directives to raise; the pipeline then refuses to run on it with this message.

    def dependency_directive(self, job_ids: list[str]) -> list[str]:
        """Header options that start the job only after every job of ``job_ids`` succeeded,
        and cancel it (rather than leave it pending) once one of them failed."""
        raise BatchSystemError(
            f"chained jobs are not supported yet on {self.display_name}; pipelines need them."
        )

    def array_directive(self, count: int, parallel: int | None = None) -> list[str]:
        """Header options of a job array of ``count`` tasks indexed 0..count-1, at most
        ``parallel`` of them running at once."""
        raise BatchSystemError(
            f"job arrays are not supported yet on {self.display_name}; pipelines need them."
        )

    def array_limit(self) -> int | None:
        """The most tasks one job array may have on this cluster (None when not known)."""
        if self.array_limit_query is None:
            return None
        command, parse = self.array_limit_query
        code, out, _ = self.run(command, None)
        return parse(out) if code == 0 else None

    def check_chains(self) -> None:
        """Raise BatchSystemError when this batch system cannot run a chain of jobs with a job
        array in it (what a pipeline submits)."""
        self.dependency_directive(["0"])
        self.array_directive(1)

    def submit_chain(self, steps: Sequence[ChainStep], run_dir: str, name: str) -> dict[str, str]:
        """Submit ``steps``, each to start once the one before it succeeded; return the job
        that runs each step, by step name (what ``chain_statuses`` and ``cancel_chain`` take).

        Here one job per step, chained by ``dependency_directive``; a failed submission
        cancels the jobs submitted before it. ``run_dir`` and the chain's ``name`` are for a
        batch system that submits the chain as a whole."""
        jobs: dict[str, str] = {}
        try:
            for step in steps:
                before = list(jobs.values())[-1:]
                options = self.dependency_directive(before) if before else []
                jobs[step.name] = self.submit(step.script(options))
        except BatchSystemError:
            for job_id in reversed(jobs.values()):
                self.cancel(job_id)
            raise
        return jobs

    def chain_description(self, jobs: Mapping[str, str]) -> str:
        """The submitted chain in one line, for the user."""
        ids = list(jobs.values())
        return ", ".join(
            f"{step} job {job}" + (f" after {ids[i - 1]}" if i else "")
            for i, (step, job) in enumerate(jobs.items())
        )

    def chain_statuses(self, jobs: Mapping[str, str]) -> dict[str, JobStatus]:
        """Each step's status, by step name."""
        return {step: self.status(job) for step, job in jobs.items()}

    def cancel_chain(self, jobs: Mapping[str, str], after: str = "") -> None:
        """Cancel the chain's jobs, the last first (those that ended already are no error);
        with ``after``, a step that failed, the steps after it that have not ended."""
        steps = list(jobs)
        if not after:
            for step in reversed(steps):
                self.cancel(jobs[step])
            return
        for step in reversed(steps[steps.index(after) + 1 :]):
            if not self.status(jobs[step]).finished:
                self.cancel(jobs[step])

    def header(self, job: JobSpec, job_name: str, output: str) -> list[str]:
        """The job's header directives (without the prefix)."""
        raise NotImplementedError

    #: Whether one job may span several nodes (``JobSpec.nodes`` and ``tasks``).
    multi_node_jobs: ClassVar[bool] = False
    #: Options of OpenMPI's ``mpiexec`` that give it the job's hosts where it cannot ask the
    #: batch system itself (a shell text of the job script).
    mpiexec_hosts: ClassVar[str] = ""

    def check_multi_node(self, what: str, fix: str) -> None:
        """Raise BatchSystemError naming ``what`` and ``fix`` where one job cannot span
        several nodes."""
        if not self.multi_node_jobs:
            raise BatchSystemError(
                f"{what} is not supported on {self.display_name}: its jobs here run on one "
                f"node. Fix: {fix}."
            )

    def mpi_launcher(self, mpiexec: str) -> str:
        """Shell text of a job script that starts MPI ranks: the site's launcher command line
        ``mpiexec`` (each word quoted), then the options that give it the job's hosts where
        it cannot ask the batch system itself (``mpiexec_hosts``)."""
        words = " ".join(shlex.quote(word) for word in shlex.split(mpiexec))
        return f"{words} {self.mpiexec_hosts}" if self.mpiexec_hosts else words

    def on_each_node(self, command: Sequence[str], env: Mapping[str, str]) -> list[str]:
        """The command that runs ``command`` once on each node of the multi-node job this
        process runs in (``env``: the job's environment)."""
        self.check_multi_node("a multi-node job", "run its parts as jobs of their own")
        raise NotImplementedError

    def directives(self, job: JobSpec, job_name: str, output: str) -> list[str]:
        """The job script's header lines; the profile's own ``directives`` come last."""
        if job.nodes > 1 or job.tasks > 1:
            self.check_multi_node("a job of several nodes or tasks", "ask for one node")
        options = [*self.header(job, job_name, output), *job.directives]
        prefix = self.directive_prefix
        return [line if line.startswith(prefix) else f"{prefix} {line}" for line in options]

    @classmethod
    def resource_spec(cls, spec: str) -> tuple[int | None, int | None]:
        """The CPUs and MiB a worker job asks for through ``jobqueue_resource_key`` (None for
        what ``spec`` does not say)."""
        return None, None

    @classmethod
    def jobqueue_memory_mib(cls, n_bytes: int) -> int:
        """MiB a dask-jobqueue worker job of ``n_bytes`` memory asks for, rounded as
        dask-jobqueue writes it for this system (SLURM's ``--mem``: whole GiB from 1 GiB on,
        else whole MiB, rounded up)."""
        if n_bytes >= 1024**3:
            return math.ceil(n_bytes / 1024**3) * 1024
        return max(1, math.ceil(n_bytes / 1024**2))

    def job_key(self, job_id: str) -> str:
        """What tells one job from another in ids written differently (PBS's ``12`` as
        dask-jobqueue keeps it, and ``12.server`` as qstat gives it)."""
        return job_id

    def output_name(self, job_id: str) -> str:
        """The name the job's output file has once the job id is known (``%j`` is the id)."""
        return self.output_pattern.replace("%j", job_id)

    def phase(self, state: str) -> str:
        """PENDING, RUNNING or FINISHED for a native state."""
        if state in self.pending_states:
            return PENDING
        if state in self.running_states:
            return RUNNING
        return FINISHED

    def parse_job_id(self, output: str) -> str:
        """The job id the submit command printed."""
        match = self.job_id_pattern.search(output.strip())
        if match is None:
            raise BatchSystemError(
                f"{self.submit_command.split()[0]} printed no job id: {output.strip()!r}"
            )
        return match.group(1)

    def submit_command_for(self, script: str) -> str:
        """The command that submits ``script`` given on its standard input (a batch system
        without header directives builds its submit description here)."""
        return self.submit_command

    def submit(self, script: str) -> str:
        """Submit a job script (on standard input); return the job id."""
        code, out, err = self.run(self.submit_command_for(script), script)
        if code != 0:
            message = err.strip() or out.strip() or f"exit code {code}"
            raise BatchSystemError(
                f"{self.submit_command.split()[0]} rejected the job: {message}. Fix the job "
                "settings (queue, account, time, cpus, memory) in platforms.ini or the profile."
            )
        return self.parse_job_id(out)

    def status(self, job_id: str) -> JobStatus:
        """The job's state, also after it left the queue (UNKNOWN when nothing knows it)."""
        for template, parse in self.status_queries:
            code, out, _ = self.run(template.format(job_id=shlex.quote(job_id)), None)
            found = parse(out) if code == 0 else None
            if found is not None:
                same = found.job_id and self.job_key(found.job_id) == self.job_key(job_id)
                return self.complete(found.job_id if same else job_id, found)
        return JobStatus(job_id=job_id, state=UNKNOWN)

    def complete(self, job_id: str, fields: JobFields) -> JobStatus:
        """Turn a query's fields into a JobStatus (subclasses may ask for more)."""
        return JobStatus(
            job_id=job_id,
            state=fields.state,
            phase=self.phase(fields.state),
            reason=fields.reason,
            node=fields.node,
            time_left=fields.time_left,
            start_estimate=fields.start_estimate,
            exit_code=fields.exit_code,
            started=fields.started,
        )

    def cancel(self, job_id: str) -> None:
        """Cancel the job; one that already ended is not an error."""
        code, out, err = self.run(self.cancel_command.format(job_id=shlex.quote(job_id)), None)
        if code != 0 and not any(text in err + out for text in self.cancel_gone):
            raise BatchSystemError(
                f"{self.cancel_command.split()[0]} {job_id} failed: {(err or out).strip()}"
            )

    def node_limits(self, partition: str | None) -> PartitionLimits | None:
        """The nodes and limits of ``partition`` (None: the default one); None when the
        batch system cannot tell (a submission is then never refused for its size)."""
        return None

    def named_jobs(self, job_name: str, user: str) -> list[JobStatus] | None:
        """Every queued job of ``user`` named ``job_name``; None when the batch system
        cannot tell."""
        return None

    def waits_for_good(self, reason: str) -> bool:
        """True when a pending job's reason will not clear by itself: by default, when its
        code has a fix in ``reason_fixes``."""
        return self.reason_code(reason) in self.reason_fixes

    def stuck(self, status: JobStatus) -> bool:
        """True for a pending job that will not start by itself: held, or waiting for a
        reason that does not clear (see waits_for_good)."""
        return status.pending and (
            status.state in self.held_states or self.waits_for_good(status.reason)
        )

    def stuck_fix(self, status: JobStatus) -> str:
        """What to do about a job for which ``stuck`` is True."""
        if status.state in self.held_states:
            return self.held_fix
        return self.reason_fix(status.reason)

    def reason_code(self, reason: str) -> str:
        """The code of a pending reason without its details ("ReqNodeNotAvail, Unavail..." ->
        "ReqNodeNotAvail")."""
        return reason.split(",")[0].strip()

    def reason_fix(self, reason: str) -> str:
        """What to do about a pending reason that does not clear by itself."""
        code = self.reason_code(reason)
        return self.reason_fixes.get(code, self.default_reason_fix)

    def reached_walltime(self, status: JobStatus) -> bool:
        """True for a job that the batch system ended (or held) because it ran for as long as
        it asked for."""
        return status.state in self.walltime_states

    def failed(self, status: JobStatus) -> bool:
        """True for a job that ended in a state that is not a success."""
        return status.finished and status.state in self.final_state_fixes

    def succeeded(self, status: JobStatus) -> bool:
        """True for a job that ran and ended well (one that no query knows did not)."""
        return status.finished and status.state != UNKNOWN and not self.failed(status)

    def state_fix(self, state: str) -> str:
        """What to do about a job that ended in ``state`` ("" for a success or an unknown state)."""
        return self.final_state_fixes.get(state, "")

    def status_fix(self, status: JobStatus) -> str:
        """What to do about a job that ended as ``status`` says ("" for a success); a batch
        system whose final state alone does not tell a failure looks at the exit code too."""
        return self.state_fix(status.state)

    def cancel_named(self, job_name: str, user: str) -> None:
        """Cancel every job of ``user`` named ``job_name`` (no error when there is none)."""
        argv = [part.format(name=job_name, user=user) for part in self.cancel_by_name]
        self.run(shlex.join(argv), None)
