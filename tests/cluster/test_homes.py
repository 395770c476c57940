"""The rigs' home check: the tools' first-start files are told from the project's by rule."""

from __future__ import annotations

import os
from pathlib import Path

import dask.config
import pytest

from tests.cluster import homes


def _package(site: Path, name: str, text: str) -> Path:
    """A package in ``site`` shipping ``name`` with ``text``, as a tool's defaults file."""
    folder = site / "sometool"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder / name


def _home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    (home / ".config" / "dask").mkdir(parents=True)
    return home


def test_rules(tmp_path: Path) -> None:
    site = tmp_path / "venv" / "lib" / "python3.99" / "site-packages"
    source = _package(site, "sometool.yaml", "sometool:\n  key: 1\n")
    home = _home(tmp_path)
    (home / ".config" / "dask" / "eohpc-sandbox.yaml").write_text("old: 1\n")
    before = homes.home_entries(home)
    dask_dir = home / ".config" / "dask"

    # the tool's own copy, written by dask itself
    dask.config.ensure_file(str(source), str(dask_dir))
    # what the launcher writes into the user's Dask config: checked
    (dask_dir / "eohpc-other.yaml").write_text("jobqueue:\n  slurm:\n    cores: 2\n")
    # a same-named file that is not the package's copy: checked
    (dask_dir / "labextension.yaml").write_text("labextension:\n  factory: {}\n")
    # another program's XDG config folder, and the tools' own state folders: theirs
    (home / ".config" / "matplotlib").mkdir()
    for tool in (".cache", ".ipython", ".jupyter", ".local", ".npm", ".condor"):
        (home / tool / "state").mkdir(parents=True)
    # a batch system's output file in the home: checked
    (home / "slurm-12.out").write_text("CANCELLED\n")
    # run directories: removed, not reported
    run = home / ".eohpc" / "runs" / "abc"
    run.mkdir(parents=True)

    left = homes.home_left_behind(home, before, [tmp_path / "venv"])
    assert left == [
        ".config/dask/eohpc-other.yaml",
        ".config/dask/labextension.yaml",
        "slurm-12.out",
    ]
    assert not run.exists()


def test_a_changed_copy_is_not_the_tools(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    source = _package(venv / "lib" / "python3.99" / "site-packages", "tool.yaml", "a: 1\n")
    home = _home(tmp_path)
    before = homes.home_entries(home)
    dask.config.ensure_file(str(source), str(home / ".config" / "dask"))
    copy = home / ".config" / "dask" / "tool.yaml"
    copy.write_text(copy.read_text() + "b: 2\n")
    assert homes.home_left_behind(home, before, [venv]) == [".config/dask/tool.yaml"]


def test_dask_labextension_first_start_file_is_recognised(tmp_path: Path) -> None:
    labext = pytest.importorskip("dask_labextension")
    source = Path(labext.__file__).parent / "labextension.yaml"
    home = _home(tmp_path)
    before = homes.home_entries(home)
    dask.config.ensure_file(str(source), str(home / ".config" / "dask"))
    # found through this process's own environment, as on a rig whose venv has the package
    assert homes.home_left_behind(home, before) == []


def test_reset_home_keeps_ssh_and_restores_the_skeleton(tmp_path: Path) -> None:
    skel = tmp_path / "skel"
    (skel / ".config").mkdir(parents=True)
    (skel / ".bashrc").write_text("# bashrc\n")
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "authorized_keys").write_text("ssh-ed25519 AAAA rig\n")
    (home / ".config" / "dask").mkdir(parents=True)
    (home / ".config" / "dask" / "labextension.yaml").write_text("# left by a run\n")
    (home / ".bashrc").write_text("changed\n")
    (home / "slurm-1.out").write_text("x\n")
    os.symlink("/nonexistent", home / "dangling")

    homes.reset_home(home, skeleton=skel)

    assert sorted(p.name for p in home.iterdir()) == [".bashrc", ".config", ".ssh"]
    assert (home / ".bashrc").read_text() == "# bashrc\n"
    assert list((home / ".config").iterdir()) == []
    assert (home / ".ssh" / "authorized_keys").read_text() == "ssh-ed25519 AAAA rig\n"
