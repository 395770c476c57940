"""The pipeline file: its schema, validated on read, and the rclone remotes it defines.

A pipeline is three steps submitted together and chained (stage-in, a job array with one task
per scene, stage-out); see README "Staged pipelines". ``parse`` checks every key and names the
key and the fix in its error. The validated :class:`Pipeline` travels to the cluster as JSON
(``pipeline.json`` in the run directory); secrets never do: they go to ``rclone.env``.

Standard library and PyYAML only (the array tasks import this on the cluster).
"""

from __future__ import annotations

import os
import re
import shlex
import string
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from eoshared.errors import ConfigError

#: Placeholders of the processing command (each value is shell-quoted when filled in).
PLACEHOLDERS = ("scene", "input", "output", "workdir", "attempt")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
REMOTE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
TIME_RE = re.compile(r"^(\d+-)?\d+(:\d{2}){0,2}$")
DEFAULT_WORKDIR = "~/.eohpc/pipelines/{name}"
DEFAULT_RETRIES = 1
TOP_KEYS = (
    "name",
    "workdir",
    "scenes",
    "stage_in",
    "process",
    "stage_out",
    "remotes",
    "on_failure",
)
PROCESS_KEYS = (
    "command",
    "retries",
    "parallel",
    "timeout",
    "cpus",
    "mem",
    "time",
    "mpi",
    "mpiexec",
)
#: The MPI launcher of a pipeline whose scenes run as MPI ranks (``process.mpiexec``).
DEFAULT_MPIEXEC = "mpirun"
SCENES_HELP = (
    "give a list of scene names, {file: NAME} (a file of the stage-in source, one scene a "
    "line) or {glob: PATTERN} (the files of the stage-in source that match, e.g. '*.tif')"
)


class PipelineError(ConfigError):
    """The pipeline file is missing, malformed or invalid."""


@dataclass
class Stage:
    """An rclone copy: ``source`` -> ``dest``, with extra rclone ``flags``."""

    remote: str
    flags: list[str] = field(default_factory=list)


@dataclass
class Pipeline:
    """A validated pipeline file."""

    name: str
    command: str
    workdir: str = ""
    scenes: list[str] = field(default_factory=list)
    scenes_file: str = ""
    scenes_glob: str = ""
    stage_in: Stage | None = None
    stage_out: Stage | None = None
    retries: int = DEFAULT_RETRIES
    parallel: int | None = None
    timeout: float | None = None
    cpus: int | None = None
    mem: str | None = None
    time: str | None = None
    #: MPI ranks of one job that process the scenes (0: a job array, a task per scene), and
    #: the launcher that starts them.
    mpi: int = 0
    mpiexec: str = DEFAULT_MPIEXEC
    remotes: dict[str, dict[str, str]] = field(default_factory=dict)
    on_failure_command: str = ""
    on_failure_webhook: str = ""

    def to_json(self) -> dict[str, Any]:
        """What the cluster side needs (remote definitions stay on the laptop)."""
        data = asdict(self)
        data["remotes"] = sorted(self.remotes)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Pipeline:
        """The inverse of :meth:`to_json` (remote definitions are not restored)."""
        values = dict(data)
        for key in ("stage_in", "stage_out"):
            if values.get(key) is not None:
                values[key] = Stage(**values[key])
        values["remotes"] = {}
        return cls(**values)


def _fail(key: str, problem: str, fix: str) -> PipelineError:
    return PipelineError(f"pipeline key '{key}': {problem}. Fix: {fix}.")


