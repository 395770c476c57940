"""Load platforms.ini and the platform profiles into validated, typed site objects.

Where sites and profiles come from (one rule; config_help() says it in `--help`):

- Sites: the sections of one file, `--config PATH` if given, else the user's
  `platforms.ini` in the user config directory, merged with the shipped example sites
  (`local`, `sandbox`): a section of that file wins over a shipped one of the same name.
- Profiles: `<platform>.yaml` next to `--config`'s file, then in the user config directory,
  then among the shipped profiles: the first found wins, so a user profile overrides a
  shipped one by name.

The shipped profiles and example sites are the package data `launcher.platforms` (the
repository's config/platforms, mapped by pyproject.toml); the user config directory is
platformdirs' (`~/.config/eo-hpc` on Linux), or $EOHPC_CONFIG_DIR.
"""

from __future__ import annotations

import configparser
import copy
import dataclasses
import difflib
import functools
import importlib.util
import json
import os
import re
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import platformdirs
import yaml

from eoshared.batchsystem import BATCH_SYSTEMS, JobSpec
from eoshared.batchsystem.units import format_seconds, memory_mib, parse_duration, parse_slurm_time
from eoshared.errors import ConfigError, UnknownSiteError
from launcher.config.dask_checks import check_dask, is_loopback
from launcher.config.distribution import source_tree

APP_NAME = "eo-hpc"
#: Overrides the user config directory (platforms.ini and the user's profiles).
CONFIG_DIR_ENV = "EOHPC_CONFIG_DIR"
INI_NAME = "platforms.ini"
#: The package whose data are the shipped profiles and example sites.
SHIPPED_PACKAGE = "launcher.platforms"
#: Where a site section or a profile came from.
SHIPPED, USER, EXPLICIT, BUILT_IN = "shipped", "user", "--config", "built-in"
LOCAL_UID = "local"
LOCAL_PLATFORM = "local"
#: libyaml's safe loader when PyYAML was built with it (about ten times faster), else PyYAML's.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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
BATCH_SYSTEM_NAMES = (*BATCH_SYSTEMS, "local")
#: dask-jobqueue's section of each batch system (as eoshared.batchsystem names them).
JOBQUEUE_SECTIONS = {name: cls.jobqueue_section for name, cls in BATCH_SYSTEMS.items()}
#: The profile key's older spelling, still read.
OLD_BATCH_SYSTEM_KEY = "scheduler"
MANAGERS = ("venv", "conda", "mamba", "current")
INI_CONNECTION_KEYS = ("platform", "host", "user", "keypath", "port", "proxy_jump")
INI_JOB_KEYS = ("partition", "account", "time", "cpus", "mem", "mem_per_cpu")
INI_ENV_KEYS = ("env_path", "python")
INI_JUPYTER_KEYS = ("notebook_dir",)
#: platforms.ini keys that size the Dask worker jobs -> their keys of the batch system's
#: dask-jobqueue section.
INI_WORKER_KEYS = {
    "worker_cores": "cores",
    "worker_memory": "memory",
    "worker_processes": "processes",
    "worker_queue": "queue",
    "worker_walltime": "walltime",
}
INI_DASK_KEYS = ("dask_interface", *INI_WORKER_KEYS)
INI_KEYS = INI_CONNECTION_KEYS + INI_JOB_KEYS + INI_ENV_KEYS + INI_JUPYTER_KEYS + INI_DASK_KEYS
#: A Dask memory size with a unit: 4GB, 4GiB, 4G, 512 MiB, 1.5TB.
_MEMORY = re.compile(r"^\d+(\.\d+)?\s*([kmgtp]i?b?|b)$", re.IGNORECASE)


def user_config_dir() -> Path:
    """The user's config directory: $EOHPC_CONFIG_DIR, else platformdirs' for eo-hpc."""
    return Path(os.environ.get(CONFIG_DIR_ENV) or platformdirs.user_config_dir(APP_NAME))


@functools.lru_cache(maxsize=1)
def shipped_dir() -> Path:
    """The directory of the shipped profiles and example sites (package data).

    importlib.resources finds the package `launcher.platforms`: launcher/platforms/ in a
    wheel, the repository's config/platforms in an editable install. When this launcher
    package was imported straight from a source tree that is not the installed one
    (run_jupyter.py in a clone, PYTHONPATH), the profiles of that same tree are used, so
    the code and its profiles always come from one place.
    """
    try:
        found = resources.files(SHIPPED_PACKAGE)
    except ModuleNotFoundError:
        found = None
    tree = source_tree()
    own = tree / "config" / "platforms" if tree is not None else None
    if (
        own is not None
        and own.is_dir()
        and not (isinstance(found, Path) and _same_path(found, own))
    ):
        return own  # launcher runs from a source tree that is not the installed one
    if not isinstance(found, Path) or not (found / INI_NAME).is_file():
        raise ConfigError(
            f"the shipped platform profiles (package data of {SHIPPED_PACKAGE}) are missing "
            "from this installation. Reinstall eo-hpc."
        )
    return found


