"""Batch mode and session scheduler pieces that need no cluster."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from eoshared.scheduler.contract import STATE_DIR_ENV
from eoshared.scheduler.driver import script_env
from eoshared.scheduler.tls import create_session_tls
from launcher.cli import build_parser, split_script_args
from launcher.config import load_site, shipped_dir
from launcher.jobs.batch import job_exit_code
from launcher.session import state as saved
from launcher.sites.jobscript import render, render_batch

SITE = load_site("sandbox", shipped_dir() / "platforms.ini")


@pytest.mark.parametrize(
    ("code", "expected"),
    [("0:0", 0), ("3:0", 3), ("0:15", 143), ("1:9", 137), ("", None), ("x:0", None)],
)
def test_job_exit_code(code: str, expected: int | None) -> None:
    assert job_exit_code(code) == expected


def test_script_args_follow_the_double_dash() -> None:
    own, rest = split_script_args(["--mode", "batch", "--", "--in", "a b", "--", "x"])
    assert own == ["--mode", "batch"] and rest == ["--in", "a b", "--", "x"]
    assert split_script_args(["--mode", "run"]) == (["--mode", "run"], [])
    args = build_parser().parse_args([*own, "--script", "s.py", "--workers", "3"])
    assert args.mode == "batch" and args.workers == 3 and args.script == Path("s.py")


def test_batch_job_script() -> None:
    script = render_batch(SITE, "/home/u/.eohpc/runs/r1", "my analysis.py", ["a b", "$x"], 2, 300)
    assert "#SBATCH --job-name=eohpc-batch-sandbox" in script
    assert "#SBATCH --output=/home/u/.eohpc/runs/r1/job-%j.out" in script
    assert "#SBATCH --cpus-per-task=1" in script
    assert "source /opt/eo-rig/venv/bin/activate" in script
    assert 'export DASK_CONFIG="$RUN_DIR/dask"' in script
    assert "export EOHPC_BATCH_SYSTEM=slurm" in script
    assert "-m eoshared.scheduler.driver" in script
    assert "--workers 2" in script and "--timeout 300" in script
    assert """-- "$RUN_DIR"/'my analysis.py' 'a b' '$x'""" in script
    syntax = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
    assert syntax.returncode == 0, syntax.stderr


def test_jupyter_job_with_and_without_session_scheduler() -> None:
    plain = render(SITE, "/r")
    assert "--scheduler-max-jobs" not in plain
    assert "--ip 0.0.0.0 -- \\\n    lab" in plain
    with_scheduler = render(SITE, "/r", scheduler_max_jobs=3)
    assert "--ip 0.0.0.0 --scheduler-max-jobs 3 -- \\\n" in with_scheduler
    assert "export EOHPC_SCHEDULER_FILE=/r/scheduler/scheduler.json" in with_scheduler
    assert "export EOHPC_SESSION=sandbox" in with_scheduler
    assert "EOHPC_SCHEDULER_FILE" not in plain
    for script in (plain, with_scheduler):
        syntax = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
        assert syntax.returncode == 0, syntax.stderr


def test_batch_and_interactive_states_do_not_collide(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path))
    session = saved.SessionState("s", "p", "10", "/r", "tok", 8888)
    job = saved.SessionState("s", "p", "11", "/b", "", 0, kind=saved.BATCH)
    saved.save(session)
    saved.save(job)
    assert job.key == "s.batch-11"
    assert saved.load("s") == session
    assert saved.find("s", "11") == job and saved.find("s", "10") == session
    assert saved.find("s", "12") is None
    saved.delete(job.key)
    assert [s.job_id for s in saved.load_all()] == ["10"]
    assert stat.S_IMODE((tmp_path / "s.json").stat().st_mode) == 0o600


def test_batch_driver_environment_makes_a_plain_client_use_tls(tmp_path: Path) -> None:
    """The variables the batch driver exports configure distributed.Client() without arguments."""
    tls = create_session_tls(tmp_path / "tls")
    env = script_env("tls://node:1234", tls, tmp_path)
    for path in (tls.ca_file, tls.cert, tls.key):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    probe = (
        "import dask, distributed; s = distributed.Security(); "
        "print(dask.config.get('scheduler-address'), s.require_encryption, "
        "s.tls_ca_file, s.tls_client_key)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["tls://node:1234", "True", str(tls.ca_file), str(tls.key)]


def test_one_allocation_job_script_sizes_each_node_as_a_worker_job() -> None:
    script = render_batch(SITE, "/home/u/.eohpc/runs/r1", "a.py", [], 1, 300, nodes=3)
    # the sandbox profile's worker job: 1 core, 1 GiB
    for line in (
        "#SBATCH --nodes=3",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --cpus-per-task=1",
        "#SBATCH --mem=1024M",
        "#SBATCH --time=00:30:00",
        '--run-dir "$RUN_DIR" --nodes 3',
    ):
        assert line in script, script
    assert "--workers" not in script and "--ntasks=1" not in script
    syntax = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
    assert syntax.returncode == 0, syntax.stderr


def test_batch_size_rules() -> None:
    import dataclasses

    from eoshared.errors import BatchSystemError, ConfigError, LauncherError
    from launcher.jobs.batch import batch_size
    from launcher.sites.jobscript import batch_job

    assert batch_size(SITE, None, None) == (1, None)
    assert batch_size(SITE, 4, None) == (4, None)
    assert batch_size(SITE, None, 2) == (1, 2)
    with pytest.raises(LauncherError, match="exclude each other"):
        batch_size(SITE, 2, 2)
    whole = dataclasses.replace(SITE, profile=dataclasses.replace(SITE.profile, batch_nodes=4))
    assert batch_size(whole, None, None) == (1, 4)
    assert batch_size(whole, 3, None) == (3, None)  # --workers wins over the site's nodes
    condor = dataclasses.replace(
        SITE, profile=dataclasses.replace(SITE.profile, batch_system="htcondor")
    )
    with pytest.raises(BatchSystemError, match="not supported on HTCondor"):
        batch_size(condor, None, 2)
    unsized = dataclasses.replace(SITE, profile=dataclasses.replace(SITE.profile, dask={}))
    with pytest.raises(ConfigError, match="worker_cores and worker_memory"):
        batch_job(unsized, 2)


def test_batch_nodes_key_of_a_site(tmp_path: Path) -> None:
    from eoshared.errors import ConfigError

    ini = tmp_path / "platforms.ini"
    ini.write_text("[a]\nplatform = sandbox\nhost = h\nbatch_nodes = 2\n[b]\nplatform = sandbox\n"
                   "host = h\nbatch_nodes = 0\n[c]\nplatform = sandbox\nhost = h\n"
                   "batch_nodes = two\n[d]\nplatform = sandbox\nhost = h\n"
                   "batch_mpiexec = 'mpirun\n"
                   "[e]\nplatform = sandbox\nhost = h\nbatch_nodes = 2\n"
                   "batch_mpiexec = mpirun --bind-to none\n")  # fmt: skip
    assert load_site("a", ini).profile.batch_nodes == 2
    with pytest.raises(ConfigError, match="'batch_mpiexec' is \"'mpirun\", not a command line"):
        load_site("d", ini)
    mpi = load_site("e", ini)
    script = render_batch(mpi, "/r", "a.py", [], 1, 60, nodes=2)
    assert "--nodes 2 --mpiexec 'mpirun --bind-to none'" in script
    with pytest.raises(ConfigError, match="'batch_nodes' is 0"):
        load_site("b", ini)
    with pytest.raises(ConfigError, match="'batch_nodes' must be an integer"):
        load_site("c", ini)


@pytest.mark.parametrize("system", ["slurm", "pbs"])
def test_worker_command_on_each_node(system: str, tmp_path: Path) -> None:
    from eoshared.batchsystem import batch_system_class
    from eoshared.scheduler.allocation import NodeWorkers, worker_command

    tls = create_session_tls(tmp_path / "tls")
    sizes = NodeWorkers(processes=2, threads=4, memory="8.00GiB", local_directory="/scratch")
    command = worker_command("tls://n1:1", tls, sizes, tmp_path / "workers")
    assert command[:3] == [sys.executable, "-m", "eoshared.scheduler.allocation"]
    text = " ".join(command)
    parts = ["--nworkers 2", "--nthreads 4", "--memory-limit 8.00GiB", "tls://n1:1"]
    parts += [f"--tls-key {tls.key}", "--local-directory /scratch", "--no-dashboard"]
    for part in parts:
        assert part in text, text
    env = {"SLURM_JOB_NUM_NODES": "3", "SLURM_CPUS_PER_TASK": "8"}
    launch = batch_system_class(system)().on_each_node(command, env)
    assert launch[-len(command) :] == command
    if system == "slurm":
        assert launch[:5] == ["srun", "--nodes=3", "--ntasks-per-node=1", "--cpus-per-task=8",
                              "--kill-on-bad-exit=0"]  # fmt: skip
    else:
        assert launch[:2] == ["pbsdsh", "--"]


def test_node_worker_output_goes_to_a_private_file(tmp_path: Path) -> None:
    """What each node runs keeps dask worker's output out of the job's (``--version`` here)."""
    import distributed

    logs = tmp_path / "workers"
    logs.mkdir()
    command = [sys.executable, "-m", "eoshared.scheduler.allocation", "--log-dir", str(logs)]
    result = subprocess.run([*command, "--", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout == "" and result.stderr == ""
    (log,) = logs.glob("*.log")
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert distributed.__version__ in log.read_text()


def test_dask_mpi_ranks_get_tls_from_their_config(tmp_path: Path) -> None:
    """Each rank: one worker of the node's threads and memory, the driver's scheduler, its TLS
    files passed to the wrapper (dask-mpi has no TLS options), which puts them in the config."""
    import json

    from eoshared.scheduler.allocation import NodeWorkers, dask_mpi_command

    tls = create_session_tls(tmp_path / "tls")
    sizes = NodeWorkers(processes=1, threads=8, memory="17179869184")
    command = dask_mpi_command("tls://n1:1", tls, sizes, tmp_path / "workers")
    split = command.index("--")
    wrapper, ranks = command[:split], command[split + 1 :]
    assert "--dask-mpi" in wrapper and str(tls.key) in wrapper
    assert ranks[:2] == ["tls://n1:1", "--no-scheduler"]
    assert ranks[ranks.index("--nthreads") + 1] == "8"
    options = json.loads(ranks[ranks.index("--worker-options") + 1])
    assert options["preload"] == ["eoshared.scheduler.tls_errors"]
    assert str(tls.key) not in " ".join(ranks)
