"""Profiles: the file <platform>.yaml found by the lookup rule (launcher.config.sources),
read into a `Profile` and checked (types, allowed values, job sizes and time, the Dask
section)."""

from __future__ import annotations

import dataclasses
import importlib.util
import shlex
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from eoshared.batchsystem import BATCH_SYSTEMS, JobSpec
from eoshared.batchsystem.units import memory_mib, parse_slurm_time
from eoshared.errors import ConfigError
from launcher.config.dask_checks import check_dask
from launcher.config.model import (
    BATCH_SYSTEM_NAMES,
    JOBQUEUE_SECTIONS,
    MANAGERS,
    OLD_BATCH_SYSTEM_KEY,
    Profile,
)
from launcher.config.sources import ConfigSources, as_sources
from launcher.config.spelling import did_you_mean

#: libyaml's safe loader when PyYAML was built with it (about ten times faster), else PyYAML's.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def find_profile(platform: str, config: ConfigSources | Path | None) -> tuple[Path, str]:
    """The file of profile <platform>.yaml and its origin (first match of profile_dirs)."""
    dirs = as_sources(config).profile_dirs()
    for directory, origin in dirs:
        candidate = directory / f"{platform}.yaml"
        if candidate.is_file():
            return candidate, origin
    known = sorted({p.stem for d, _ in dirs if d.is_dir() for p in d.glob("*.yaml")})
    raise ConfigError(
        f"no profile '{platform}.yaml'{did_you_mean(platform, known)} in "
        f"{', '.join(str(d) for d, _ in dirs)}. Known platforms: {', '.join(known)}."
    )


def profile_path(platform: str, config: ConfigSources | Path | None) -> Path:
    """The file of profile <platform>.yaml (see find_profile)."""
    return find_profile(platform, config)[0]


def load_profile(platform: str, config: ConfigSources | Path | None = None) -> Profile:
    """Load and validate a platform profile."""
    path = profile_path(platform, config)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=YAML_LOADER) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({exc}).") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level.")
    if OLD_BATCH_SYSTEM_KEY in data:
        if "batch_system" in data:
            raise ConfigError(
                f"{path}: set only 'batch_system' ('{OLD_BATCH_SYSTEM_KEY}' is its old name)."
            )
        data["batch_system"] = data.pop(OLD_BATCH_SYSTEM_KEY)
    profile = _build(Profile, {**data, "name": platform, "path": path}, path, "")
    _check_profile(profile)
    return profile


def _check_profile(profile: Profile) -> None:
    """Check the values that the types alone do not constrain."""
    path = profile.path
    if profile.batch_system not in BATCH_SYSTEM_NAMES:
        raise ConfigError(
            f"{path}: key 'batch_system' is '{profile.batch_system}'; allowed: "
            f"{', '.join(BATCH_SYSTEM_NAMES)}."
        )
    if profile.environment.manager not in MANAGERS:
        raise ConfigError(
            f"{path}: key 'environment.manager' is '{profile.environment.manager}'; "
            f"allowed: {', '.join(MANAGERS)}."
        )
    if profile.job.mem and profile.job.mem_per_cpu:
        raise ConfigError(f"{path}: set only one of 'job.mem' and 'job.mem_per_cpu'.")
    check_job_sizes(profile.job, lambda key: f"{path}: key 'job.{key}'")
    check_batch_nodes(profile.batch_nodes, f"{path}: key 'batch_nodes'")
    check_batch_mpiexec(profile.batch_mpiexec, f"{path}: key 'batch_mpiexec'")
    check_time(profile.job.time, f"{path}: key 'job.time'")
    jobqueue = profile.dask.get("jobqueue", {})
    if not isinstance(jobqueue, dict):
        raise ConfigError(f"{path}: key 'dask.jobqueue' must be a mapping.")
    own = JOBQUEUE_SECTIONS.get(profile.batch_system, "slurm")
    for other in BATCH_SYSTEMS.values():
        section = other.jobqueue_section
        if section != own and section in jobqueue and profile.batch_system != "local":
            raise ConfigError(
                f"{path}: key 'dask.jobqueue.{section}' is for {other.display_name} "
                f"profiles, but 'batch_system' is '{profile.batch_system}': move its keys to "
                f"'dask.jobqueue.{own}'."
            )
    workers = jobqueue.get(own, {})
    if not isinstance(workers, dict):
        raise ConfigError(f"{path}: key 'dask.jobqueue.{own}' must be a mapping.")
    allowed = jobqueue_keys(own)
    for key in workers:
        if allowed and key not in allowed:
            raise ConfigError(
                f"{path}: unknown key 'dask.jobqueue.{own}.{key}'"
                f"{_foreign_key(key, own) or did_you_mean(key, allowed)}. "
                f"Allowed (dask-jobqueue): {', '.join(sorted(allowed))}."
            )
    if profile.batch_system in BATCH_SYSTEMS:
        check_dask(path, profile.dask, profile.job.mem_per_cpu, BATCH_SYSTEMS[profile.batch_system])


