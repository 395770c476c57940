"""Checks of a profile's `dask:` section: the settings Dask-on-HPC users most often get wrong.

The worker jobs' settings live in the batch system's dask-jobqueue section
(`dask.jobqueue.slurm`, `.pbs`, `.htcondor`); the batch system's class says which checks apply
to it (a walltime to retire before, keys it requires, memory per CPU).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eoshared.batchsystem.units import format_seconds, parse_duration, parse_slurm_time
from eoshared.errors import ConfigError

if TYPE_CHECKING:
    from eoshared.batchsystem import BatchSystem

LOOPBACK_NAMES = ("lo", "localhost")
REQUIRED_DIRECTORIES = {
    "local-directory": "node-local scratch for spilling, e.g. $TMPDIR or /tmp",
    "log-directory": "where worker job output goes, e.g. ~/.eohpc/dask-logs",
}


def check_dask(
    path: Path, dask: dict[str, Any], mem_per_cpu: str | None, system: type[BatchSystem]
) -> None:
    """Validate the Dask section of a profile of ``system``; raise ConfigError naming key and
    fix.

    `mem_per_cpu` is the Jupyter job's memory request per CPU: a site that takes memory per
    CPU (SLURM's) needs the same for the worker jobs.
    """
    section = system.jobqueue_section
    base = f"dask.jobqueue.{section}"
    workers = dask.get("jobqueue", {}).get(section)
    if not isinstance(workers, dict) or not workers:
        walltime = ("walltime",) if system.jobqueue_walltime else ()
        needs = ", ".join(("cores", "memory", *walltime, *system.jobqueue_required))
        raise ConfigError(
            f"{path}: missing key '{base}'. Add it with at least {needs}, "
            "local-directory, log-directory and worker-extra-args (--lifetime, "
            f"--lifetime-stagger); see the shipped profile generic-{section}.yaml (--mode sites "
            "prints where the profiles are)."
        )
    for key, what in system.jobqueue_required.items():
        if workers.get(key) is None:
            raise ConfigError(
                f"{path}: missing key '{base}.{key}'. {system.jobqueue_class} needs {what}."
            )
    if system.jobqueue_walltime:
        check_lifetime(path, workers, base, system.display_name)
    check_directories(path, workers, base)
    check_interface(path, workers, base)
    if system.jobqueue_memory_per_cpu:
        mem, per_cpu = system.jobqueue_memory_per_cpu
        check_memory_directives(path, workers, mem_per_cpu, base, mem, per_cpu)
    check_labextension(path, dask.get("labextension", {}), system.jobqueue_class)


def check_lifetime(path: Path, workers: dict[str, Any], base: str, system: str) -> None:
    """Workers retire (--lifetime, staggered) before the batch system kills their job at the
    walltime."""
    walltime_text = workers.get("walltime")
    if walltime_text is None:
        raise ConfigError(
            f"{path}: missing key '{base}.walltime'. Set the worker jobs' time limit, "
            'e.g. walltime: "02:00:00".'
        )
    try:
        walltime = parse_slurm_time(str(walltime_text))
    except ValueError:
        raise ConfigError(
            f"{path}: key '{base}.walltime' is {walltime_text!r}, not a {system} time. "
            'Use M, M:S, H:M:S, D-H, D-H:M or D-H:M:S, e.g. "02:00:00".'
        ) from None
    args = workers.get("worker-extra-args") or []
    key = f"{base}.worker-extra-args"
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ConfigError(f"{path}: key '{key}' must be a list of strings.")
    lifetime = _duration(path, key, args, "--lifetime", system)
    stagger = _duration(path, key, args, "--lifetime-stagger", system)
    if walltime is not None and lifetime + stagger >= walltime:
        raise ConfigError(
            f"{path}: key '{key}': --lifetime ({format_seconds(lifetime)}) plus "
            f"--lifetime-stagger ({format_seconds(stagger)}) is not shorter than walltime "
            f"({format_seconds(walltime)}), so {system} kills workers before they hand over "
            "their data. Shorten --lifetime (e.g. walltime minus 10 minutes minus the stagger) "
            "or raise walltime."
        )


def _duration(path: Path, key: str, args: list[str], flag: str, system: str) -> float:
    value: str | None = None
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(flag + "="):
            value = arg.split("=", 1)[1]
    if value is None:
        raise ConfigError(
            f"{path}: key '{key}' has no '{flag}'. Add e.g. [\"--lifetime\", \"110m\", "
            '"--lifetime-stagger", "5m"] for a 2-hour walltime, so workers retire '
            f"gracefully, one after another, before {system} ends their jobs."
        )
    try:
        return parse_duration(value)
    except ValueError:
        raise ConfigError(
            f"{path}: key '{key}': {flag} {value!r} is not a duration. Use e.g. '110m' or '2h'."
        ) from None


def check_directories(path: Path, workers: dict[str, Any], base: str) -> None:
    """Workers need node-local scratch and a log directory."""
    for name, what in REQUIRED_DIRECTORIES.items():
        value = workers.get(name)
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{path}: missing key '{base}.{name}'. Set it to {what}.")


def check_interface(path: Path, workers: dict[str, Any], base: str) -> None:
    """The scheduler must listen where workers on other nodes can reach it."""
    options = workers.get("scheduler-options") or {}
    if not isinstance(options, dict):
        raise ConfigError(f"{path}: key '{base}.scheduler-options' must be a mapping.")
    for key, value in (("interface", workers.get("interface")), *_scheduler_items(options)):
        if value is None:
            continue
        if not isinstance(value, str) or is_loopback(value):
            raise ConfigError(
                f"{path}: key '{base}.{key}' is {value!r}: workers on other nodes cannot "
                "reach a scheduler on the loopback interface. Use the compute nodes' "
                "high-speed interface (e.g. ib0), or remove the key to use the default route's."
            )


def _scheduler_items(options: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(f"scheduler-options.{k}", options.get(k)) for k in ("interface", "host")]


def is_loopback(value: str) -> bool:
    """True for the loopback interface, localhost, or a loopback address."""
    if value.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(value).is_loopback
    except ValueError:
        return False


def check_memory_directives(
    path: Path,
    workers: dict[str, Any],
    mem_per_cpu: str | None,
    base: str,
    mem: str,
    per_cpu: str,
) -> None:
    """Sites that take memory per CPU (and reject ``mem``, the per-job option) need the same
    (``per_cpu``) for worker jobs."""
    skip = workers.get("job-directives-skip") or []
    extra = workers.get("job-extra-directives") or []
    key = f"{base}.job-directives-skip"
    if mem_per_cpu and mem not in skip:
        raise ConfigError(
            f"{path}: the Jupyter job asks for memory per CPU (job.mem_per_cpu), but worker "
            f"jobs would ask for {mem}. Add '{mem}' to '{key}' and "
            f"'{per_cpu}={mem_per_cpu}' to '{base}.job-extra-directives'."
        )
    if mem in skip and not any(str(d).startswith(mem) for d in extra):
        raise ConfigError(
            f"{path}: '{key}' drops {mem}, so worker jobs get the site's default memory. "
            f"Add e.g. '{per_cpu}=4G' to '{base}.job-extra-directives'."
        )


def check_labextension(path: Path, labextension: Any, cluster: str = "SLURMCluster") -> None:
    """The Dask panel's "new cluster" button must submit worker jobs, with bounded adapt."""
    if not isinstance(labextension, dict):
        raise ConfigError(f"{path}: key 'dask.labextension' must be a mapping.")
    factory = labextension.get("factory") or {}
    if factory.get("class") == "LocalCluster":
        raise ConfigError(
            f"{path}: key 'dask.labextension.factory.class' is LocalCluster, so the Dask panel "
            "would run workers inside the Jupyter job. Set module: dask_jobqueue, "
            f"class: {cluster}."
        )
    adapt = (labextension.get("default") or {}).get("adapt")
    bounded = isinstance(adapt, dict) and any(
        isinstance(adapt.get(k), int) for k in ("maximum", "maximum_jobs")
    )
    if adapt is not None and not bounded:
        raise ConfigError(
            f"{path}: key 'dask.labextension.default.adapt' needs an integer 'maximum' "
            "(workers) or 'maximum_jobs', so adaptive scaling cannot flood the queue, e.g. "
            "{minimum: 0, maximum: 8}."
        )