def _same_path(a: Path, b: Path) -> bool:
    return a.expanduser().resolve() == b.expanduser().resolve()


@dataclass(frozen=True)
class SitesFile:
    """A platforms.ini that sites are read from, and where it came from."""

    path: Path
    origin: str  # SHIPPED, USER or EXPLICIT


@dataclass(frozen=True)
class ConfigSources:
    """Where the sites and the profiles come from: see this module's docstring.

    `explicit` is --config's file; without it the user's platforms.ini is read (if it exists).
    """

    explicit: Path | None = None

    @property
    def own_file(self) -> Path:
        """The file whose sections win (and that --add-platform writes): --config's file,
        else the user's platforms.ini (which need not exist yet)."""
        return self.explicit if self.explicit is not None else user_config_dir() / INI_NAME

    @property
    def own_origin(self) -> str:
        """EXPLICIT with --config, else USER."""
        return EXPLICIT if self.explicit is not None else USER

    def files(self) -> list[SitesFile]:
        """The platforms.ini files read, lowest precedence first."""
        shipped = SitesFile(shipped_dir() / INI_NAME, SHIPPED)
        own = self.own_file
        if own.is_file() and not _same_path(own, shipped.path):
            return [shipped, SitesFile(own, self.own_origin)]
        return [shipped]

    def profile_dirs(self) -> list[tuple[Path, str]]:
        """The directories searched for <platform>.yaml, first match wins, with their origin."""
        dirs: list[tuple[Path, str]] = []
        if self.explicit is not None:
            dirs.append((self.explicit.parent, EXPLICIT))
        dirs += [(user_config_dir(), USER), (shipped_dir(), SHIPPED)]
        unique: list[tuple[Path, str]] = []
        for directory, origin in dirs:
            same = [i for i, (d, _) in enumerate(unique) if _same_path(d, directory)]
            if same:  # listed twice (--config in the shipped directory): the later rank holds
                del unique[same[0]]
            unique.append((directory, origin))
        return unique


def config_help() -> str:
    """The lookup rule in one paragraph, for `--help` of --config."""
    return (
        "platforms.ini to read instead of your own "
        f"({user_config_dir() / INI_NAME}; ${CONFIG_DIR_ENV} moves the directory). Its sites "
        "are merged with the shipped example sites (local, sandbox); a section of the file "
        "wins over a shipped one of the same name. A profile <platform>.yaml is looked up next "
        "to the file, then in your config directory, then among the shipped profiles. "
        "--mode sites shows what was found where."
    )


def as_sources(config: ConfigSources | Path | None) -> ConfigSources:
    """ConfigSources from find_config's result, an explicit platforms.ini path, or None
    (the default lookup)."""
    if isinstance(config, ConfigSources):
        return config
    return ConfigSources(explicit=config)


def find_config(explicit: Path | None) -> ConfigSources:
    """Return where sites and profiles come from; --config's file must exist."""
    if explicit is not None and not explicit.is_file():
        raise ConfigError(f"{explicit}: no such file. Pass an existing platforms.ini to --config.")
    return ConfigSources(explicit=explicit)


def ini_parser() -> configparser.ConfigParser:
    """The parser of platforms.ini: no interpolation; ` ; comment` may end a line."""
    return configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";",))


def read_ini(path: Path | None) -> configparser.ConfigParser:
    """Parse platforms.ini (an empty parser when path is None)."""
    parser = ini_parser()
    if path is not None:
        try:
            parser.read(path, encoding="utf-8")
        except configparser.Error as exc:
            raise ConfigError(f"{path}: cannot parse ({exc}). Fix the INI syntax.") from exc
    return parser


def read_sections(
    config: ConfigSources | Path | None,
) -> dict[str, tuple[dict[str, str], SitesFile]]:
    """Every site section with the file it came from: the winning file's sections in its
    order, then the shipped ones it does not override."""
    sections: dict[str, tuple[dict[str, str], SitesFile]] = {}
    for sites_file in reversed(as_sources(config).files()):
        parser = read_ini(sites_file.path)
        for uid in parser.sections():
            sections.setdefault(uid, (dict(parser[uid]), sites_file))
    return sections


def site_names(config: ConfigSources | Path | None) -> list[str]:
    """Return the known site uids (the built-in `local` always among them)."""
    names = list(read_sections(config))
    return names if LOCAL_UID in names else [*names, LOCAL_UID]