def check_job_sizes(job: JobSpec, where: typing.Callable[[str], str]) -> None:
    """The job's CPU count is a whole number >= 1 and its memory sizes are sizes, or a
    ConfigError naming the key (``where(key)``) and the forms allowed."""
    if isinstance(job.cpus, bool) or not isinstance(job.cpus, int) or job.cpus < 1:
        raise ConfigError(f"{where('cpus')} is {job.cpus!r}; give a whole number of CPUs >= 1.")
    for key in ("mem", "mem_per_cpu"):
        value = getattr(job, key)
        if value is None:
            continue
        try:
            size = memory_mib(value)
        except ValueError:
            size = 0
        if size < 1:
            raise ConfigError(
                f"{where(key)} is {value!r}, not a memory size above zero. Give a number with a "
                'unit as sbatch takes it, e.g. "16G", "4000M" or "2GB" (a bare number is '
                "megabytes)."
            )


def check_batch_nodes(nodes: int | None, where: str) -> None:
    """None or a whole number of nodes >= 1, or a ConfigError naming where it came from."""
    if nodes is not None and nodes < 1:
        raise ConfigError(
            f"{where} is {nodes}; give the nodes of one batch allocation (>= 1), or remove it "
            "for workers that are jobs of their own."
        )


def check_batch_mpiexec(command: str | None, where: str) -> None:
    """None or a command line of shell words, or a ConfigError naming where it came from."""
    try:
        words = shlex.split(command) if command is not None else ["-"]
    except ValueError as exc:
        raise ConfigError(f"{where} is {command!r}, not a command line ({exc}).") from None
    if not words:
        raise ConfigError(
            f"{where} is empty; give the site's MPI launcher (e.g. mpirun), or remove it for "
            "the batch system's own (srun, pbsdsh)."
        )


def check_time(value: str, where: str) -> None:
    """A SLURM --time value, or a ConfigError naming where it came from."""
    try:
        parse_slurm_time(value)
    except ValueError:
        raise ConfigError(
            f"{where} is {value!r}, not a SLURM time. Use M, M:S, H:M:S, D-H, D-H:M or "
            'D-H:M:S, e.g. "04:00:00".'
        ) from None


def jobqueue_keys(section: str) -> set[str]:
    """Return the keys dask-jobqueue accepts under jobqueue.<section> (empty if not installed)."""
    spec = importlib.util.find_spec("dask_jobqueue")
    if spec is None or not spec.submodule_search_locations:
        return set()
    defaults = Path(next(iter(spec.submodule_search_locations))) / "jobqueue.yaml"
    data = yaml.load(defaults.read_text(encoding="utf-8"), Loader=YAML_LOADER)
    return set(data["jobqueue"].get(section) or ())


def _foreign_key(key: str, own: str) -> str:
    """ " (a SLURM key ...)" when ``key`` belongs to another batch system's section only."""
    names = {cls.jobqueue_section: cls.display_name for cls in BATCH_SYSTEMS.values()}
    for section, name in names.items():
        if section != own and key in jobqueue_keys(section):
            return f" (a {name} key of 'dask.jobqueue.{section}', not a {names[own]} one)"
    return ""


def _build(cls: type, data: dict[str, Any], path: Path, prefix: str) -> Any:
    """Instantiate a dataclass from a mapping, naming the file and key of any mistake."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            allowed = [n for n in names if n not in ("name", "path")]
            raise ConfigError(
                f"{path}: unknown key '{prefix}{key}'{did_you_mean(key, allowed)}. "
                f"Allowed: {', '.join(allowed)}."
            )
        expected = hints[key]
        if dataclasses.is_dataclass(expected):
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: key '{prefix}{key}' must be a mapping.")
            kwargs[key] = _build(expected, value, path, f"{prefix}{key}.")  # type: ignore[arg-type]
        else:
            kwargs[key] = _check_type(value, expected, path, f"{prefix}{key}")
    return cls(**kwargs)


def _check_type(value: Any, expected: Any, path: Path, key: str) -> Any:
    """Return value if it matches a simple annotation (str, int, bool, list[str], dict, X|None)."""
    options = typing.get_args(expected) if isinstance(expected, types.UnionType) else (expected,)
    if value is None and type(None) in options:
        return None
    for option in options:
        origin = typing.get_origin(option) or option
        if origin is list and isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        if origin is dict and isinstance(value, dict):
            return value
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        if option is Path and isinstance(value, (str, Path)):
            return Path(value)
    names = " or ".join(_type_name(o) for o in options)
    raise ConfigError(f"{path}: key '{key}' must be {names}, got {type(value).__name__} {value!r}.")


def _type_name(annotation: Any) -> str:
    if annotation is type(None):
        return "null"
    if typing.get_origin(annotation) is list:
        return "a list of strings"
    if typing.get_origin(annotation) is dict:
        return "a mapping"
    return getattr(annotation, "__name__", str(annotation))
