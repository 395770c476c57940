"""Does a job fit the cluster? The Jupyter, batch and worker jobs against their partition's nodes.

Before a submission the launcher asks the batch system for the partition's node sizes and
limits (:meth:`~eoshared.batchsystem.BatchSystem.node_limits`, one command: SLURM's sinfo and
scontrol, PBS's pbsnodes and qstat -Q/-B, HTCondor's condor_status) and refuses a request that
no node (HTCondor: slot) can hold, with one line naming the request, the largest node and the
key to change. A partition (PBS queue) that does not exist is named with those there are.
Limits the batch system does not report, or that cannot be read, and a pool without slots,
never block a submission.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eoshared.batchsystem import BATCH_SYSTEMS, BatchSystem, JobSpec, NodeSize, PartitionLimits
from eoshared.batchsystem.units import (
    dask_memory_bytes,
    format_seconds,
    memory_mib,
    parse_slurm_time,
)
from eoshared.errors import RequestFitError
from launcher.config import Site
from launcher.sites.jobscript import dask_config

if TYPE_CHECKING:
    from launcher.sites.dask_sources import Merged

#: Partition states in which jobs wait, whatever their size.
IDLE_STATES = ("DOWN", "DRAIN", "INACTIVE")


def slurm_mem_mb(text: str | None) -> int | None:
    """MiB of a SLURM memory request ("4G", "4000" = MiB, "4000M"); None if absent or unreadable."""
    try:
        return memory_mib(text) if text else None
    except ValueError:
        return None


def jobqueue_mem_mb(text: Any, section: str = "slurm") -> int | None:
    """MiB of a dask-jobqueue ``memory`` ("4GB", "4GiB") as its job asks for it: SLURM's
    ``--mem`` rounded up to whole GiB or MiB, PBS's ``mem=`` likewise (GiB from 10 GiB on),
    HTCondor's RequestMemory rounded down to whole MiB, as dask-jobqueue does; None if
    unreadable."""
    try:
        n = dask_memory_bytes(text)
    except ValueError:
        return None
    system = next(
        (cls for cls in BATCH_SYSTEMS.values() if cls.jobqueue_section == section),
        BATCH_SYSTEMS["slurm"],
    )
    return system.jobqueue_memory_mib(n)


def _time(text: Any) -> int | None:
    try:
        return parse_slurm_time(str(text)) if text else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Request:
    """What one kind of job asks of a partition, and the keys that set each resource."""

    what: str
    cpus: int | None
    mem_mb: int | None
    time_seconds: int | None
    partition: str | None
    #: The key to change, by resource: "cpus", "mem", "time", "partition".
    keys: dict[str, str]
    detail: str = ""
    #: Where the memory came from when the request itself set none (a queue's default).
    mem_source: str = ""


def _site_key(site: Site, ini_key: str, profile_key: str) -> str:
    return (
        f"'{ini_key}' in platforms.ini [{site.uid}] "
        f"('{profile_key}' in the profile {site.profile.path.name})"
    )


def job_request(site: Site, job: JobSpec, what: str) -> Request:
    """The Jupyter or batch job's request (``job`` as it is submitted)."""
    mem = slurm_mem_mb(job.mem)
    mem_key = "mem"
    if job.mem_per_cpu:
        per_cpu = slurm_mem_mb(job.mem_per_cpu)
        mem = per_cpu * job.cpus if per_cpu is not None else None
        mem_key = "mem_per_cpu"
    return Request(
        what=what,
        cpus=job.cpus,
        mem_mb=mem or None,  # --mem=0: all of a node's memory
        time_seconds=_time(job.time),
        partition=job.partition,
        keys={
            "cpus": _site_key(site, "cpus", "job.cpus"),
            "mem": _site_key(site, mem_key, f"job.{mem_key}"),
            "time": _site_key(site, "time", "job.time"),
            "partition": _site_key(site, "partition", "job.partition"),
        },
    )