def load_site(uid: str, config: ConfigSources | Path | None = None) -> Site:
    """Load and validate one site and its profile (see the lookup rule above)."""
    sources = as_sources(config)
    sections = read_sections(sources)
    if uid not in sections:
        if uid == LOCAL_UID:
            return Site(
                uid=uid,
                platform=LOCAL_PLATFORM,
                profile=load_profile(LOCAL_PLATFORM, sources),
                source=None,
            )
        names = site_names(sources)
        where = " and ".join(str(f.path) for f in reversed(sources.files()))
        raise UnknownSiteError(
            f"unknown site '{uid}'{_did_you_mean(uid, names)} in {where}. Known sites: "
            f"{', '.join(names)}. Add a section with --add-platform or pick one of these."
        )
    values, sites_file = sections[uid]
    return build_site(uid, values, sites_file.path, sources)


def build_site(
    uid: str, values: dict[str, str], path: Path, config: ConfigSources | Path | None
) -> Site:
    """Validate one site section (`values`, from the file `path`) and load its profile."""
    src = f"{path} [{uid}]"
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
    profile = _apply_overrides(load_profile(platform, config), values, src)
    return Site(
        uid=uid,
        platform=platform,
        profile=profile,
        source=path,
        host=values.get("host"),
        user=values.get("user"),
        keypath=Path(values["keypath"]).expanduser() if values.get("keypath") else None,
        port=_ini_int(values, "port", src),
        proxy_jump=values.get("proxy_jump"),
    )


def find_profile(platform: str, config: ConfigSources | Path | None) -> tuple[Path, str]:
    """The file of profile <platform>.yaml and its origin (first match of profile_dirs)."""
    dirs = as_sources(config).profile_dirs()
    for directory, origin in dirs:
        candidate = directory / f"{platform}.yaml"
        if candidate.is_file():
            return candidate, origin
    known = sorted({p.stem for d, _ in dirs if d.is_dir() for p in d.glob("*.yaml")})
    raise ConfigError(
        f"no profile '{platform}.yaml'{_did_you_mean(platform, known)} in "
        f"{', '.join(str(d) for d, _ in dirs)}. Known platforms: {', '.join(known)}."
    )


def profile_path(platform: str, config: ConfigSources | Path | None) -> Path:
    """The file of profile <platform>.yaml (see find_profile)."""
    return find_profile(platform, config)[0]


def load_profile(platform: str, config: ConfigSources | Path | None = None) -> Profile:
    """Load and validate a platform profile."""
    path = profile_path(platform, config)
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
    _check_job_sizes(profile.job, lambda key: f"{path}: key 'job.{key}'")
    _check_time(profile.job.time, f"{path}: key 'job.time'")
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
                f"{_foreign_key(key, own) or _did_you_mean(key, allowed)}. "
                f"Allowed (dask-jobqueue): {', '.join(sorted(allowed))}."
            )
    if profile.batch_system in BATCH_SYSTEMS:
        check_dask(path, profile.dask, profile.job.mem_per_cpu, BATCH_SYSTEMS[profile.batch_system])


def _check_job_sizes(job: JobSpec, where: typing.Callable[[str], str]) -> None:
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
                f"{where(key)} is {value!r}, not a memory size. Give a number with a unit "
                'as sbatch takes it, e.g. "16G", "4000M" or "2GB" (a bare number is megabytes).'
            )


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


def _foreign_key(key: str, own: str) -> str:
    """ " (a SLURM key ...)" when ``key`` belongs to another batch system's section only."""
    names = {cls.jobqueue_section: cls.display_name for cls in BATCH_SYSTEMS.values()}
    for section, name in names.items():
        if section != own and key in jobqueue_keys(section):
            return f" (a {name} key of 'dask.jobqueue.{section}', not a {names[own]} one)"
    return ""


