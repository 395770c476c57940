"""Render the Jupyter and batch-mode job scripts, the Jupyter config and the Dask config."""

from __future__ import annotations

import copy
import dataclasses
import shlex
import string
from importlib import resources
from typing import Any

import yaml

from launcher.config import JobSpec, Profile, Site

WRAPPER_NAME = "jupyter_wrapper.py"
BATCH_DRIVER_NAME = "batch_driver.py"
JUPYTER_CONFIG_NAME = "jupyter_server_config.json"


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


def sbatch_directives(job: JobSpec, job_name: str, output: str) -> list[str]:
    """Return the #SBATCH lines for the Jupyter job."""
    options = [
        f"--job-name={job_name}",
        f"--output={output}",
        f"--time={job.time}",
        "--nodes=1",
        "--ntasks=1",
        f"--cpus-per-task={job.cpus}",
    ]
    if job.partition:
        options.append(f"--partition={job.partition}")
    if job.account:
        options.append(f"--account={job.account}")
    if job.mem:
        options.append(f"--mem={job.mem}")
    if job.mem_per_cpu:
        options.append(f"--mem-per-cpu={job.mem_per_cpu}")
    options.extend(job.directives)
    return [line if line.startswith("#SBATCH") else f"#SBATCH {line}" for line in options]


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


def wrapper_args(site: Site, scheduler_max_jobs: int | None) -> list[str]:
    """Options of jupyter_wrapper.py: start the session scheduler when max jobs are given."""
    if scheduler_max_jobs is None:
        return []
    return ["--scheduler-max-jobs", str(int(scheduler_max_jobs)), "--session", site.uid]


def _job_script(
    template: str, site: Site, run_dir: str, job: JobSpec, name: str, **fields: object
) -> str:
    """``template`` filled with what every job script has (directives, site, run directory,
    environment activation, python) and the template's own ``fields``."""
    directives = sbatch_directives(job, name, f"{run_dir}/job-%j.out")
    lines, python = activation_lines(site.profile)
    return _Template(template_text(template)).substitute(
        directives="\n".join(directives),
        uid=site.uid,
        platform=site.platform,
        run_dir=shlex.quote(run_dir),
        activate="\n".join(lines),
        python=python,
        **fields,
    )


def render(site: Site, run_dir: str, scheduler_max_jobs: int | None = None) -> str:
    """Render the Jupyter job script; run_dir is an absolute path on the cluster.

    With `scheduler_max_jobs` the job also runs the session's Dask scheduler (adaptive from 0
    to that many worker jobs).
    """
    extra = wrapper_args(site, scheduler_max_jobs)
    return _job_script(
        "jupyter_slurm.sh",
        site,
        run_dir,
        site.profile.job,
        f"eohpc-jupyter-{site.uid}",
        wrapper_args="".join(f"{shlex.quote(a)} " for a in extra),
        jupyter_args=shell_jupyter_args(site.profile),
    )


def render_batch(
    site: Site,
    run_dir: str,
    script_name: str,
    script_args: list[str],
    workers: int,
    timeout: float,
) -> str:
    """Render the batch-mode job script: batch_driver.py runs the uploaded script.

    The job itself takes one CPU (the profile's other job settings apply): the Dask workers
    are SLURM jobs of their own, sized by the profile's jobqueue.slurm config.
    """
    return _job_script(
        "batch_slurm.sh",
        site,
        run_dir,
        dataclasses.replace(site.profile.job, cpus=1),
        f"eohpc-batch-{site.uid}",
        workers=int(workers),
        timeout=int(timeout),
        script='"$RUN_DIR"/' + shlex.quote(script_name),
        script_args=" ".join(shlex.quote(a) for a in script_args),
    )


def dask_config(profile: Profile, home: str | None = None) -> dict[str, Any]:
    """Return the profile's Dask config.

    jobqueue.slurm inherits queue/account from the Jupyter job, and a leading ~/ in its
    directories becomes `home` (dask-jobqueue does not expand it).
    """
    config = copy.deepcopy(profile.dask)
    if profile.scheduler == "slurm":
        slurm = config.setdefault("jobqueue", {}).setdefault("slurm", {})
        if profile.job.partition:
            slurm.setdefault("queue", profile.job.partition)
        if profile.job.account:
            slurm.setdefault("account", profile.job.account)
        for key in ("local-directory", "log-directory"):
            value = slurm.get(key)
            if home and isinstance(value, str) and value.startswith("~/"):
                slurm[key] = f"{home}/{value[2:]}"
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