def _get(section: dict[str, Any], key: str) -> Any:
    value = section.get(key)
    return section.get(key.replace("-", "_")) if value is None else value


def worker_request(site: Site, merged: Merged | None = None) -> Request | None:
    """Each Dask worker job's request (the profile's jobqueue config of its batch system, or
    ``merged``: that config over the user's own Dask files on the cluster); None without one.
    A value from a file of the user's is named with that file."""
    system = BATCH_SYSTEMS.get(site.profile.batch_system, BATCH_SYSTEMS["slurm"])
    name = system.jobqueue_section
    base = f"dask.jobqueue.{name}"
    section: Any = dask_config(site.profile).get("jobqueue", {}).get(name)
    if merged is not None and merged.values:
        section = merged.values
    if not isinstance(section, dict):
        return None
    cores = _get(section, "cores")
    job_cpu = _get(section, "job-cpu")
    cpus = job_cpu if job_cpu is not None else cores
    job_mem = _get(section, "job-mem")
    memory = _get(section, "memory")
    mem = slurm_mem_mb(job_mem) if job_mem else (jobqueue_mem_mb(memory, name) if memory else None)
    cpus_key = "job-cpu" if job_cpu is not None else "cores"
    mem_key = "job-mem" if job_mem else "memory"
    spec_key = system.jobqueue_resource_key
    spec = _get(section, spec_key) if spec_key else None
    if spec:  # the worker jobs then ask for this (PBS's select statement), not cores/memory
        spec_cpus, spec_mem = system.resource_spec(str(spec))
        cpus, cpus_key = (spec_cpus, spec_key) if spec_cpus is not None else (None, cpus_key)
        mem, mem_key = (spec_mem, spec_key) if spec_mem is not None else (None, mem_key)
    processes = _get(section, "processes")
    own_queue = _get(site.profile.dask.get("jobqueue", {}).get(name) or {}, "queue")

    def key(ini: str, dask_key: str) -> str:
        own = merged.key_text(dask_key) if merged is not None else None
        return own or _site_key(site, ini, f"{base}.{dask_key}")

    return Request(
        what="each Dask worker job",
        cpus=int(cpus) if isinstance(cpus, int) or str(cpus).isdigit() else None,
        mem_mb=mem,
        time_seconds=_time(_get(section, "walltime")),
        partition=_get(section, "queue"),
        keys={
            "cpus": key("worker_cores", cpus_key),
            "mem": key("worker_memory", mem_key),
            "time": key("worker_walltime", "walltime"),
            "partition": key("worker_queue", "queue")
            if own_queue or (merged is not None and merged.key_text("queue"))
            else _site_key(site, "partition", "job.partition"),
        },
        detail=f", {processes} process{'' if processes == 1 else 'es'}" if processes else "",
    )


def _effective(node: NodeSize, limits: PartitionLimits) -> tuple[int, int | None]:
    """A node's CPUs and memory as one job of the partition may use them."""
    cpus = node.cpus
    if limits.max_cpus_per_node is not None:
        cpus = min(cpus, limits.max_cpus_per_node)
    mem = node.memory_mb
    if limits.max_mem_per_node_mb is not None:
        mem = limits.max_mem_per_node_mb if mem is None else min(mem, limits.max_mem_per_node_mb)
    return cpus, mem


def _describe(request: Request) -> str:
    parts = []
    if request.cpus is not None:
        parts.append(f"{request.cpus} CPUs{request.detail}")
    if request.mem_mb is not None:
        source = f" ({request.mem_source})" if request.mem_source else ""
        parts.append(f"{request.mem_mb} MiB{source}")
    return " and ".join(parts)


