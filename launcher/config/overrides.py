"""A platforms.ini section's values applied onto its profile: the job's partition, account,
time, CPUs and memory, the environment, the notebook directory, and the Dask workers'
interface and sizes; each value checked, a mistake named by its key."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from eoshared.batchsystem import BATCH_SYSTEMS
from eoshared.batchsystem.units import (
    dask_memory_bytes,
    format_seconds,
    parse_duration,
    parse_slurm_time,
)
from eoshared.errors import ConfigError
from launcher.config.dask_checks import check_dask, is_loopback
from launcher.config.model import INI_JOB_KEYS, INI_WORKER_KEYS, JOBQUEUE_SECTIONS, Profile
from launcher.config.profiles import (
    check_batch_mpiexec,
    check_batch_nodes,
    check_job_sizes,
    check_time,
    jobqueue_keys,
)


def apply_overrides(profile: Profile, values: dict[str, str], src: str) -> Profile:
    """Apply the per-site ini overrides to a profile."""
    job_changes: dict[str, Any] = {}
    for key in INI_JOB_KEYS:
        if key in values:
            job_changes[key] = ini_int(values, key, src) if key == "cpus" else values[key]
    if "time" in values:
        check_time(values["time"], f"{src}: key 'time'")
    if "mem" in values and "mem_per_cpu" in values:
        raise ConfigError(
            f"{src}: keys 'mem' ({values['mem']}) and 'mem_per_cpu' ({values['mem_per_cpu']}) "
            "are both set; a job asks for its memory one way. Keep one of them."
        )
    # the site's key replaces the profile's memory request, whichever way the profile wrote it
    if "mem" in values:
        job_changes["mem_per_cpu"] = None
    if "mem_per_cpu" in values:
        job_changes["mem"] = None
    env_changes: dict[str, Any] = {}
    if "env_path" in values:
        env_changes["path"] = values["env_path"]
    if "python" in values:
        env_changes["python"] = values["python"]
    jupyter_changes: dict[str, Any] = {}
    if "notebook_dir" in values:
        jupyter_changes["root_dir"] = _notebook_dir(values["notebook_dir"], src)
    job = dataclasses.replace(profile.job, **job_changes)
    check_job_sizes(job, lambda key: f"{src}: key '{key}'")
    nodes = profile.batch_nodes
    if "batch_nodes" in values:
        nodes = ini_int(values, "batch_nodes", src)
        check_batch_nodes(nodes, f"{src}: key 'batch_nodes'")
    mpiexec = values.get("batch_mpiexec", profile.batch_mpiexec)
    check_batch_mpiexec(mpiexec, f"{src}: key 'batch_mpiexec'")
    return dataclasses.replace(
        profile,
        batch_nodes=nodes,
        batch_mpiexec=mpiexec,
        job=job,
        environment=dataclasses.replace(profile.environment, **env_changes),
        jupyter=dataclasses.replace(profile.jupyter, **jupyter_changes),
        dask=_dask_overrides(profile, values, src),
    )


def _notebook_dir(value: str, src: str) -> str:
    """The site's `notebook_dir`: absolute, or under ~ (a relative path is relative to ~)."""
    path = value.strip()
    if not path or "$" in path or (path.startswith("~") and path != "~" and path[1] != "/"):
        raise ConfigError(
            f"{src}: key 'notebook_dir' is {value!r}. Give an absolute path or one under ~ "
            "(e.g. ~/notebooks or /scratch/me); variables other than a leading ~ are not "
            "expanded."
        )
    if path.startswith(("/", "~")):
        return path.rstrip("/") or "/"
    return "~/" + path.rstrip("/")


