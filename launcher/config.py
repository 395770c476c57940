"""Load platforms.ini and the platform profiles into validated, typed site objects."""

from __future__ import annotations

import configparser
import copy
import dataclasses
import difflib
import importlib.util
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs
import yaml

from launcher.dask_checks import check_dask, is_loopback
from launcher.errors import ConfigError, UnknownSiteError
from launcher.slurmtime import parse_slurm_time

APP_NAME = "eo-hpc"
REPO_CONFIG_DIR = Path(__file__).resolve().parent.parent / "config" / "platforms"
LOCAL_UID = "local"
LOCAL_PLATFORM = "local"
#: libyaml's safe loader when PyYAML was built with it (about ten times faster), else PyYAML's.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class JobSpec:
    """Batch directives for the Jupyter job."""

    partition: str | None = None
    time: str = "01:00:00"
    cpus: int = 1
    mem: str | None = None
    mem_per_cpu: str | None = None
    account: str | None = None
    directives: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class EnvironmentSpec:
    """How the job activates its Python environment, and where `install` creates it."""

    manager: str = "venv"
    path: str | None = None
    python: str = "python3"
    modules: list[str] = field(default_factory=list)
    setup: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class JupyterSpec:
    """JupyterLab options."""

    app: str = "lab"
    root_dir: str | None = None
    args: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class InstallSpec:
    """What `install` puts into the environment."""

    project: str | None = None
    packages: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Profile:
    """A platform profile: config/platforms/<platform>.yaml."""

    name: str
    path: Path
    batch_system: str = "slurm"
    job: JobSpec = field(default_factory=JobSpec)
    environment: EnvironmentSpec = field(default_factory=EnvironmentSpec)
    jupyter: JupyterSpec = field(default_factory=JupyterSpec)
    install: InstallSpec = field(default_factory=InstallSpec)
    dask: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Site:
    """One [SITE] section of platforms.ini with its profile (site overrides applied)."""

    uid: str
    platform: str
    profile: Profile
    source: Path | None
    host: str | None = None
    user: str | None = None
    keypath: Path | None = None
    port: int | None = None
    proxy_jump: str | None = None

    @property
    def is_local(self) -> bool:
        """True for the built-in site that runs JupyterLab on this machine."""
        return self.platform == LOCAL_PLATFORM


#: ``batch_system:`` values; "local" runs JupyterLab on this machine.
BATCH_SYSTEM_NAMES = ("slurm", "pbs", "htcondor", "local")
#: dask-jobqueue's section of each batch system (as launcher.batchsystem names them).
JOBQUEUE_SECTIONS = {"slurm": "slurm", "pbs": "pbs", "htcondor": "htcondor"}
SYSTEM_TITLES = {"slurm": "SLURM", "pbs": "PBS", "htcondor": "HTCondor"}
#: The profile key's older spelling, still read.
OLD_BATCH_SYSTEM_KEY = "scheduler"
MANAGERS = ("venv", "conda", "mamba", "current")
INI_CONNECTION_KEYS = ("platform", "host", "user", "keypath", "port", "proxy_jump")
INI_JOB_KEYS = ("partition", "account", "time", "cpus", "mem", "mem_per_cpu")
INI_ENV_KEYS = ("env_path", "python")
INI_DASK_KEYS = ("dask_interface",)
INI_KEYS = INI_CONNECTION_KEYS + INI_JOB_KEYS + INI_ENV_KEYS + INI_DASK_KEYS


def default_config_paths() -> list[Path]:
    """Return the platforms.ini candidates in lookup order."""
    user_dir = Path(platformdirs.user_config_dir(APP_NAME))
    return [REPO_CONFIG_DIR / "platforms.ini", user_dir / "platforms.ini"]


def find_config(explicit: Path | None) -> Path | None:
    """Return the platforms.ini to use, or None when only the built-in sites exist."""
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(
                f"{explicit}: no such file. Pass an existing platforms.ini to --config."
            )
        return explicit
    return next((p for p in default_config_paths() if p.is_file()), None)


