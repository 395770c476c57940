"""Render the Jupyter and batch-mode job scripts, the Jupyter config and the Dask config.

The header directives come from the profile's batch system (:mod:`eoshared.batchsystem`).
"""

from __future__ import annotations

import copy
import dataclasses
import shlex
import string
from importlib import resources
from typing import Any

import yaml

from eoshared.batchsystem import BATCH_SYSTEMS, JobSpec, batch_system_class
from eoshared.batchsystem.units import dask_memory_bytes
from eoshared.errors import ConfigError
from eoshared.scheduler import local_copy
from eoshared.scheduler.contract import BATCH_SYSTEM_ENV, SCHEDULER_FILE_ENV, SESSION_ENV
from launcher.config import Profile, Site

WRAPPER_NAME = "jupyter_wrapper.py"
JUPYTER_CONFIG_NAME = "jupyter_server_config.json"
#: The run directory's Dask config directory (DASK_CONFIG of its jobs).
DASK_DIR = "dask"

#: CPUs of the batch-mode job itself: its Dask workers are jobs of their own.
BATCH_JOB_CPUS = 1


class _Template(string.Template):
    """`@{name}` placeholders, so the shell's own `$` needs no escaping."""

    delimiter = "@"


def template_text(name: str) -> str:
    """Return a file from launcher/templates."""
    return (
        resources.files("launcher").joinpath("templates").joinpath(name).read_text(encoding="utf-8")
    )


