"""The rendered batch script and configs."""

from __future__ import annotations

from pathlib import Path

from eoshared.batchsystem import Slurm
from launcher.config import load_profile, load_site, shipped_dir
from launcher.connection.readiness import new_token
from launcher.sites.jobscript import dask_config, jupyter_config, render


def test_sandbox_script() -> None:
    site = load_site("sandbox", shipped_dir() / "platforms.ini")
    script = render(site, "/home/u/.eohpc/runs/r1")
    assert script.startswith("#!/bin/bash\n#SBATCH --job-name=eohpc-jupyter-sandbox\n")
    assert "#SBATCH --output=/home/u/.eohpc/runs/r1/job-%j.out" in script
    assert "#SBATCH --partition=work" in script
    assert "source /opt/eo-rig/venv/bin/activate" in script
    assert 'export DASK_CONFIG="$RUN_DIR/dask"' in script
    assert "token" not in script.lower()


def test_delftblue_directives_have_no_mem() -> None:
    profile = load_profile("delftblue", None)
    lines = Slurm().directives(profile.job, "j", "out")
    assert "#SBATCH --mem-per-cpu=4G" in lines
    assert not any(line.startswith("#SBATCH --mem=") for line in lines)


def test_snellius_modules_before_activation(tmp_path: Path) -> None:
    ini = tmp_path / "platforms.ini"
    ini.write_text("[snellius]\nplatform = snellius\nhost = login\n")
    site = load_site("snellius", ini)
    script = render(site, "/r")
    assert script.index("module load 2023") < script.index('source "$HOME"/')


def test_dask_config_inherits_queue_and_expands_home() -> None:
    profile = load_profile("spider", None)
    config = dask_config(profile, home="/home/u")
    slurm = config["jobqueue"]["slurm"]
    assert slurm["queue"] == "normal"
    assert slurm["log-directory"] == "/home/u/.eohpc/dask-logs"


def test_token_config() -> None:
    token = new_token()
    assert len(token) >= 43
    assert jupyter_config(token)["IdentityProvider"]["token"] == token