def _dask_overrides(profile: Profile, values: dict[str, str], src: str) -> dict[str, Any]:
    """The profile's Dask config with the site's `dask_interface` (workers and scheduler) and
    worker sizes (`worker_*` keys -> the batch system's dask.jobqueue section), checked again
    as a whole."""
    interface = values.get("dask_interface")
    workers = {key: values[key] for key in INI_WORKER_KEYS if key in values}
    if not interface and not workers:
        return profile.dask
    if profile.batch_system not in JOBQUEUE_SECTIONS:
        keys = [*(["dask_interface"] if interface else []), *workers]
        names = ", ".join(f"'{k}'" for k in keys)
        raise ConfigError(
            f"{src}: key {names} applies to batch-system platforms only; remove it."
            if len(keys) == 1
            else f"{src}: keys {names} apply to batch-system platforms only; remove them."
        )
    if interface and is_loopback(interface):
        raise ConfigError(
            f"{src}: key 'dask_interface' is '{interface}': workers on other nodes cannot "
            "reach a scheduler on the loopback interface. Name the compute nodes' network "
            "interface (e.g. ib0), or remove the key."
        )
    dask = copy.deepcopy(profile.dask)
    section = JOBQUEUE_SECTIONS[profile.batch_system]
    own = dask.setdefault("jobqueue", {}).setdefault(section, {})
    if interface:
        own["interface"] = interface
    allowed = jobqueue_keys(section)
    for key, value in workers.items():
        name = INI_WORKER_KEYS[key]
        if allowed and name not in allowed:
            raise ConfigError(
                f"{src}: key '{key}' sets dask-jobqueue's '{name}', which {section} worker jobs "
                f"do not have; remove it."
            )
        own[name] = _worker_value(key, value, src)
    if not workers:
        return dask
    if "worker_walltime" in workers:
        _fit_lifetime(own, src)
    cores, processes = own.get("cores"), own.get("processes", 1)
    if isinstance(cores, int) and isinstance(processes, int) and processes > cores:
        raise ConfigError(
            f"{src}: the worker jobs would run {processes} processes on {cores} cores "
            "(worker_processes/worker_cores or the profile's); each process needs a core. "
            "Lower worker_processes or raise worker_cores."
        )
    try:
        check_dask(profile.path, dask, profile.job.mem_per_cpu, BATCH_SYSTEMS[profile.batch_system])
    except ConfigError as exc:
        raise ConfigError(f"{src}: with this site's {', '.join(workers)}: {exc}") from None
    return dask


def _worker_value(key: str, value: str, src: str) -> int | str:
    """A checked `worker_*` value, typed as dask-jobqueue takes it."""
    text = value.strip()
    if key in ("worker_cores", "worker_processes"):
        number = ini_int({key: text}, key, src)
        if number is None or number < 1:
            raise ConfigError(f"{src}: key '{key}' must be a positive integer, got '{value}'.")
        return number
    if key == "worker_memory":
        try:
            size = dask_memory_bytes(text)
        except ValueError:
            size = 0
        # A bare number would be bytes to Dask: a unit is asked for, so none is misread.
        if size <= 0 or not any(c.isalpha() for c in text):
            raise ConfigError(
                f"{src}: key 'worker_memory' is {value!r}; give a size with a unit, "
                'e.g. "4GiB", "16GB" or "512MiB".'
            )
        return text
    if key == "worker_walltime":
        check_time(text, f"{src}: key 'worker_walltime'")
        if parse_slurm_time(text) is None:
            raise ConfigError(
                f"{src}: key 'worker_walltime' is {value!r}; worker jobs need a finite time "
                'limit, e.g. "02:00:00".'
            )
        return text
    if not text or any(c.isspace() for c in text):
        raise ConfigError(f"{src}: key '{key}' must be one partition name, got {value!r}.")
    return text


def _fit_lifetime(slurm: dict[str, Any], src: str) -> None:
    """With the site's worker_walltime, workers retire at walltime minus twice the profile's
    --lifetime-stagger (before the batch system ends their jobs): --lifetime is set to that."""
    walltime = parse_slurm_time(str(slurm["walltime"])) or 0
    args = list(slurm.get("worker-extra-args") or [])
    stagger = _flag_seconds(args, "--lifetime-stagger")
    if stagger is None:
        return  # check_dask names the missing flag
    lifetime = walltime - 2 * stagger
    if lifetime <= 0:
        raise ConfigError(
            f"{src}: key 'worker_walltime' ({format_seconds(walltime)}) leaves workers no "
            f"lifetime: it must exceed twice the profile's --lifetime-stagger "
            f"({format_seconds(stagger)})."
        )
    text = f"{int(lifetime) // 60}m" if lifetime % 60 == 0 else f"{int(lifetime)}s"
    for i, arg in enumerate(args):
        if arg == "--lifetime" and i + 1 < len(args):
            args[i + 1] = text
        elif arg.startswith("--lifetime="):
            args[i] = f"--lifetime={text}"
    slurm["worker-extra-args"] = args


def _flag_seconds(args: list[str], flag: str) -> float | None:
    """Seconds of a duration flag's value in worker-extra-args (None if absent or invalid)."""
    for i, arg in enumerate(args):
        value = None
        if arg == flag and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(flag + "="):
            value = arg.split("=", 1)[1]
        if value is not None:
            try:
                return parse_duration(value)
            except ValueError:
                return None
    return None


def ini_int(values: dict[str, str], key: str, src: str) -> int | None:
    if key not in values:
        return None
    try:
        return int(values[key])
    except ValueError:
        raise ConfigError(f"{src}: key '{key}' must be an integer, got '{values[key]}'.") from None