def remote_path(path: str) -> str:
    """Quote a cluster path for bash, keeping a leading ~/ as $HOME."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def expand_home(path: str, home: str | None) -> str:
    """A cluster path with a leading ~/ made absolute with ``home`` (when known)."""
    return f"{home}/{path[2:]}" if home and path.startswith("~/") else path


def activation_lines(profile: Profile) -> tuple[list[str], str]:
    """Return the shell lines that activate the environment and the python to run."""
    env = profile.environment
    lines = [f"module load {shlex.quote(module)}" for module in env.modules]
    lines.extend(env.setup)
    python = env.python
    if env.path and env.manager == "venv":
        lines.append(f"source {remote_path(env.path)}/bin/activate")
        python = "python"
    elif env.path and env.manager in ("conda", "mamba"):
        lines.append('eval "$(conda shell.bash hook)"')
        lines.append(f"conda activate {remote_path(env.path)}")
        python = "python"
    return lines, python


def jupyter_args(profile: Profile) -> list[str]:
    """Return the `jupyter` sub-command and its options."""
    args = [profile.jupyter.app, "--no-browser", "--ServerApp.port_retries=0"]
    if profile.jupyter.root_dir:
        args.append(f"--ServerApp.root_dir={profile.jupyter.root_dir}")
    return args + profile.jupyter.args


def job_exports(site: Site, run_dir: str, with_scheduler: bool = False) -> list[str]:
    """The environment every job of a site exports: its Dask config and batch system, and
    with a session scheduler where that publishes itself (names from the contract)."""
    lines = [
        f'export DASK_CONFIG="$RUN_DIR/{DASK_DIR}"',
        f"export {BATCH_SYSTEM_ENV}={shlex.quote(site.profile.batch_system)}",
    ]
    if with_scheduler:
        published = local_copy.remote_file(run_dir)
        lines.append(f"export {SCHEDULER_FILE_ENV}={shlex.quote(published)}")
        lines.append(f"export {SESSION_ENV}={shlex.quote(site.uid)}")
    return lines


def shell_jupyter_args(profile: Profile) -> str:
    """jupyter_args quoted for the job script, with the root directory always set: the site's
    notebook_dir (profile jupyter.root_dir), else the home directory; a leading ~ is $HOME."""
    root = profile.jupyter.root_dir or "~"
    jupyter = dataclasses.replace(profile.jupyter, root_dir=root)
    root_arg = f"--ServerApp.root_dir={root}"
    return " ".join(
        "--ServerApp.root_dir=" + remote_path(root) if arg == root_arg else shlex.quote(arg)
        for arg in jupyter_args(dataclasses.replace(profile, jupyter=jupyter))
    )


def job_script(
    template: str,
    site: Site,
    run_dir: str,
    job: JobSpec,
    name: str,
    with_scheduler: bool = False,
    output: str = "",
    **fields: object,
) -> str:
    """``template`` filled with what every job script has (directives, site, run directory,
    environment activation, exports, python) and the template's own ``fields``. The job's
    output goes to ``output`` in the run directory (default: the batch system's own name)."""
    system = batch_system_class(site.profile.batch_system)()
    output = output or system.output_pattern
    directives = system.directives(job, name, f"{run_dir}/{output}")
    lines, python = activation_lines(site.profile)
    return _Template(template_text(template)).substitute(
        directives="\n".join(directives),
        uid=site.uid,
        platform=site.platform,
        run_dir=shlex.quote(run_dir),
        job_id_variable=system.job_id_variable,
        activate="\n".join(lines),
        exports="\n".join(job_exports(site, run_dir, with_scheduler)),
        python=python,
        **fields,
    )


def render(site: Site, run_dir: str, scheduler_max_jobs: int | None = None) -> str:
    """Render the Jupyter job script; run_dir is an absolute path on the cluster.

    With `scheduler_max_jobs` the job also runs the session's Dask scheduler (adaptive from 0
    to that many worker jobs).
    """
    extra = [] if scheduler_max_jobs is None else ["--scheduler-max-jobs", str(scheduler_max_jobs)]
    return job_script(
        "jupyter_job.sh",
        site,
        run_dir,
        site.profile.job,
        f"eohpc-jupyter-{site.uid}",
        with_scheduler=scheduler_max_jobs is not None,
        wrapper_args="".join(f"{shlex.quote(a)} " for a in extra),
        jupyter_args=shell_jupyter_args(site.profile),
    )


def batch_job(site: Site, nodes: int | None = None) -> JobSpec:
    """What the batch-mode job asks for. Without ``nodes``: one CPU (the profile's other job
    settings apply), as its Dask workers are jobs of their own. With ``nodes``: one allocation
    of that many nodes, each sized as one Dask worker job (the jobqueue section's cores and
    memory), with the profile job's time, partition, account and directives."""
    job = site.profile.job
    if not nodes:
        return dataclasses.replace(job, cpus=BATCH_JOB_CPUS)
    system = BATCH_SYSTEMS[site.profile.batch_system]
    name = system.jobqueue_section
    section = dask_config(site.profile).get("jobqueue", {}).get(name) or {}
    cores, memory = section.get("cores"), section.get("memory")
    if not isinstance(cores, int) or isinstance(cores, bool) or cores < 1 or not memory:
        raise ConfigError(
            f"one allocation (--nodes) sizes each node as one Dask worker job, and site "
            f"'{site.uid}' gives no worker size (cores {cores!r}, memory {memory!r}). Fix: set "
            f"worker_cores and worker_memory in platforms.ini [{site.uid}] (or "
            f"dask.jobqueue.{name}.cores and .memory in the profile)."
        )
    mib = system.jobqueue_memory_mib(dask_memory_bytes(memory))
    return dataclasses.replace(job, cpus=cores, mem=f"{mib}M", mem_per_cpu=None, nodes=nodes)


def render_batch(
    site: Site,
    run_dir: str,
    script_name: str,
    script_args: list[str],
    workers: int,
    timeout: float,
    nodes: int | None = None,
) -> str:
    """Render the batch-mode job script: eoshared.scheduler.driver runs the uploaded script
    with ``workers`` Dask workers that are jobs of their own, or with ``nodes``: in one
    allocation of that many nodes, each running one worker job's workers (see batch_job)."""
    workers_option = f"--nodes {int(nodes)}" if nodes else f"--workers {int(workers)}"
    mpiexec = site.profile.batch_mpiexec
    if nodes and mpiexec:
        workers_option += f" --mpiexec {shlex.quote(mpiexec)}"
    return job_script(
        "batch_job.sh",
        site,
        run_dir,
        batch_job(site, nodes),
        f"eohpc-batch-{site.uid}",
        workers_option=workers_option,
        workers_text=f"the workers of its {int(nodes)} nodes"
        if nodes
        else f"{int(workers)} Dask workers that are jobs of their own",
        timeout=int(timeout),
        script='"$RUN_DIR"/' + shlex.quote(script_name),
        script_args=" ".join(shlex.quote(a) for a in script_args),
    )


def dask_config(profile: Profile, home: str | None = None) -> dict[str, Any]:
    """Return the profile's Dask config.

    The batch system's jobqueue section inherits queue/account from the Jupyter job, and a
    leading ~/ in its directories becomes `home` (dask-jobqueue does not expand it).
    """
    config = copy.deepcopy(profile.dask)
    if profile.batch_system in BATCH_SYSTEMS:
        system = BATCH_SYSTEMS[profile.batch_system]
        workers = config.setdefault("jobqueue", {}).setdefault(system.jobqueue_section, {})
        if profile.job.partition and "queue" in system.jobqueue_inherits:
            workers.setdefault("queue", profile.job.partition)
        if profile.job.account and "account" in system.jobqueue_inherits:
            workers.setdefault("account", profile.job.account)
        for key in ("local-directory", "log-directory"):
            value = workers.get(key)
            if isinstance(value, str):
                workers[key] = expand_home(value, home)
    return config


def dask_yaml(profile: Profile, home: str | None = None) -> str:
    """Return the Dask config as YAML text."""
    return yaml.safe_dump(dask_config(profile, home), sort_keys=False)


def jupyter_config(token: str, allow_root: bool = False) -> dict[str, Any]:
    """Return the Jupyter server config (holds the token; written with mode 0600)."""
    server: dict[str, Any] = {"allow_remote_access": True, "open_browser": False}
    if allow_root:
        server["allow_root"] = True
    return {"IdentityProvider": {"token": token}, "ServerApp": server}