def _node_text(node: NodeSize, limits: PartitionLimits) -> str:
    mem = f" and {node.memory_mb} MiB" if node.memory_mb is not None else ""
    caps = []
    cpus_name, mem_name, _ = limits.limit_names
    if limits.max_cpus_per_node is not None and limits.max_cpus_per_node < node.cpus:
        caps.append(f"{cpus_name}={limits.max_cpus_per_node}")
    if limits.max_mem_per_node_mb is not None and (
        node.memory_mb is None or limits.max_mem_per_node_mb < node.memory_mb
    ):
        caps.append(f"{mem_name}={limits.max_mem_per_node_mb} MiB")
    cap = f" ({limits.kind} limits {', '.join(caps)})" if caps else ""
    return f"{node.name} with {node.cpus} CPUs{mem}{cap}"


def misfit(request: Request, limits: PartitionLimits | None) -> str | None:
    """Why no node of the partition can hold the request (one line), or None if one can or
    the limits are not known."""
    if limits is None:
        return None
    where = limits.where
    if not limits.exists:
        return (
            f"{request.what} asks for {where}, which does not exist; {limits.kind}s there: "
            f"{', '.join(limits.partitions) or 'none'}. Set {request.keys['partition']} to one "
            "of them."
        )
    if (
        request.time_seconds is not None
        and limits.max_time_seconds is not None
        and request.time_seconds > limits.max_time_seconds
    ):
        return (
            f"{request.what} asks for {format_seconds(request.time_seconds)} but {where} allows "
            f"at most {format_seconds(limits.max_time_seconds)} ({limits.limit_names[2]}). Lower "
            f"{request.keys['time']}."
        )
    if not limits.nodes:
        return None
    if request.mem_mb is None and limits.default_mem_mb is not None:
        request = dataclasses.replace(
            request, mem_mb=limits.default_mem_mb, mem_source=limits.default_mem_name
        )
    sizes = [(_effective(node, limits), node) for node in limits.nodes]
    cpus_short = request.cpus is not None and all(request.cpus > c for (c, _), _ in sizes)
    mem_short = request.mem_mb is not None and all(
        m is not None and request.mem_mb > m for (_, m), _ in sizes
    )

    def holds(cpus: int, mem: int | None) -> bool:
        return (request.cpus is None or request.cpus <= cpus) and (
            request.mem_mb is None or mem is None or request.mem_mb <= mem
        )

    if any(holds(c, m) for (c, m), _ in sizes):
        return None
    largest = max(sizes, key=lambda item: (item[0][0], item[0][1] or 0))[1]
    keys = [request.keys[r] for r, short in (("cpus", cpus_short), ("mem", mem_short)) if short]
    if not keys:  # each fits some node, never both on one
        keys = [request.keys["cpus"], request.keys["mem"]]
    return (
        f"{request.what} asks for {_describe(request)}, but the largest {limits.node_word} of "
        f"{where} is "
        f"{_node_text(largest, limits)}. Lower {' or '.join(keys)}."
    )


def partition_limits(
    system: BatchSystem, requests: Iterable[Request | None]
) -> dict[str | None, PartitionLimits | None]:
    """What the partition of each request offers (each partition asked about once)."""
    known: dict[str | None, PartitionLimits | None] = {}
    for request in requests:
        if request is not None and request.partition not in known:
            known[request.partition] = system.node_limits(request.partition)
    return known


def check(
    system: BatchSystem,
    requests: Iterable[Request | None],
    warn: Callable[[str], None],
    known: dict[str | None, PartitionLimits | None] | None = None,
) -> None:
    """Refuse (RequestFitError) the first request no node of its partition can hold; warn
    once about a partition whose jobs cannot start (down, draining, inactive). ``known``: the
    partitions' limits when asked already (``partition_limits``)."""
    requests = list(requests)
    known = partition_limits(system, requests) if known is None else known
    warned: set[str | None] = set()
    for request in requests:
        if request is None:
            continue
        limits = known.get(request.partition)
        if limits is not None and request.partition not in warned:
            warned.add(request.partition)
            if limits.state.upper() in IDLE_STATES:
                warn(f"{limits.where} is {limits.state}: its jobs wait until it is UP again.")
        message = misfit(request, limits)
        if message:
            raise RequestFitError(message)