def read_ini(path: Path | None) -> configparser.ConfigParser:
    """Parse platforms.ini (an empty parser when path is None)."""
    parser = configparser.ConfigParser(interpolation=None)
    if path is not None:
        try:
            parser.read(path, encoding="utf-8")
        except configparser.Error as exc:
            raise ConfigError(f"{path}: cannot parse ({exc}). Fix the INI syntax.") from exc
    return parser


def site_names(path: Path | None) -> list[str]:
    """Return the site uids defined in platforms.ini plus the built-in `local`."""
    names = read_ini(path).sections()
    return names if LOCAL_UID in names else [*names, LOCAL_UID]


def load_site(uid: str, config_path: Path | None) -> Site:
    """Load and validate one site and its profile."""
    parser = read_ini(config_path)
    if uid not in parser:
        if uid == LOCAL_UID:
            return Site(
                uid=uid,
                platform=LOCAL_PLATFORM,
                profile=load_profile(LOCAL_PLATFORM, config_path),
                source=config_path,
            )
        known = ", ".join(site_names(config_path))
        hint = _did_you_mean(uid, site_names(config_path))
        where = config_path or "the built-in configuration"
        raise UnknownSiteError(
            f"unknown site '{uid}'{hint} in {where}. Known sites: {known}. "
            "Add a section with --add-platform or pick one of these."
        )
    values = dict(parser[uid])
    src = f"{config_path} [{uid}]"
    for key in values:
        if key not in INI_KEYS:
            raise ConfigError(
                f"{src}: unknown key '{key}'{_did_you_mean(key, INI_KEYS)}. "
                f"Allowed keys: {', '.join(INI_KEYS)}."
            )
    platform = values.get("platform")
    if not platform:
        raise ConfigError(f"{src}: missing key 'platform'. Add e.g. 'platform = generic-slurm'.")
    if platform != LOCAL_PLATFORM and not values.get("host"):
        raise ConfigError(
            f"{src}: missing key 'host'. Add the login node (or a ~/.ssh/config alias)."
        )
    profile = _apply_overrides(load_profile(platform, config_path), values, src)
    return Site(
        uid=uid,
        platform=platform,
        profile=profile,
        source=config_path,
        host=values.get("host"),
        user=values.get("user"),
        keypath=Path(values["keypath"]).expanduser() if values.get("keypath") else None,
        port=_ini_int(values, "port", src),
        proxy_jump=values.get("proxy_jump"),
    )


def profile_path(platform: str, config_path: Path | None) -> Path:
    """Find config/platforms/<platform>.yaml next to platforms.ini, then in the repository."""
    dirs = [config_path.parent] if config_path is not None else []
    dirs.append(REPO_CONFIG_DIR)
    for directory in dirs:
        candidate = directory / f"{platform}.yaml"
        if candidate.is_file():
            return candidate
    known = sorted({p.stem for d in dirs if d.is_dir() for p in d.glob("*.yaml")})
    raise ConfigError(
        f"no profile '{platform}.yaml'{_did_you_mean(platform, known)} in "
        f"{', '.join(str(d) for d in dirs)}. Known platforms: {', '.join(known)}."
    )


def load_profile(platform: str, config_path: Path | None) -> Profile:
    """Load and validate a platform profile."""
    path = profile_path(platform, config_path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER) or {}
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
    _check_time(profile.job.time, f"{path}: key 'job.time'")
    jobqueue = profile.dask.get("jobqueue", {})
    if not isinstance(jobqueue, dict):
        raise ConfigError(f"{path}: key 'dask.jobqueue' must be a mapping.")
    own = JOBQUEUE_SECTIONS.get(profile.batch_system, "slurm")
    for section in JOBQUEUE_SECTIONS.values():
        if section != own and section in jobqueue and profile.batch_system != "local":
            raise ConfigError(
                f"{path}: key 'dask.jobqueue.{section}' is for {SYSTEM_TITLES[section]} "
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
                f"{_foreign_key(key, own) or _did_you_mean(key, allowed)}. "
                f"Allowed (dask-jobqueue): {', '.join(sorted(allowed))}."
            )
    if profile.batch_system in JOBQUEUE_SECTIONS:
        check_dask(path, profile.dask, profile.job.mem_per_cpu, own)


