"""Validation of a profile's Dask section, SLURM time parsing and the dashboard hint."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from eoshared.batchsystem.units import parse_duration, parse_slurm_time
from eoshared.errors import ConfigError
from launcher.config import load_profile, load_site, shipped_dir
from launcher.jobs.dashboard import dashboard_hint, dashboard_port
from launcher.sites.jobscript import render

SLURM_PLATFORMS = ["sandbox", "generic-slurm", "spider", "snellius", "delftblue"]


def base_slurm() -> dict[str, object]:
    return {
        "cores": 4,
        "memory": "16GiB",
        "walltime": "02:00:00",
        "local-directory": "$TMPDIR",
        "log-directory": "~/.eohpc/dask-logs",
        "worker-extra-args": lifetime("110m", "5m"),
    }


def lifetime(life: str, stagger: str) -> list[str]:
    return ["--lifetime", life, "--lifetime-stagger", stagger]


def load(tmp_path: Path, slurm: dict[str, object], **top: object) -> Path:
    """Write profile `mine` with this jobqueue.slurm section; return the profile's path."""
    data: dict[str, object] = {"batch_system": "slurm", **top}
    data.setdefault("dask", {})
    data["dask"]["jobqueue"] = {"slurm": slurm}  # type: ignore[index]
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(data))
    (tmp_path / "platforms.ini").write_text("[s]\nplatform = mine\nhost = h\n")
    load_profile("mine", tmp_path / "platforms.ini")
    return path


def error(tmp_path: Path, slurm: dict[str, object], **top: object) -> str:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, slurm, **top)
    message = str(err.value)
    assert message.startswith(str(tmp_path / "mine.yaml") + ":"), message
    return message


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30", 1800),
        ("30:15", 1815),
        ("02:00:00", 7200),
        ("1-0", 86400),
        ("1-2", 93600),
        ("1-02:30", 95400),
        ("2-00:00:10", 172810),
    ],
)
def test_slurm_time_formats(text: str, seconds: int) -> None:
    assert parse_slurm_time(text) == seconds


@pytest.mark.parametrize("text", ["INFINITE", "unlimited"])
def test_slurm_time_unlimited(text: str) -> None:
    assert parse_slurm_time(text) is None


@pytest.mark.parametrize("text", ["", "2h", "1:2:3:4", "1-2:3:4:5", "-5", "a:b"])
def test_slurm_time_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_slurm_time(text)


def test_durations() -> None:
    assert parse_duration("110m") == 6600
    assert parse_duration("2h") == 7200
    assert parse_duration("90 s") == 90
    assert parse_duration("300") == 300
    with pytest.raises(ValueError):
        parse_duration("soon")


@pytest.mark.parametrize("platform", SLURM_PLATFORMS)
def test_shipped_slurm_profiles_retire_workers_before_walltime(platform: str) -> None:
    slurm = load_profile(platform, None).dask["jobqueue"]["slurm"]
    args = slurm["worker-extra-args"]
    lifetime = parse_duration(args[args.index("--lifetime") + 1])
    stagger = parse_duration(args[args.index("--lifetime-stagger") + 1])
    walltime = parse_slurm_time(slurm["walltime"])
    assert walltime is not None and lifetime + stagger < walltime
    assert slurm["local-directory"] and slurm["log-directory"]
    assert slurm["scheduler-options"]["dashboard_address"].startswith("127.0.0.1:")


def test_valid_profile_loads(tmp_path: Path) -> None:
    load(tmp_path, base_slurm())
    load(tmp_path, {**base_slurm(), "walltime": "INFINITE"})
    load(
        tmp_path, {**base_slurm(), "worker-extra-args": ["--lifetime=1h", "--lifetime-stagger=4m"]}
    )


def test_lifetime_plus_stagger_must_be_shorter_than_walltime(tmp_path: Path) -> None:
    slurm = {
        **base_slurm(),
        "worker-extra-args": ["--lifetime", "115m", "--lifetime-stagger", "5m"],
    }
    message = error(tmp_path, slurm)
    assert "'dask.jobqueue.slurm.worker-extra-args'" in message
    assert "--lifetime (1:55:00) plus --lifetime-stagger (0:05:00)" in message
    assert "walltime (2:00:00)" in message and "Shorten --lifetime" in message


