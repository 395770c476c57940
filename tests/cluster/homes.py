"""The cluster users' homes on the test rigs: started as a fresh machine has them, and checked
for what the tests leave behind.

Two rules:

* **Fresh at the start.** When a test session is the one that brings a rig up, the cluster
  user's home is emptied to what ``useradd --create-home`` gives a new user (``/etc/skel``),
  keeping only ``.ssh`` (the rig's authorized keys). A run therefore never depends on files an
  earlier run left there, on this machine or any other.
* **Nothing of ours left at the end.** Whatever is new in the home after the session, beyond the
  run directories (which are removed), is a defect, except the tools' own first-start state:
  Jupyter's, IPython's, pip's, npm's and HTCondor's folders, other programs' folders in
  ``~/.config``, and the files that ``dask.config.ensure_file`` writes when a package is first
  imported (for example dask-labextension's ``~/.config/dask/labextension.yaml``: a commented-
  out copy of a YAML file the package ships). Those are recognised by content, not by name: a
  file in ``~/.config/dask`` is the tool's own only when ``ensure_file`` of a same-named YAML
  file shipped in the cluster's environment produces exactly its bytes. What the launcher writes
  there (``eohpc-<platform>.yaml``) is never such a copy, so it is still checked.
"""

from __future__ import annotations

import os
import shutil
import sysconfig
import tempfile
from collections.abc import Iterable
from pathlib import Path

#: What the launcher creates in the cluster user's home for each job: run directories, the
#: worker jobs' logs (the profiles' log-directory) and pipelines' work directories. The suite
#: removes what it created there.
RUN_ARTEFACTS = (".eohpc/runs", ".eohpc/dask-logs", ".eohpc/pipelines")
#: Containers of the artefacts (install's emptied ones too) that may appear without counting
#: as left behind.
HOME_CONTAINERS = (
    ".eohpc",
    ".eohpc/dist",
    ".eohpc/installs",
    ".config",
    ".config/dask",
    *RUN_ARTEFACTS,
)
#: The tools' own state that JupyterLab, IPython, pip, npm and HTCondor's tools (their
#: ``known_hosts``) create on their first start.
HOME_IGNORED = (".cache", ".ipython", ".jupyter", ".local", ".npm", ".condor")
#: The folders of ``~/.config`` (XDG_CONFIG_HOME) that the project writes or reads; every other
#: folder there belongs to the program of its name (matplotlib, for example).
CONFIG_OURS = ("dask", "eo-hpc")
HOME_DEPTH = 3
#: Where dask.config.ensure_file puts a package's defaults for a user (``~/.config/dask``).
DASK_USER_CONFIG = Path(".config/dask")
#: Kept when a home is emptied: the rig's authorized keys.
HOME_KEPT = (".ssh",)
SKELETON = Path("/etc/skel")


def home_entries(home: Path) -> set[str]:
    """The paths under ``home`` (relative, at most HOME_DEPTH deep; a run directory counts as
    one entry)."""
    entries: set[str] = set()
    for root, dirs, files in os.walk(home):
        rel = Path(root).relative_to(home)
        if rel.parts and (rel.parts[0] in HOME_IGNORED or str(rel.parent) in RUN_ARTEFACTS):
            dirs.clear()
            continue
        if len(rel.parts) >= HOME_DEPTH:
            dirs.clear()
        entries.update(str(rel / name) for name in [*dirs, *files])
    return entries


def site_packages(environments: Iterable[Path]) -> list[Path]:
    """The ``site-packages`` folders of the given environments (venv or prefix roots) and of
    this test process's own environment."""
    found = [p for env in environments for p in sorted(env.glob("lib/python3*/site-packages"))]
    return [*found, Path(sysconfig.get_paths()["purelib"])]


def is_dask_default_copy(path: Path, packages: Iterable[Path]) -> bool:
    """Whether ``path`` is exactly what ``dask.config.ensure_file`` writes for a same-named YAML
    file shipped in one of ``packages`` (site-packages folders)."""
    import dask.config

    content = path.read_bytes()
    with tempfile.TemporaryDirectory() as scratch:
        sources = (s for folder in packages for s in folder.glob(f"*/**/{path.name}"))
        for n, source in enumerate(sources):
            target = Path(scratch) / str(n)
            dask.config.ensure_file(str(source), str(target))
            copy = target / path.name
            if copy.is_file() and copy.read_bytes() == content:
                return True
    return False


def is_tool_first_start_file(home: Path, entry: str, packages: Iterable[Path]) -> bool:
    """Whether ``entry`` (relative to ``home``) is a tool's own first-start file rather than
    something the project's code or tests wrote."""
    rel = Path(entry)
    if rel.parts[0] in HOME_IGNORED:
        return True
    if rel.parts[0] == ".config" and len(rel.parts) > 1 and rel.parts[1] not in CONFIG_OURS:
        return True
    if rel.parent != DASK_USER_CONFIG or rel.suffix not in (".yaml", ".yml"):
        return False
    path = home / rel
    return path.is_file() and is_dask_default_copy(path, packages)


def home_left_behind(home: Path, before: set[str], environments: Iterable[Path] = ()) -> list[str]:
    """Remove the run directories and worker logs created since ``before``; return whatever
    else is new in ``home``, less the tools' first-start files (``environments``: the cluster's
    Python environments whose packages may have written them)."""
    new = sorted(home_entries(home) - before)
    for entry in new:
        if str(Path(entry).parent) in RUN_ARTEFACTS:
            path = home / entry
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
    packages = site_packages(environments)
    return [
        e
        for e in sorted(home_entries(home) - before)
        if e not in HOME_CONTAINERS and not is_tool_first_start_file(home, e, packages)
    ]


def reset_home(home: Path, skeleton: Path = SKELETON) -> None:
    """Empty ``home`` to what a new user gets (the skeleton's files, owned as the home is),
    keeping HOME_KEPT."""
    if not home.is_dir():
        return
    owner = home.stat()
    for entry in home.iterdir():
        if entry.name in HOME_KEPT:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    if skeleton.is_dir():
        for source in skeleton.iterdir():
            target = home / source.name
            if source.is_dir():
                shutil.copytree(source, target, symlinks=True)
            else:
                shutil.copy2(source, target, follow_symlinks=False)
    for root, dirs, files in os.walk(home):
        for name in [".", *dirs, *files]:
            os.lchown(os.path.join(root, name), owner.st_uid, owner.st_gid)
