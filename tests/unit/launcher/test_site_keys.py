"""Site keys of platforms.ini that reach into the profile: worker sizes and the notebook
directory; what dry-run prints about them; and terminal output printed verbatim."""

from __future__ import annotations

from pathlib import Path

import pytest

from eoshared.errors import ConfigError
from launcher import cli
from launcher.config import load_profile, load_site
from launcher.sites.dryrun import REMOTE_PLACEHOLDERS
from launcher.sites.jobscript import dask_config, render
from launcher.sites.local import local_jupyter_args, root_dir

BASE = "[s]\nplatform = generic-slurm\nhost = h\n"


def site_with(tmp_path: Path, extra: str, base: str = BASE):  # type: ignore[no-untyped-def]
    ini = tmp_path / "platforms.ini"
    ini.write_text(base + extra)
    return load_site("s", ini)


def test_worker_keys_set_jobqueue_slurm(tmp_path: Path) -> None:
    site = site_with(
        tmp_path,
        "partition = small\nworker_cores = 8\nworker_memory = 30GiB\nworker_processes = 2\n"
        "worker_queue = big\nworker_walltime = 04:00:00\n",
    )
    slurm = site.profile.dask["jobqueue"]["slurm"]
    assert (slurm["cores"], slurm["memory"], slurm["processes"]) == (8, "30GiB", 2)
    assert (slurm["queue"], slurm["walltime"]) == ("big", "04:00:00")
    # lifetime: walltime minus twice the profile's 5m stagger
    assert slurm["worker-extra-args"] == ["--lifetime", "230m", "--lifetime-stagger", "5m"]
    assert dask_config(site.profile)["jobqueue"]["slurm"]["queue"] == "big"
    assert load_profile("generic-slurm").dask["jobqueue"]["slurm"]["cores"] == 4  # a copy


@pytest.mark.parametrize("memory", ["4GB", "4GiB", "4G", "512 MiB", "1.5TB", "8gib"])
def test_worker_memory_accepted(tmp_path: Path, memory: str) -> None:
    site = site_with(tmp_path, f"worker_memory = {memory}\n")
    assert site.profile.dask["jobqueue"]["slurm"]["memory"] == memory


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("worker_cores = 0\n", "'worker_cores' must be a positive integer"),
        ("worker_cores = four\n", "'worker_cores' must be an integer"),
        ("worker_processes = -1\n", "'worker_processes' must be a positive integer"),
        ("worker_memory = 4096\n", "give a size with a unit"),
        ("worker_memory = lots\n", "give a size with a unit"),
        ("worker_memory = 0GB\n", "give a size with a unit"),
        ("worker_walltime = 1:2:3:4\n", "'worker_walltime' is '1:2:3:4', not a SLURM time"),
        ("worker_walltime = UNLIMITED\n", "need a finite time limit"),
        ("worker_walltime = 00:09:00\n", "leaves workers no lifetime"),
        ("worker_queue = a b\n", "must be one partition name"),
        ("worker_processes = 8\n", "8 processes on 4 cores"),
        ("worker_cores = 1\n", None),  # the profile's 1 process fits
    ],
)
def test_worker_keys_validated(tmp_path: Path, extra: str, message: str | None) -> None:
    if message is None:
        site_with(tmp_path, extra)
        return
    with pytest.raises(ConfigError, match=message) as err:
        site_with(tmp_path, extra)
    assert "platforms.ini [s]" in str(err.value)