def _apply_overrides(profile: Profile, values: dict[str, str], src: str) -> Profile:
    """Apply the per-site ini overrides to a profile."""
    job_changes: dict[str, Any] = {}
    for key in INI_JOB_KEYS:
        if key in values:
            job_changes[key] = _ini_int(values, key, src) if key == "cpus" else values[key]
    if "time" in values:
        _check_time(values["time"], f"{src}: key 'time'")
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
    _check_job_sizes(job, lambda key: f"{src}: key '{key}'")
    return dataclasses.replace(
        profile,
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
        number = _ini_int({key: text}, key, src)
        if number is None or number < 1:
            raise ConfigError(f"{src}: key '{key}' must be a positive integer, got '{value}'.")
        return number
    if key == "worker_memory":
        if not _MEMORY.match(text) or float(re.sub(r"[^\d.]", "", text)) <= 0:
            raise ConfigError(
                f"{src}: key 'worker_memory' is {value!r}; give a size with a unit, "
                'e.g. "4GiB", "16GB" or "512MiB".'
            )
        return text
    if key == "worker_walltime":
        _check_time(text, f"{src}: key 'worker_walltime'")
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


def site_records(config: ConfigSources | Path | None) -> list[dict[str, Any]]:
    """Every known site: its platform, the file it came from (and that file's origin), and its
    profile's file and origin (an `error` instead when the profile is missing)."""
    sources = as_sources(config)
    sections = read_sections(sources)
    shipped_uids = set(read_ini(shipped_dir() / INI_NAME).sections())
    records: list[dict[str, Any]] = []
    for uid, (values, sites_file) in sections.items():
        platform = values.get("platform", "")
        records.append(
            {
                "uid": uid,
                "platform": platform,
                "host": values.get("host"),
                "origin": sites_file.origin,
                "file": str(sites_file.path),
                "overrides_shipped": sites_file.origin != SHIPPED and uid in shipped_uids,
                **_profile_record(platform, sources),
            }
        )
    if LOCAL_UID not in sections:
        records.append(
            {
                "uid": LOCAL_UID,
                "platform": LOCAL_PLATFORM,
                "host": None,
                "origin": BUILT_IN,
                "file": None,
                "overrides_shipped": False,
                **_profile_record(LOCAL_PLATFORM, sources),
            }
        )
    return records


def _profile_record(platform: str, sources: ConfigSources) -> dict[str, Any]:
    try:
        path, origin = find_profile(platform, sources)
    except ConfigError as exc:
        return {"profile": None, "profile_origin": None, "error": str(exc)}
    return {"profile": str(path), "profile_origin": origin, "error": None}


def profile_records(sources: ConfigSources) -> list[dict[str, str]]:
    """The profiles a site can name, in lookup order: each ``<platform>.yaml`` of the profile
    directories that is a profile (a mapping naming its batch system; other YAML files beside
    the sites file are not), the first of each name only."""
    records: dict[str, dict[str, str]] = {}
    for directory, origin in sources.profile_dirs():
        for path in sorted(directory.glob("*.yaml")) if directory.is_dir() else ():
            if path.stem in records:
                continue
            try:
                data = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER)
            except (OSError, UnicodeDecodeError, yaml.YAMLError):
                continue
            if not isinstance(data, dict):
                continue
            system = data.get("batch_system", data.get(OLD_BATCH_SYSTEM_KEY))
            if not isinstance(system, str):
                continue
            cls = BATCH_SYSTEMS.get(system)
            name = cls.display_name if cls is not None else system
            records[path.stem] = {
                "name": path.stem,
                "batch_system": name,
                "origin": origin,
                "file": str(path),
            }
    return list(records.values())


def describe_sites(config: ConfigSources | Path | None, as_json: bool = False) -> int:
    """`--mode sites`: print every site, its platform and where it and its profile came from
    (the shipped examples, the user's file, --config's file); one JSON list with `as_json`."""
    sources = as_sources(config)
    records = site_records(sources)
    if as_json:
        print(json.dumps(records))
        return 0
    labels = {SHIPPED: "shipped", USER: "yours", EXPLICIT: "--config", BUILT_IN: "built-in"}
    width = max(len(r["uid"]) for r in records)
    pwidth = max(len(r["platform"]) for r in records)
    for r in records:
        shadow = "  (overrides the shipped example)" if r["overrides_shipped"] else ""
        site = f"site     {labels[r['origin']]:<9} {r['file'] or ''}".rstrip()
        print(f"{r['uid']:<{width}}  {r['platform']:<{pwidth}}  {site}{shadow}")
        if r["profile"]:
            profile = f"profile  {labels[r['profile_origin']]:<9} {r['profile']}"
        else:
            profile = f"profile  MISSING: {r['error']}"
        print(f"{'':<{width}}  {'':<{pwidth}}  {profile}")
    profiles = profile_records(sources)
    if profiles:
        print("\nprofiles (a site's platform names one; the first of a name wins):")
        nwidth = max(len(r["name"]) for r in profiles)
        bwidth = max(len(r["batch_system"]) for r in profiles)
        for r in profiles:
            print(
                f"  {r['name']:<{nwidth}}  {r['batch_system']:<{bwidth}}  "
                f"{labels[r['origin']]:<9} {r['file']}"
            )
    own = sources.own_file
    state = "" if own.is_file() else " (not created yet: --add-platform creates it)"
    print(f"\nsites file read with the shipped examples: {own}{state}")
    dirs = ", ".join(str(d) for d, _ in sources.profile_dirs())
    print(f"profiles <platform>.yaml looked up in: {dirs}")
    return 0
