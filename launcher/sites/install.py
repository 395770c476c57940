"""Create (install) and remove (uninstall) a site's Python environment on the cluster."""

from __future__ import annotations

import json
import shlex
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console

from eoshared.errors import InstallError, LauncherError
from launcher.config import Site
from launcher.config.distribution import (
    BUILD_DIGEST_COMMAND,
    build_digest,
    project_wheel,
    running_origin,
)
from launcher.connection.ssh import SSHLink
from launcher.sites.jobscript import dask_yaml, expand_home


def _q(path: str) -> str:
    return shlex.quote(path)


def _prefix(site: Site) -> str:
    """Module loads and setup lines that must precede every install command."""
    env = site.profile.environment
    lines = [f"module load {_q(m)}" for m in env.modules] + list(env.setup)
    return "".join(f"{line} && " for line in lines)


def require_cluster(site: Site, mode: str) -> None:
    """Refuse install/uninstall on the local site, which has no cluster environment."""
    if site.is_local:
        raise InstallError(
            f"site '{site.uid}' runs JupyterLab on this machine, with the Python that runs "
            f"the launcher: --mode {mode} prepares a cluster's environment and has nothing to "
            "do here. For JupyterLab here, install this package with its extra: "
            "pip install 'eo-hpc[jupyter]'."
        )


def manifest_path(site: Site, home: str) -> str:
    """Where install records what it created for a site."""
    return f"{home}/.eohpc/installs/{site.uid}.json"


def build_wheel(dest: Path, console: Console) -> Path:
    """The wheel of the eo-hpc version running here (see launcher.config.distribution), in `dest`
    unless it is the wheel file that version was installed from."""
    origin = running_origin()
    console.print(f"this machine runs eo-hpc from the {origin.describe()}")
    return project_wheel(dest, origin)


def install(site: Site, link: SSHLink, console: Console) -> None:
    """Create the environment, install the project and Jupyter, write the Dask config."""
    env = site.profile.environment
    require_cluster(site, "install")
    if env.manager == "current" or not env.path:
        raise InstallError(
            f"site '{site.uid}' has no cluster environment to install (profile "
            f"{site.profile.path} sets no environment.path). Set environment.path or env_path."
        )
    home = link.home()
    path = expand_home(env.path, home)
    manifest = _read_manifest(link, manifest_path(site, home))
    existed = link.run(f"test -x {_q(path)}/bin/python")[0] == 0
    created = bool(manifest.get("created_env")) or not existed
    prefix = _prefix(site)
    try:
        link.check("mkdir -p ~/.eohpc/installs ~/.eohpc/dist ~/.config/dask && chmod 700 ~/.eohpc")
        if not existed:
            console.print(f"creating the {env.manager} environment {path}")
            link.check(prefix + _create_command(env.manager, env.python, path))
        project = site.profile.install.project
        files = [f"{home}/.config/dask/eohpc-{site.platform}.yaml"]
        if project is None:
            with tempfile.TemporaryDirectory(prefix="eohpc-wheel-") as out:
                wheel = build_wheel(Path(out), console)
                remote_wheel = f"{home}/.eohpc/dist/{wheel.name}"
                link.put(wheel, remote_wheel)
            files.append(remote_wheel)
            project = f"{remote_wheel}[jupyter]"
        packages = [project, *site.profile.install.packages]
        console.print(f"installing {', '.join(packages)} (this can take a while)")
        pip = f"{_q(path)}/bin/python -m pip install --prefer-binary -q "
        link.check(prefix + pip + " ".join(_q(p) for p in packages))
        here = build_digest()
        there = installed_build(link, prefix, path)
        if there != here and site.profile.install.project is None:
            # pip keeps an installed version it deems equal (same version number, other code)
            console.print(f"replacing build {there} in {path} with this machine's build {here}")
            link.check(prefix + pip + "--force-reinstall --no-deps " + _q(files[-1]))
            there = installed_build(link, prefix, path)
        link.check(f"umask 077 && cat > {_q(files[0])}", stdin=dask_yaml(site.profile, home))
    except LauncherError as exc:
        raise InstallError(f"install on site '{site.uid}' failed: {exc}") from None
    record = {"env_path": path, "created_env": created, "files": files, "build": there}
    link.check(f"umask 077 && cat > {_q(manifest_path(site, home))}", stdin=json.dumps(record))
    same = "the same as this machine's" if there == here else f"this machine runs build {here}"
    console.print(
        f"installed into {path} (eo-hpc build {there}, {same}); Dask config in {files[0]}"
    )


#: The build of an environment whose eo-hpc cannot tell its own (none, or one too old).
UNKNOWN_BUILD = "unknown"


def installed_build(link: SSHLink, prefix: str, env_path: str) -> str:
    """The build digest of the eo-hpc importable in the cluster environment ``env_path``
    (UNKNOWN_BUILD when it cannot say)."""
    command = f"{_q(env_path)}/bin/python -c {_q(BUILD_DIGEST_COMMAND)}"
    code, out, _ = link.run(prefix + command)
    lines = out.strip().splitlines()
    return lines[-1] if code == 0 and lines else UNKNOWN_BUILD


def uninstall(site: Site, link: SSHLink, console: Console) -> None:
    """Remove exactly what install recorded in its manifest."""
    require_cluster(site, "uninstall")
    home = link.home()
    path = manifest_path(site, home)
    manifest = _read_manifest(link, path)
    if not manifest:
        raise InstallError(
            f"nothing to uninstall for site '{site.uid}': no manifest {path} on the cluster "
            "(only what --mode install created is removed)."
        )
    targets = list(manifest.get("files", []))
    if manifest.get("created_env"):
        targets.append(manifest["env_path"])
    link.check("rm -rf -- " + " ".join(_q(t) for t in targets) + f" {_q(path)}")
    console.print(f"removed {', '.join(targets)}")


def _create_command(manager: str, python: str, path: str) -> str:
    if manager == "venv":
        return f"{_q(python)} -m venv {_q(path)} && {_q(path)}/bin/python -m pip install -q -U pip"
    return f"{manager} create -y -p {_q(path)} python=3.11 pip"


def _read_manifest(link: SSHLink, path: str) -> dict[str, Any]:
    code, out, _ = link.run(f"cat {_q(path)}")
    return json.loads(out) if code == 0 and out.strip() else {}
