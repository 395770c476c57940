"""What `--mode dry-run` says besides the scripts: what the real run fills in, and where."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from launcher.config import Site
from launcher.sites.dask_sources import Merged, merged, read_cluster_files
from launcher.sites.local import local_jupyter_args, root_dir

#: What a remote dry-run cannot know without a connection.
REMOTE_PLACEHOLDERS = (
    "# Filled in on the cluster when the job is submitted: $HOME is your home directory "
    "there, TIMESTAMP the run directory's date-time and random suffix."
)


def dask_home(site: Site) -> str:
    """The home directory that replaces a leading ~/ in the printed Dask config: this
    machine's for the local site, `$HOME` (filled in on the cluster) for the others."""
    return str(Path.home()) if site.is_local else "$HOME"


def local_header(site: Site) -> str:
    """The local site's dry-run: where JupyterLab would run and what it would serve."""
    command = [sys.executable, "-m", "jupyter", *local_jupyter_args(site)]
    return "\n".join(
        [
            "# local site: JupyterLab runs on this machine (no batch script)",
            f"# notebooks (Jupyter's root directory): {root_dir(site)}",
            f"# command: {shlex.join(command)}",
        ]
    )


def dask_note(site: Site) -> str:
    """The comment line under the Dask config's heading."""
    if site.is_local:
        return "# (written as shown to the session's run directory on this machine)"
    return "# ($HOME in it is filled in on the cluster: dask-jobqueue does not expand ~)"


def merged_dask(site: Site, connect: bool) -> Merged:
    """The worker jobs' jobqueue config with each value's source; with ``connect`` the
    user's own Dask files on the cluster are read (one command), else they are noted as left
    out."""
    if not connect:
        return merged(site, None, dask_home(site), [])
    from launcher.connection.ssh import SSHLink

    with SSHLink(site) as link:
        layers, notes = read_cluster_files(link.run, site)
        return merged(site, layers, link.home(), notes)
