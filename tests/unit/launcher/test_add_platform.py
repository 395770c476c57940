"""`--add-platform`: answers checked before writing, only the user's file written, atomically;
a refused attempt leaves everything as it was and the retry works. Driven through its
prompts: a stdin pipe (the command as a subprocess, and in-process) and a terminal (pexpect)."""

from __future__ import annotations

import io
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from eoshared.errors import ConfigError, KeyFileError
from launcher import add_platform as ap
from launcher.config import CONFIG_DIR_ENV, load_site, shipped_dir

REPO = Path(__file__).resolve().parents[3]
RUN_JUPYTER = REPO / "run_jupyter.py"
GOOD = ["hpc", "generic-slurm", "localhost", "alice", "", "gpu", ""]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "home"
    (path / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(path))
    return path


def command(user_config: Path, home: Path, answers: list[str], *args: str):  # type: ignore[no-untyped-def]
    env = {
        **os.environ,
        CONFIG_DIR_ENV: str(user_config),
        "HOME": str(home),
        "PYTHONPATH": str(REPO),
    }
    return subprocess.run(
        [sys.executable, str(RUN_JUPYTER), *args, "--add-platform"],
        input="\n".join(answers) + "\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def answer(monkeypatch: pytest.MonkeyPatch, answers: list[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(answers) + "\n"))


def test_pipe_refused_then_retry(user_config: Path, home: Path) -> None:
    """A misspelt profile is refused with nothing written; the same command then works."""
    shipped = (shipped_dir() / "platforms.ini").read_bytes()
    bad = ["hpc", "generic-slurmm", *GOOD[2:]]
    refused = command(user_config, home, bad)
    assert refused.returncode == 2, refused.stderr
    assert "did you mean 'generic-slurm'" in refused.stderr
    assert "Nothing was written" in refused.stderr and "Traceback" not in refused.stderr
    assert not (user_config / "platforms.ini").exists()

    added = command(user_config, home, GOOD)
    assert added.returncode == 0, added.stderr
    ini = user_config / "platforms.ini"
    assert stat.S_IMODE(ini.stat().st_mode) == 0o600
    assert stat.S_IMODE(user_config.stat().st_mode) == 0o700
    site = load_site("hpc")
    assert (site.host, site.user, site.profile.job.partition) == ("localhost", "alice", "gpu")
    assert site.source == ini
    assert (shipped_dir() / "platforms.ini").read_bytes() == shipped

    again = command(user_config, home, GOOD)
    assert again.returncode == 2 and "already in" in again.stderr
    assert ini.read_text().count("[hpc]") == 1


def test_existing_file_kept_and_extended(
    user_config: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_config.mkdir()
    ini = user_config / "platforms.ini"
    old = "# my sites\n[old]\nplatform = generic-slurm\nhost = localhost  ; kept as is\n"
    ini.write_text(old)
    ini.chmod(0o640)
    answer(monkeypatch, ["sandbox", "sandbox", "127.0.0.1", "", "", "", ""])
    assert ap.add_platform(None) == 0
    text = ini.read_text()
    assert text.startswith(old) and "[sandbox]\nplatform = sandbox\nhost = 127.0.0.1\n" in text
    assert stat.S_IMODE(ini.stat().st_mode) == 0o640
    assert load_site("sandbox").source == ini  # the user's section wins over the shipped one
    assert load_site("old").host == "localhost"
    assert list(user_config.iterdir()) == [ini]


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        (["bad name", *GOOD[1:]], "site name 'bad name'"),
        (["[x]", *GOOD[1:]], r"site name '\[x\]'"),
        (["hpc", "", *GOOD[2:]], "needs an answer"),
        (["hpc", "generic-slurm", "no-such-host.invalid", *GOOD[3:]], "does not resolve"),
        (["hpc", "generic-slurm", "localhost", "", "/no/such/key", "", ""], "does not exist"),
        (["hpc", "generic-slurm"], "no answer to 'login node host name"),
    ],
)
def test_refused_answers_write_nothing(
    user_config: Path,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    answers: list[str],
    message: str,
) -> None:
    answer(monkeypatch, answers)
    with pytest.raises(ConfigError, match=message) as err:
        ap.add_platform(None)
    assert "written" in str(err.value) or "needs" in str(err.value)
    assert not user_config.exists()


def test_whole_site_checked_before_writing(
    user_config: Path, tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answers pass one by one, but the site does not load: nothing written."""
    user_config.mkdir()
    (user_config / "broken.yaml").write_text("job:\n  cpus: many\n")
    answer(monkeypatch, ["hpc", "broken", "localhost", "", "", "", ""])
    with pytest.raises(ConfigError, match=r"'job\.cpus' must be int"):
        ap.add_platform(None)
    assert list(user_config.iterdir()) == [user_config / "broken.yaml"]


def test_failed_replace_leaves_the_file(
    user_config: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_config.mkdir()
    ini = user_config / "platforms.ini"
    ini.write_text("[old]\nplatform = local\n")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    answer(monkeypatch, GOOD)
    with pytest.raises(OSError, match="No space"):
        ap.add_platform(None)
    assert ini.read_text() == "[old]\nplatform = local\n"
    assert list(user_config.iterdir()) == [ini]  # no temporary file left


def test_never_writes_the_shipped_file(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    answer(monkeypatch, GOOD)
    with pytest.raises(ConfigError, match="shipped examples' file"):
        ap.add_platform(shipped_dir() / "platforms.ini")


def test_config_option_file_is_written(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ini = tmp_path / "project" / "platforms.ini"
    ini.parent.mkdir()
    ini.write_text("")
    answer(monkeypatch, GOOD)
    assert ap.add_platform(ini) == 0
    assert load_site("hpc", ini).source == ini


def test_host_alias_from_ssh_config(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (home / ".ssh" / "config").write_text(
        "Host hpc\n  HostName login.cluster.example\n"
        "Host behind\n  ProxyJump gw.example\n"
        "Host plain\n  User me\n"
    )

    def no_dns(*_: object) -> None:
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    ap.check_host("hpc")
    ap.check_host("behind")
    with pytest.raises(ConfigError, match="host 'plain' does not resolve"):
        ap.check_host("plain")
    with pytest.raises(ConfigError, match=r"no Host alias in ~/\.ssh/config"):
        ap.check_host("other")


def test_key_file_checked(home: Path) -> None:
    key = home / ".ssh" / "id_test"
    key.write_text("key")
    key.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        ap.check_keypath("~/.ssh/id_test")
    key.chmod(0o600)
    ap.check_keypath("~/.ssh/id_test")


def test_terminal_asks_again(user_config: Path, home: Path) -> None:
    """On a terminal a refused answer is asked again; the section is written once."""
    pexpect = pytest.importorskip("pexpect")
    env = {
        **os.environ,
        CONFIG_DIR_ENV: str(user_config),
        "HOME": str(home),
        "PYTHONPATH": str(REPO),
    }
    child = pexpect.spawn(
        sys.executable, [str(RUN_JUPYTER), "--add-platform"], env=env, encoding="utf-8", timeout=60
    )
    child.expect(r"site name \(--uid\): ")
    child.sendline("hpc")
    child.expect("platform .*: ")
    child.sendline("snelius")
    child.expect("did you mean 'snellius'.*Try again.")
    child.expect("platform .*: ")
    child.sendline("snellius")
    child.expect("login node host name .*: ")
    child.sendline("localhost")
    for _ in range(4):
        child.expect(": ")
        child.sendline("")
    child.expect(r"added \[hpc\]")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert load_site("hpc").platform == "snellius"
