"""Where sites and profiles come from (shipped package data, the user's config directory,
--config), which wins, what `--mode sites` reports, and the package layout behind it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from eoshared.errors import ConfigError, UnknownSiteError
from launcher import cli
from launcher.config import (
    EXPLICIT,
    SHIPPED,
    USER,
    ConfigSources,
    find_config,
    find_profile,
    load_site,
    read_sections,
    shipped_dir,
    site_names,
    site_records,
)

REPO = Path(__file__).resolve().parents[3]
SHIPPED_PROFILES = [
    "delftblue",
    "derecho",
    "generic-htcondor",
    "generic-pbs",
    "generic-slurm",
    "local",
    "sandbox",
    "sandbox-htcondor",
    "sandbox-pbs",
    "snellius",
    "spider",
]


def test_shipped_dir_holds_profiles_and_examples() -> None:
    names = sorted(p.stem for p in shipped_dir().glob("*.yaml"))
    assert names == SHIPPED_PROFILES
    assert (shipped_dir() / "platforms.ini").is_file()


def test_no_user_file_gives_the_shipped_examples(user_config: Path) -> None:
    assert not user_config.exists()
    assert site_names(None) == ["local", "sandbox"]
    sandbox = load_site("sandbox")
    assert sandbox.source == shipped_dir() / "platforms.ini"
    assert sandbox.profile.path == shipped_dir() / "sandbox.yaml"


def test_user_file_is_read_and_wins_by_name(user_config: Path) -> None:
    user_config.mkdir()
    ini = user_config / "platforms.ini"
    ini.write_text(
        "[hpc]\nplatform = generic-slurm\nhost = login\n"
        "[sandbox]\nplatform = generic-slurm\nhost = mine\n"
    )
    assert site_names(None) == ["hpc", "sandbox", "local"]
    sandbox = load_site("sandbox")
    assert (sandbox.platform, sandbox.host, sandbox.source) == ("generic-slurm", "mine", ini)
    assert load_site("hpc").source == ini
    assert load_site("local").source == shipped_dir() / "platforms.ini"


def test_config_option_replaces_the_user_file(user_config: Path, tmp_path: Path) -> None:
    user_config.mkdir()
    (user_config / "platforms.ini").write_text("[a]\nplatform = generic-slurm\nhost = h\n")
    explicit = tmp_path / "elsewhere" / "platforms.ini"
    explicit.parent.mkdir()
    explicit.write_text("[b]\nplatform = generic-slurm\nhost = h\n")
    sources = find_config(explicit)
    assert site_names(sources) == ["b", "local", "sandbox"]
    with pytest.raises(UnknownSiteError, match=r"unknown site 'a'.*Known sites: b, local"):
        load_site("a", sources)
    assert [f.origin for f in sources.files()] == [SHIPPED, EXPLICIT]


def test_missing_config_option_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        find_config(tmp_path / "nope.ini")


def test_user_profile_overrides_shipped_and_config_dir_overrides_user(
    user_config: Path, tmp_path: Path
) -> None:
    user_config.mkdir()
    shipped_text = (shipped_dir() / "generic-slurm.yaml").read_text()
    (user_config / "generic-slurm.yaml").write_text(shipped_text.replace("cpus: 4", "cpus: 6"))
    (user_config / "mine.yaml").write_text(shipped_text)
    assert find_profile("generic-slurm", None) == (user_config / "generic-slurm.yaml", USER)
    assert find_profile("spider", None) == (shipped_dir() / "spider.yaml", SHIPPED)
    assert find_profile("mine", None)[1] == USER
    site = load_site("x", _ini(user_config, "[x]\nplatform = generic-slurm\nhost = h\n"))
    assert site.profile.job.cpus == 6

    explicit_dir = tmp_path / "project"
    explicit_dir.mkdir()
    (explicit_dir / "generic-slurm.yaml").write_text(shipped_text.replace("cpus: 4", "cpus: 2"))
    ini = _ini(explicit_dir, "[x]\nplatform = generic-slurm\nhost = h\n")
    assert find_profile("generic-slurm", ini)[1] == EXPLICIT
    assert load_site("x", ini).profile.job.cpus == 2
    assert find_profile("mine", ini)[1] == USER  # the user's profiles are still found


def test_shipped_file_as_config_keeps_user_profiles_first(user_config: Path) -> None:
    user_config.mkdir()
    text = (
        (shipped_dir() / "sandbox.yaml")
        .read_text()
        .replace('"00:30:00"\n  cpus', '"00:20:00"\n  cpus')
    )
    (user_config / "sandbox.yaml").write_text(text)
    sources = ConfigSources(shipped_dir() / "platforms.ini")
    assert [f.origin for f in sources.files()] == [SHIPPED]
    assert [origin for _, origin in sources.profile_dirs()] == [USER, SHIPPED]
    assert load_site("sandbox", sources).profile.job.time == "00:20:00"


def test_read_sections_order_and_origin(user_config: Path) -> None:
    ini = _ini(user_config, "[zeta]\nplatform = local\n[local]\nplatform = local\n")
    sections = read_sections(None)
    assert list(sections) == ["zeta", "local", "sandbox"]
    assert sections["local"][1].path == ini and sections["sandbox"][1].origin == SHIPPED


def test_site_records(user_config: Path) -> None:
    ini = _ini(
        user_config,
        "[sandbox]\nplatform = generic-slurm\nhost = h\n[broken]\nplatform = nosuch\nhost = h\n",
    )
    records = {r["uid"]: r for r in site_records(None)}
    assert set(records) == {"sandbox", "broken", "local"}
    assert records["sandbox"]["origin"] == USER and records["sandbox"]["file"] == str(ini)
    assert records["sandbox"]["overrides_shipped"]
    assert records["sandbox"]["profile"] == str(shipped_dir() / "generic-slurm.yaml")
    assert records["local"]["origin"] == SHIPPED and not records["local"]["overrides_shipped"]
    assert (
        records["broken"]["profile"] is None
        and "no profile 'nosuch.yaml'" in records["broken"]["error"]
    )


def test_mode_sites(user_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ini = _ini(user_config, "[hpc]\nplatform = generic-slurm\nhost = h\n")
    assert cli.main(["--mode", "sites", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [(r["uid"], r["origin"]) for r in records] == [
        ("hpc", USER),
        ("local", SHIPPED),
        ("sandbox", SHIPPED),
    ]
    assert cli.main(["--mode", "sites"]) == 0
    out = capsys.readouterr().out
    assert f"hpc      generic-slurm  site     yours     {ini}" in out
    assert f"profile  shipped   {shipped_dir() / 'generic-slurm.yaml'}" in out
    assert f"profile  shipped   {shipped_dir() / 'local.yaml'}" in out
    assert str(user_config) in out


def test_mode_sites_lists_the_profiles(
    user_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _ini(user_config, "[hpc]\nplatform = mine\nhost = h\n")
    (user_config / "mine.yaml").write_text("batch_system: pbs\n")
    (user_config / "pipeline.yaml").write_text("stage_in: {}\nprocess: {}\n")  # not a profile
    (user_config / "notes.yaml").write_text("- a list\n")
    (user_config / "snellius.yaml").write_text("scheduler: slurm\n")  # the older key
    assert cli.main(["--mode", "sites"]) == 0
    out = capsys.readouterr().out
    listed = out.split("profiles (", 1)[1].split("\n\n", 1)[0]
    assert f"mine              PBS       yours     {user_config / 'mine.yaml'}" in listed
    # a profile of yours replaces the shipped one of the same name
    assert f"snellius          SLURM     yours     {user_config / 'snellius.yaml'}" in listed
    assert str(shipped_dir() / "snellius.yaml") not in listed
    assert f"generic-htcondor  HTCondor  shipped   {shipped_dir()}" in listed
    assert "pipeline" not in listed and "notes" not in listed


def test_help_states_the_lookup_rule(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "merged with the shipped example sites (local, sandbox)" in out
    assert "wins over a shipped one of the same name" in out
    assert "sites" in out


def test_pyproject_lists_every_package() -> None:
    """Packages are listed explicitly (launcher.platforms is mapped from config/platforms):
    a new subpackage on disk must be in the list, or the wheel would lack it."""
    if sys.version_info < (3, 11):
        pytest.skip("tomllib")
    import tomllib

    setup = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {
        ".".join(p.parent.relative_to(REPO).parts)
        for top in ("launcher", "eoshared", "eotoolkit")
        for p in (REPO / top).rglob("__init__.py")
    }
    assert set(setup["packages"]) == on_disk | {"launcher.platforms"}
    assert setup["package-dir"] == {"launcher.platforms": "config/platforms"}
    assert (REPO / "config" / "platforms" / "__init__.py").is_file()


def _ini(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "platforms.ini"
    path.write_text(text)
    return path


def test_readme_example_section_loads(tmp_path: Path) -> None:
    """The README's platforms.ini example, inline `; comments` included."""
    readme = (REPO / "README.md").read_text()
    block = readme.split("```ini\n", 1)[1].split("```", 1)[0]
    ini = tmp_path / "platforms.ini"
    ini.write_text("\n".join(line.strip() for line in block.splitlines()))
    site = load_site("snellius", ini)
    assert (site.platform, site.host, site.user) == ("snellius", "snellius.surf.nl", "jdoe")