def _mapping(raw: Any, key: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _fail(key, f"expected a mapping, got {type(raw).__name__}", f"use keys {allowed}")
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        where = f"{key}.{unknown[0]}" if key else str(unknown[0])
        raise _fail(where, "unknown key", f"use only {', '.join(allowed)}")
    return raw


def _positive_int(raw: Any, key: str, minimum: int = 1) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < minimum:
        raise _fail(key, f"expected a whole number >= {minimum}, got {raw!r}", "give a number")
    return raw


def _rclone_path(raw: Any, key: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise _fail(key, f"expected an rclone path 'remote:path', got {raw!r}", "e.g. s3:bucket/in")
    return raw.strip()


def _flags(raw: Any, key: str) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = shlex.split(raw)
    if not isinstance(raw, list) or not all(isinstance(f, str | int) for f in raw):
        raise _fail(key, "expected a list of rclone options", "e.g. [--transfers, '8']")
    flags = [str(f) for f in raw]
    secret = [f for f in flags if re.search(r"key|secret|token|password|pass\b", f, re.I)]
    if secret:
        raise _fail(
            key,
            f"{secret[0]} would put a secret on a command line",
            "define the remote under 'remotes:' (values from your environment)",
        )
    return flags


def _stage(raw: Any, key: str, path_key: str) -> Stage:
    data = _mapping(raw, key, (path_key, "flags"))
    if path_key not in data:
        raise _fail(f"{key}.{path_key}", "this key is required", f"give the rclone {path_key} path")
    return Stage(
        _rclone_path(data[path_key], f"{key}.{path_key}"), _flags(data.get("flags"), f"{key}.flags")
    )


def _command(raw: Any) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise _fail(
            "process.command",
            "expected a shell command with {scene}",
            "e.g. 'tool {input}/{scene} {output}'",
        )
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(raw) if name is not None}
    except ValueError as exc:
        raise _fail(
            "process.command", f"bad placeholder ({exc})", "write {{ and }} for literal braces"
        ) from exc
    unknown = sorted(fields - set(PLACEHOLDERS))
    if unknown:
        raise _fail(
            "process.command",
            f"unknown placeholder {{{unknown[0]}}}",
            f"use {', '.join('{' + p + '}' for p in PLACEHOLDERS)}",
        )
    if "scene" not in fields:
        raise _fail("process.command", "no {scene} placeholder", "each task must know its scene")
    return raw


def aws_rclone_options(env: Mapping[str, str]) -> dict[str, str]:
    """rclone S3 options from the AWS settings the user keeps (the AWS_* variables of ``env``,
    ~/.aws/credentials and config with AWS_PROFILE), through the one S3 mapping
    (:mod:`eoshared.s3_settings`) that eotoolkit gives GDAL and s3fs too; empty when no
    credentials are found."""
    from eoshared.s3_settings import rclone_env, resolve

    try:
        cfg = resolve(env=env)
    except ValueError:  # a named profile that does not exist: no credentials
        return {}
    prefix = "RCLONE_CONFIG_AWS_"
    options = {k[len(prefix) :].lower(): v for k, v in rclone_env(cfg, "aws").items()}
    options.pop("type", None)
    return options


def _remotes(raw: Any, env: Mapping[str, str]) -> dict[str, dict[str, str]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _fail(
            "remotes",
            "expected a mapping of remote names",
            "e.g. remotes: {src: {type: s3, credentials: aws}}",
        )
    remotes: dict[str, dict[str, str]] = {}
    for name, options in raw.items():
        key = f"remotes.{name}"
        if not isinstance(name, str) or not REMOTE_RE.match(name):
            raise _fail(key, "not a valid rclone remote name", "use letters, digits, - and _")
        if not isinstance(options, dict) or "type" not in options:
            raise _fail(
                key,
                "expected a mapping with 'type'",
                "e.g. {type: s3, provider: Ceph, endpoint: ...}",
            )
        values: dict[str, str] = {}
        for option, value in options.items():
            if option == "credentials":
                if value != "aws":
                    raise _fail(
                        f"{key}.credentials",
                        f"unknown source {value!r}",
                        "use 'aws' (AWS_* variables)",
                    )
                found = aws_rclone_options(env)
                if "access_key_id" not in found or "secret_access_key" not in found:
                    raise _fail(
                        f"{key}.credentials",
                        "no AWS credentials here (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                        "or a profile of ~/.aws/credentials)",
                        "export them, or set AWS_PROFILE, before running the pipeline",
                    )
                for opt, val in found.items():
                    values.setdefault(opt, val)
            elif option == "env":
                if not isinstance(value, dict):
                    raise _fail(
                        f"{key}.env",
                        "expected {rclone option: ENVIRONMENT_VARIABLE}",
                        "e.g. {pass: MY_PASS}",
                    )
                for opt, var in value.items():
                    if not env.get(str(var)):
                        raise _fail(f"{key}.env.{opt}", f"${var} is not set here", f"export {var}")
                    values[str(opt)] = env[str(var)]
            elif isinstance(value, dict | list) or value is None:
                raise _fail(
                    f"{key}.{option}", "expected a plain value", "give a string, number or boolean"
                )
            elif re.search(r"key|secret|token|pass", str(option), re.I):
                raise _fail(
                    f"{key}.{option}",
                    "a secret written into the pipeline file",
                    f"use 'env: {{{option}: VARIABLE}}' or 'credentials: aws' (your environment)",
                )
            else:
                values[str(option)] = str(value).lower() if isinstance(value, bool) else str(value)
        if "env_auth" not in values and values.get("type") == "s3" and "access_key_id" in values:
            values["env_auth"] = "false"
        remotes[name] = values
    return remotes


def parse(raw: Any, env: Mapping[str, str] | None = None) -> Pipeline:
    """Validate a pipeline mapping (as read from YAML); ``env`` supplies remote credentials."""
    env = os.environ if env is None else env
    if not isinstance(raw, dict):
        raise PipelineError("the pipeline file must hold a mapping (name, scenes, process, ...).")
    data = _mapping(raw, "", TOP_KEYS)
    for key in ("name", "process"):
        if key not in data:
            raise _fail(key, "this key is required", "see README 'Staged pipelines'")
    name = data["name"]
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise _fail(
            "name", f"{name!r} is not a plain name", "use letters, digits, '.', '_' and '-'"
        )
    process = _mapping(data["process"], "process", PROCESS_KEYS)
    if "command" not in process:
        raise _fail("process.command", "this key is required", "give the command each task runs")
    pipe = Pipeline(name=name, command=_command(process["command"]))
    workdir = data.get("workdir", DEFAULT_WORKDIR.format(name=name))
    if not isinstance(workdir, str) or not (workdir.startswith(("/", "~/"))):
        raise _fail("workdir", f"{workdir!r} is not absolute", "give /scratch/... or ~/...")
    pipe.workdir = workdir.rstrip("/")
    if "stage_in" in data:
        pipe.stage_in = _stage(data["stage_in"], "stage_in", "from")
    if "stage_out" in data:
        pipe.stage_out = _stage(data["stage_out"], "stage_out", "to")
    scenes = data.get("scenes")
    if isinstance(scenes, list):
        if not scenes or not all(isinstance(s, str | int) for s in scenes):
            raise _fail("scenes", "expected a non-empty list of names", SCENES_HELP)
        pipe.scenes = [str(s) for s in scenes]
        bad = [s for s in pipe.scenes if not s.strip() or s.startswith((".", "/")) or ".." in s]
        if bad:
            raise _fail(
                "scenes", f"scene {bad[0]!r} is not a relative name", "drop leading '/' or '.'"
            )
        if len(set(pipe.scenes)) != len(pipe.scenes):
            raise _fail("scenes", "a scene is listed twice", "list each scene once")
    elif isinstance(scenes, dict) and len(scenes) == 1 and set(scenes) <= {"file", "glob"}:
        if pipe.stage_in is None:
            raise _fail(
                "scenes",
                "a scene file or glob needs 'stage_in'",
                "add stage_in.from, or list the scenes",
            )
        ((kind, value),) = scenes.items()
        if not isinstance(value, str) or not value:
            raise _fail(f"scenes.{kind}", "expected a name", SCENES_HELP)
        if kind == "file":
            pipe.scenes_file = value
        else:
            pipe.scenes_glob = value
    else:
        raise _fail("scenes", "missing or not a list, {file: ...} or {glob: ...}", SCENES_HELP)
    pipe.retries = _positive_int(process.get("retries", DEFAULT_RETRIES), "process.retries", 0)
    if "parallel" in process:
        pipe.parallel = _positive_int(process["parallel"], "process.parallel")
    if "mpi" in process:
        pipe.mpi = _positive_int(process["mpi"], "process.mpi")
        if pipe.parallel is not None:
            raise _fail(
                "process.mpi",
                "MPI ranks and 'parallel' both say how many scenes run at once",
                "keep one of them",
            )
    if "mpiexec" in process:
        mpiexec = process["mpiexec"]
        if not pipe.mpi or not isinstance(mpiexec, str) or not shlex.split(mpiexec):
            raise _fail(
                "process.mpiexec",
                f"{mpiexec!r} is not an MPI launcher of process.mpi ranks",
                "give a command such as 'mpirun' or 'srun --mpi=pmix', with process.mpi",
            )
        pipe.mpiexec = mpiexec
    if "timeout" in process:
        pipe.timeout = float(_positive_int(process["timeout"], "process.timeout"))
    if "cpus" in process:
        pipe.cpus = _positive_int(process["cpus"], "process.cpus")
    if "mem" in process:
        if not isinstance(process["mem"], str) or not re.match(r"^\d+[KMGT]?B?$", process["mem"]):
            raise _fail("process.mem", f"{process['mem']!r} is not a size", "e.g. 4G or 500M")
        pipe.mem = process["mem"]
    if "time" in process:
        if not isinstance(process["time"], str) or not TIME_RE.match(process["time"]):
            raise _fail(
                "process.time", f"{process['time']!r} is not a time limit", "e.g. '01:30:00'"
            )
        pipe.time = process["time"]
    pipe.remotes = _remotes(data.get("remotes"), env)
    hook = data.get("on_failure")
    if hook is not None:
        hook = _mapping(hook, "on_failure", ("command", "webhook"))
        command, webhook = hook.get("command", ""), hook.get("webhook", "")
        if not isinstance(command, str) or not isinstance(webhook, str) or not (command or webhook):
            raise _fail(
                "on_failure", "expected command: and/or webhook: text", "e.g. webhook: https://..."
            )
        if webhook and not webhook.startswith(("http://", "https://")):
            raise _fail(
                "on_failure.webhook", f"{webhook!r} is not an http(s) URL", "give https://..."
            )
        pipe.on_failure_command, pipe.on_failure_webhook = command, webhook
    return pipe


def read(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Pipeline:
    """Read and validate a pipeline file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PipelineError(
            f"pipeline file {path} not found. Pass a YAML file to --file."
        ) from None
    except yaml.YAMLError as exc:
        raise PipelineError(f"pipeline file {path} is not valid YAML: {exc}") from None
    try:
        return parse(raw, env)
    except PipelineError as exc:
        raise PipelineError(f"{path}: {exc}") from None


def rclone_env(remotes: Mapping[str, Mapping[str, str]]) -> str:
    """The remotes as rclone's ``RCLONE_CONFIG_<REMOTE>_<OPTION>`` exports (a shell file that
    holds secrets: written 0600 in the 0700 run directory and sourced by the jobs)."""
    lines = ["# rclone remotes of this pipeline run (private: mode 0600)"]
    for name, options in sorted(remotes.items()):
        prefix = "RCLONE_CONFIG_" + re.sub(r"[^A-Z0-9]", "_", name.upper())
        for option, value in sorted(options.items()):
            variable = prefix + "_" + re.sub(r"[^A-Z0-9]", "_", option.upper())
            lines.append(f"export {variable}={shlex.quote(value)}")
    return "\n".join(lines) + "\n"


def read_env_file(text: str) -> dict[str, str]:
    """The variables of a file written by :func:`rclone_env`."""
    values = {}
    for line in text.splitlines():
        parts = shlex.split(line, comments=True)
        if len(parts) == 2 and parts[0] == "export" and "=" in parts[1]:
            key, value = parts[1].split("=", 1)
            values[key] = value
    return values


def scene_dir(scene: str) -> str:
    """The name of a scene's output directory (a scene from a glob may hold '/')."""
    return scene.replace("/", "__")
