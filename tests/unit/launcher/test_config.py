"""platforms.ini and profile loading: typed sites, and errors that name file, key and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from eoshared.errors import ConfigError, UnknownSiteError
from launcher.config import load_profile, load_site, shipped_dir

SHIPPED = ["local", "sandbox", "generic-slurm", "spider", "snellius", "delftblue"]


def write(tmp_path: Path, ini: str, profiles: dict[str, str] | None = None) -> Path:
    path = tmp_path / "platforms.ini"
    path.write_text(ini)
    for name, text in (profiles or {}).items():
        (tmp_path / f"{name}.yaml").write_text(text)
    return path


@pytest.mark.parametrize("platform", SHIPPED)
def test_shipped_profiles_validate(platform: str) -> None:
    profile = load_profile(platform, None)
    assert profile.name == platform
    if profile.batch_system == "slurm":
        slurm = profile.dask["jobqueue"]["slurm"]
        assert "--lifetime-stagger" in slurm["worker-extra-args"]
        assert profile.dask["labextension"]["factory"]["class"] == "SLURMCluster"


def test_shipped_ini_has_local_and_sandbox() -> None:
    ini = shipped_dir() / "platforms.ini"
    assert load_site("local", ini).is_local
    sandbox = load_site("sandbox", ini)
    assert sandbox.host and sandbox.user and sandbox.keypath and sandbox.profile.job.partition


def test_delftblue_uses_mem_per_cpu_only() -> None:
    profile = load_profile("delftblue", None)
    assert profile.job.mem is None and profile.job.mem_per_cpu
    slurm = profile.dask["jobqueue"]["slurm"]
    assert "--mem" in slurm["job-directives-skip"]
    assert any(d.startswith("--mem-per-cpu") for d in slurm["job-extra-directives"])


def test_site_keys_and_overrides(tmp_path: Path) -> None:
    ini = write(
        tmp_path,
        "[hpc]\nplatform = generic-slurm\nhost = login\nuser = me\n"
        "keypath = ~/.ssh/k\nport = 2222\nproxy_jump = gw\npartition = gpu\n"
        "account = proj\ntime = 01:00:00\ncpus = 8\nmem_per_cpu = 2G\n",
    )
    site = load_site("hpc", ini)
    assert (site.host, site.user, site.port, site.proxy_jump) == ("login", "me", 2222, "gw")
    assert site.keypath == Path("~/.ssh/k").expanduser()
    job = site.profile.job
    assert (job.partition, job.account, job.time, job.cpus) == ("gpu", "proj", "01:00:00", 8)
    assert job.mem_per_cpu == "2G" and job.mem is None


def test_local_is_built_in_without_ini() -> None:
    assert load_site("local", None).is_local


def test_unknown_site(tmp_path: Path) -> None:
    ini = write(tmp_path, "[spider]\nplatform = spider\nhost = h\n")
    expected = r"did you mean 'spider'.*Known sites: spider, local"
    with pytest.raises(UnknownSiteError, match=expected):
        load_site("spidr", ini)


def test_unknown_ini_key(tmp_path: Path) -> None:
    ini = write(tmp_path, "[s]\nplatform = spider\nhost = h\nkey_path = x\n")
    with pytest.raises(
        ConfigError,
        match=r"platforms.ini \[s\]: unknown key 'key_path' "
        r"\(did you mean 'keypath'\?\)\. Allowed keys: platform, host",
    ):
        load_site("s", ini)


def test_ini_int(tmp_path: Path) -> None:
    ini = write(tmp_path, "[s]\nplatform = spider\nhost = h\nport = twenty\n")
    with pytest.raises(ConfigError, match="'port' must be an integer"):
        load_site("s", ini)


def test_profile_unknown_key_names_file_key_and_allowed(tmp_path: Path) -> None:
    ini = write(
        tmp_path,
        "[s]\nplatform = mine\nhost = h\n",
        {"mine": "batch_system: slurm\njob:\n  partiton: x\n"},
    )
    with pytest.raises(ConfigError) as err:
        load_site("s", ini)
    message = str(err.value)
    assert str(tmp_path / "mine.yaml") in message
    assert "unknown key 'job.partiton'" in message and "did you mean 'partition'" in message
    assert "Allowed: partition, time, cpus" in message


def test_profile_wrong_type(tmp_path: Path) -> None:
    ini = write(tmp_path, "[s]\nplatform = mine\nhost = h\n", {"mine": "job:\n  cpus: four\n"})
    with pytest.raises(ConfigError, match=r"mine.yaml: key 'job.cpus' must be int, got str"):
        load_site("s", ini)


def test_profile_list_type(tmp_path: Path) -> None:
    ini = write(
        tmp_path, "[s]\nplatform = mine\nhost = h\n", {"mine": "environment:\n  modules: python\n"}
    )
    with pytest.raises(ConfigError, match=r"'environment\.modules' must be a list of strings"):
        load_site("s", ini)


def test_profile_bad_jobqueue_key(tmp_path: Path) -> None:
    ini = write(
        tmp_path,
        "[s]\nplatform = mine\nhost = h\n",
        {"mine": "dask:\n  jobqueue:\n    slurm:\n      core: 4\n"},
    )
    with pytest.raises(ConfigError, match=r"'dask.jobqueue.slurm.core' \(did you mean 'cores'"):
        load_site("s", ini)


def test_profile_bad_manager(tmp_path: Path) -> None:
    ini = write(
        tmp_path, "[s]\nplatform = mine\nhost = h\n", {"mine": "environment:\n  manager: pipenv\n"}
    )
    with pytest.raises(ConfigError, match="allowed: venv, conda, mamba, current"):
        load_site("s", ini)