def test_worker_keys_need_a_batch_system_platform(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'worker_cores' applies to batch-system platforms only"):
        site_with(tmp_path, "worker_cores = 2\n", base="[s]\nplatform = local\n")


def test_worker_keys_a_batch_system_lacks_are_refused(tmp_path: Path) -> None:
    """HTCondor worker jobs have no queue: worker_queue names the key to remove."""
    base = "[s]\nplatform = generic-htcondor\nhost = h\n"
    with pytest.raises(ConfigError, match="'worker_queue' sets dask-jobqueue's 'queue'"):
        site_with(tmp_path, "worker_queue = short\n", base=base)
    site = site_with(tmp_path, "worker_cores = 2\n", base=base)
    assert site.profile.dask["jobqueue"]["htcondor"]["cores"] == 2


def test_worker_walltime_moves_an_inline_lifetime_flag(tmp_path: Path) -> None:
    """worker_walltime 60 (minutes) with a 2m stagger given as --flag=value: 56m lifetime."""
    profile = tmp_path / "mine.yaml"
    text = load_site("sandbox").profile.path.read_text()
    profile.write_text(text.replace('"--lifetime-stagger", "2m"', '"--lifetime-stagger=2m"'))
    site = site_with(tmp_path, "worker_walltime = 60\n", base="[s]\nplatform = mine\nhost = h\n")
    args = site.profile.dask["jobqueue"]["slurm"]["worker-extra-args"]
    assert args == ["--lifetime", "56m", "--lifetime-stagger=2m"]


@pytest.mark.parametrize(
    ("value", "root", "shell"),
    [
        (None, None, '--ServerApp.root_dir="$HOME"'),
        ("~", "~", '--ServerApp.root_dir="$HOME"'),
        ("work/nb/", "~/work/nb", '--ServerApp.root_dir="$HOME"/work/nb'),
        ("~/my notebooks", "~/my notebooks", "--ServerApp.root_dir=\"$HOME\"/'my notebooks'"),
        ("/scratch/me/", "/scratch/me", "--ServerApp.root_dir=/scratch/me"),
    ],
)
def test_notebook_dir_is_jupyters_root(
    tmp_path: Path, value: str | None, root: str | None, shell: str
) -> None:
    site = site_with(tmp_path, f"notebook_dir = {value}\n" if value else "")
    assert site.profile.jupyter.root_dir == root
    script = render(site, "/home/u/.eohpc/runs/x")
    assert script.rstrip().endswith(shell)


@pytest.mark.parametrize("value", ["$SCRATCH/nb", "~other/nb"])
def test_notebook_dir_refused(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match=r"'notebook_dir'.*absolute path or one under ~"):
        site_with(tmp_path, f"notebook_dir = {value}\n")


def test_local_root_is_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    site = load_site("local")
    assert root_dir(site) == tmp_path
    assert f"--ServerApp.root_dir={tmp_path}" in local_jupyter_args(site)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    ini = tmp_path / "platforms.ini"
    ini.write_text("[local]\nplatform = local\nnotebook_dir = ~/nb\n")
    assert root_dir(load_site("local", ini)) == tmp_path / "home" / "nb"


def test_dry_run_remote_names_what_the_cluster_fills_in(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["--uid", "sandbox", "--mode", "dry-run"]) == 0
    out = capsys.readouterr().out
    assert REMOTE_PLACEHOLDERS in out
    dask_part = out.split("# Dask config", 1)[1]
    assert "log-directory: $HOME/.eohpc/dask-logs" in dask_part
    assert "$HOME in it is filled in on the cluster" in dask_part
    assert "~/" not in dask_part


def test_dry_run_local_resolves_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(["--uid", "local", "--mode", "dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"# notebooks (Jupyter's root directory): {tmp_path}" in out
    assert "$HOME" not in out and "~/" not in out


def test_messages_are_printed_verbatim(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No emoji codes (H:M:S holds ':M:'), no markup from message text."""
    ini = tmp_path / "platforms.ini"
    ini.write_text(BASE + "time = 1:M:S\n")
    assert cli.main(["--config", str(ini), "--uid", "s", "--mode", "dry-run"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "key 'time' is '1:M:S', not a SLURM time. Use M, M:S, H:M:S, D-H" in err
    assert "Ⓜ" not in err
    assert cli.main(["--config", str(ini), "--uid", "x:smile:[bold]y[/bold]", "--mode", "run"]) == 2
    err = capsys.readouterr().err
    assert "error: unknown site 'x:smile:[bold]y[/bold]'" in err
    assert "😄" not in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("mem = 16G\nmem_per_cpu = 4G\n", r"keys 'mem' \(16G\) and 'mem_per_cpu' \(4G\) are both"),
        ("cpus = -4\n", "key 'cpus' is -4; give a whole number of CPUs >= 1"),
        ("cpus = 0\n", "key 'cpus' is 0"),
        ("mem = lots\n", "key 'mem' is 'lots', not a memory size"),
        ("mem_per_cpu = 4 apples\n", "key 'mem_per_cpu' is '4 apples', not a memory size"),
        ("mem = 0\n", "key 'mem' is '0', not a memory size above zero"),
        ("worker_memory = 4000\n", "key 'worker_memory' is '4000'; give a size with a unit"),
        ("worker_memory = 0GiB\n", "key 'worker_memory' is '0GiB'"),
        ("worker_memory = many\n", "key 'worker_memory' is 'many'"),
    ],
)
def test_job_sizes_refused_not_rewritten(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        site_with(tmp_path, extra)


def test_one_memory_key_replaces_the_profiles_other(tmp_path: Path) -> None:
    job = site_with(tmp_path, "mem_per_cpu = 4G\ncpus = 4\n").profile.job
    assert (job.mem, job.mem_per_cpu, job.cpus) == (None, "4G", 4)
    job = site_with(tmp_path, "mem = 16G\n").profile.job
    assert (job.mem, job.mem_per_cpu) == ("16G", None)


def test_profile_job_sizes_are_checked(tmp_path: Path) -> None:
    shipped = Path(load_profile("generic-slurm").path).read_text()
    assert "  cpus: 4\n" in shipped
    (tmp_path / "mine.yaml").write_text(shipped.replace("  cpus: 4\n", "  cpus: -2\n", 1))
    ini = tmp_path / "platforms.ini"
    ini.write_text("[s]\nplatform = mine\nhost = h\n")
    with pytest.raises(ConfigError, match=r"mine.yaml: key 'job.cpus' is -2"):
        load_site("s", ini)


@pytest.mark.parametrize("size", ["4GiB", "4 GiB", "16GB", "512MiB", "1.5TB"])
def test_dask_sizes_with_a_unit_are_taken_as_written(tmp_path: Path, size: str) -> None:
    workers = site_with(tmp_path, f"worker_memory = {size}\n").profile.dask
    assert size in str(workers)
