"""Render the Jupyter batch script, the Jupyter config and the Dask config from a profile."""

from __future__ import annotations

import copy
import shlex
import string
from importlib import resources
from typing import Any

import yaml

from launcher.config import JobSpec, Profile, Site

WRAPPER_NAME = "jupyter_wrapper.py"
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


def render(site: Site, run_dir: str) -> str:
    """Render the batch script for a site; run_dir is an absolute path on the cluster."""
    profile = site.profile
    directives = sbatch_directives(
        profile.job, f"eohpc-jupyter-{site.uid}", f"{run_dir}/job-%j.out"
    )
    lines, python = activation_lines(profile)
    return _Template(template_text("jupyter_slurm.sh")).substitute(
        directives="\n".join(directives),
        uid=site.uid,
        platform=site.platform,
        run_dir=shlex.quote(run_dir),
        activate="\n".join(lines),
        python=python,
        jupyter_args=" ".join(shlex.quote(a) for a in jupyter_args(profile)),
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