def _check_time(value: str, where: str) -> None:
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
    data = yaml.load(defaults.read_text(encoding="utf-8"), Loader=_YAML_LOADER)
    return set(data["jobqueue"].get(section) or ())


def jobqueue_slurm_keys() -> set[str]:
    """Return the keys dask-jobqueue accepts under jobqueue.slurm (empty if not installed)."""
    return jobqueue_keys("slurm")


def _foreign_key(key: str, own: str) -> str:
    """ " (a SLURM key ...)" when ``key`` belongs to another batch system's section only."""
    for section in JOBQUEUE_SECTIONS.values():
        if section != own and key in jobqueue_keys(section):
            return (
                f" (a {SYSTEM_TITLES[section]} key of 'dask.jobqueue.{section}', not a "
                f"{SYSTEM_TITLES[own]} one)"
            )
    return ""


def _apply_overrides(profile: Profile, values: dict[str, str], src: str) -> Profile:
    """Apply the per-site ini overrides to a profile."""
    job_changes: dict[str, Any] = {}
    for key in INI_JOB_KEYS:
        if key in values:
            job_changes[key] = _ini_int(values, key, src) if key == "cpus" else values[key]
    if "time" in values:
        _check_time(values["time"], f"{src}: key 'time'")
    if "mem" in values:
        job_changes["mem_per_cpu"] = None
    if "mem_per_cpu" in values:
        job_changes["mem"] = None
    env_changes: dict[str, Any] = {}
    if "env_path" in values:
        env_changes["path"] = values["env_path"]
    if "python" in values:
        env_changes["python"] = values["python"]
    return dataclasses.replace(
        profile,
        job=dataclasses.replace(profile.job, **job_changes),
        environment=dataclasses.replace(profile.environment, **env_changes),
        dask=_dask_overrides(profile, values, src),
    )


def _dask_overrides(profile: Profile, values: dict[str, str], src: str) -> dict[str, Any]:
    """The profile's Dask config with the site's `dask_interface` (workers and scheduler)."""
    interface = values.get("dask_interface")
    if not interface:
        return profile.dask
    if profile.batch_system not in JOBQUEUE_SECTIONS:
        raise ConfigError(
            f"{src}: key 'dask_interface' applies to batch-system platforms only; remove it."
        )
    if is_loopback(interface):
        raise ConfigError(
            f"{src}: key 'dask_interface' is '{interface}': workers on other nodes cannot "
            "reach a scheduler on the loopback interface. Name the compute nodes' network "
            "interface (e.g. ib0), or remove the key."
        )
    dask = copy.deepcopy(profile.dask)
    section = JOBQUEUE_SECTIONS[profile.batch_system]
    dask.setdefault("jobqueue", {}).setdefault(section, {})["interface"] = interface
    return dask


def _ini_int(values: dict[str, str], key: str, src: str) -> int | None:
    if key not in values:
        return None
    try:
        return int(values[key])
    except ValueError:
        raise ConfigError(f"{src}: key '{key}' must be an integer, got '{values[key]}'.") from None


def _did_you_mean(word: str, choices: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _build(cls: type, data: dict[str, Any], path: Path, prefix: str) -> Any:
    """Instantiate a dataclass from a mapping, naming the file and key of any mistake."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            allowed = [n for n in names if n not in ("name", "path")]
            raise ConfigError(
                f"{path}: unknown key '{prefix}{key}'{_did_you_mean(key, allowed)}. "
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