def test_lifetime_and_stagger_required(tmp_path: Path) -> None:
    message = error(tmp_path, {**base_slurm(), "worker-extra-args": []})
    assert "has no '--lifetime'" in message and '"--lifetime", "110m"' in message
    message = error(tmp_path, {**base_slurm(), "worker-extra-args": ["--lifetime", "1h"]})
    assert "has no '--lifetime-stagger'" in message


def test_bad_durations_and_walltime(tmp_path: Path) -> None:
    slurm = {
        **base_slurm(),
        "worker-extra-args": ["--lifetime", "soon", "--lifetime-stagger", "1m"],
    }
    assert "--lifetime 'soon' is not a duration" in error(tmp_path, slurm)
    message = error(tmp_path, {**base_slurm(), "walltime": "2 hours"})
    assert "'dask.jobqueue.slurm.walltime' is '2 hours', not a SLURM time" in message
    slurm = base_slurm()
    del slurm["walltime"]
    assert "missing key 'dask.jobqueue.slurm.walltime'" in error(tmp_path, slurm)


def test_job_time_is_a_slurm_time(tmp_path: Path) -> None:
    message = error(tmp_path, base_slurm(), job={"time": "4h"})
    assert "key 'job.time' is '4h', not a SLURM time" in message


@pytest.mark.parametrize("key", ["local-directory", "log-directory"])
def test_directories_required(tmp_path: Path, key: str) -> None:
    slurm = base_slurm()
    del slurm[key]
    assert f"missing key 'dask.jobqueue.slurm.{key}'" in error(tmp_path, slurm)


def test_jobqueue_section_required(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text("batch_system: slurm\n")
    (tmp_path / "platforms.ini").write_text("[s]\nplatform = mine\nhost = h\n")
    with pytest.raises(ConfigError, match=r"mine.yaml: missing key 'dask.jobqueue.slurm'"):
        load_profile("mine", tmp_path / "platforms.ini")


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"interface": "lo"}, "interface"),
        ({"scheduler-options": {"interface": "lo"}}, "scheduler-options.interface"),
        ({"scheduler-options": {"host": "127.0.0.1"}}, "scheduler-options.host"),
        ({"scheduler-options": {"host": "localhost"}}, "scheduler-options.host"),
    ],
)
def test_scheduler_must_not_listen_on_loopback(
    tmp_path: Path, extra: dict[str, object], key: str
) -> None:
    message = error(tmp_path, {**base_slurm(), **extra})
    assert f"'dask.jobqueue.slurm.{key}'" in message and "loopback" in message


def test_reachable_interfaces_load(tmp_path: Path) -> None:
    load(tmp_path, {**base_slurm(), "interface": "ib0"})
    load(tmp_path, {**base_slurm(), "scheduler-options": {"interface": "ib0"}})


def test_mem_per_cpu_sites_skip_mem_for_workers(tmp_path: Path) -> None:
    message = error(tmp_path, base_slurm(), job={"mem_per_cpu": "4G"})
    assert "Add '--mem' to 'dask.jobqueue.slurm.job-directives-skip'" in message
    assert "'--mem-per-cpu=4G'" in message
    skip_only = {**base_slurm(), "job-directives-skip": ["--mem"]}
    message = error(tmp_path, skip_only, job={"mem_per_cpu": "4G"})
    assert "worker jobs get the site's default memory" in message
    fixed = {**skip_only, "job-extra-directives": ["--mem-per-cpu=4G"]}
    load(tmp_path, fixed, job={"mem_per_cpu": "4G"})


def test_panel_factory_and_adapt(tmp_path: Path) -> None:
    local = {"labextension": {"factory": {"module": "distributed", "class": "LocalCluster"}}}
    assert "would run workers inside the Jupyter job" in error(tmp_path, base_slurm(), dask=local)
    unbounded = {"labextension": {"default": {"adapt": {"minimum": 0}}}}
    message = error(tmp_path, base_slurm(), dask=unbounded)
    assert "'dask.labextension.default.adapt' needs an integer 'maximum'" in message
    bounded = {"labextension": {"default": {"adapt": {"minimum": 0, "maximum": 4}}}}
    load(tmp_path, base_slurm(), dask=bounded)


def test_site_dask_interface(tmp_path: Path) -> None:
    ini = tmp_path / "platforms.ini"
    ini.write_text("[a]\nplatform = sandbox\nhost = h\ndask_interface = eorig-c0\n")
    site = load_site("a", ini)
    assert site.profile.dask["jobqueue"]["slurm"]["interface"] == "eorig-c0"
    assert "interface" not in load_profile("sandbox", None).dask["jobqueue"]["slurm"]
    ini.write_text("[a]\nplatform = sandbox\nhost = h\ndask_interface = lo\n")
    with pytest.raises(ConfigError, match=r"platforms.ini \[a\]: key 'dask_interface' is 'lo'"):
        load_site("a", ini)
    ini.write_text("[a]\nplatform = sandbox\nhost = h\ntime = 2h\n")
    with pytest.raises(ConfigError, match=r"\[a\]: key 'time' is '2h', not a SLURM time"):
        load_site("a", ini)


def test_shipped_sandbox_site_uses_the_compute_interface() -> None:
    site = load_site("sandbox", shipped_dir() / "platforms.ini")
    assert site.profile.dask["jobqueue"]["slurm"]["interface"] == "eorig-c0"


def test_job_links_dashboards_through_jupyter_proxy() -> None:
    site = load_site("sandbox", shipped_dir() / "platforms.ini")
    script = render(site, "/r")
    assert 'export JUPYTERHUB_SERVICE_PREFIX="${JUPYTERHUB_SERVICE_PREFIX:-/}"' in script
    line = (
        "export DASK_DISTRIBUTED__DASHBOARD__LINK='{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/status'"
    )
    assert line in script
    template = line.split("=", 1)[1].strip("'")
    assert template.format(JUPYTERHUB_SERVICE_PREFIX="/", port=8787) == "/proxy/8787/status"


def test_dashboard_hint(tmp_path: Path) -> None:
    profile = load_profile("sandbox", None)
    assert dashboard_port(profile) == 8787
    assert "http://127.0.0.1:9999/proxy/8787/status" in dashboard_hint(profile, 9999)
    load(tmp_path, {**base_slurm(), "scheduler-options": {"dashboard_address": "127.0.0.1:0"}})
    free = load_profile("mine", tmp_path / "platforms.ini")
    assert dashboard_port(free) is None
    assert "Dask panel" in dashboard_hint(free, 9999)
    assert dashboard_port(load_profile("local", None)) == 8787


def write_profile(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["generic-pbs", "generic-htcondor", "derecho"])
def test_pbs_and_htcondor_profiles_load(name: str) -> None:
    from launcher.config import load_profile

    profile = load_profile(name, None)
    assert profile.batch_system in ("pbs", "htcondor")


def test_wrong_systems_section_is_rejected_by_name(tmp_path: Path) -> None:
    from launcher.config import load_profile

    ini = tmp_path / "platforms.ini"
    ini.write_text("")
    write_profile(
        tmp_path,
        "mine",
        "batch_system: pbs\ndask:\n  jobqueue:\n    slurm: {cores: 1}\n",
    )
    with pytest.raises(ConfigError, match=r"'dask.jobqueue.slurm' is for SLURM profiles"):
        load_profile("mine", ini)


def test_foreign_key_is_named(tmp_path: Path) -> None:
    from launcher.config import jobqueue_keys, load_profile

    if not jobqueue_keys("pbs"):
        pytest.skip("dask-jobqueue is not installed")
    ini = tmp_path / "platforms.ini"
    ini.write_text("")
    write_profile(
        tmp_path,
        "mine",
        "batch_system: pbs\ndask:\n  jobqueue:\n    pbs: {cores: 1, job-mem: 4G}\n",
    )
    with pytest.raises(ConfigError, match=r"'dask.jobqueue.pbs.job-mem' \(a SLURM key"):
        load_profile("mine", ini)


def test_htcondor_needs_disk(tmp_path: Path) -> None:
    from launcher.config import load_profile

    ini = tmp_path / "platforms.ini"
    ini.write_text("")
    write_profile(
        tmp_path,
        "mine",
        "batch_system: htcondor\ndask:\n  jobqueue:\n    htcondor:\n      cores: 1\n"
        "      memory: 1GiB\n      local-directory: /tmp\n      log-directory: ~/logs\n",
    )
    with pytest.raises(ConfigError, match=r"missing key 'dask.jobqueue.htcondor.disk'"):
        load_profile("mine", ini)
