"""How the launcher loads keys and picks what to offer, with real keys made by ssh-keygen, a real
ssh-agent and a real pseudo-terminal (pexpect)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import paramiko
import pexpect
import pytest

from eoshared.errors import KeyFileError
from launcher.connection.auth import (
    AgentKeySource,
    Credentials,
    Destination,
    KeyFile,
    KeyFileSource,
    check_key_file,
    is_encrypted,
    key_files,
    load_key,
)
from tests.sshkeys import (
    KEY_KINDS,
    PASSPHRASE,
    agent_fingerprints,
    fingerprint,
    keygen,
    ssh_add,
    ssh_agent,
)

REPO = Path(__file__).resolve().parents[3]
KINDS = list(KEY_KINDS)


def python_env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    env.pop("SSH_AUTH_SOCK", None)
    return env


def load_without_terminal(key: Path) -> subprocess.CompletedProcess[str]:
    """load_key in a process whose stdin is not a terminal; prints the error's one line."""
    snippet = (
        "import sys\nfrom pathlib import Path\nfrom eoshared.errors import KeyFileError\n"
        "from launcher.connection.auth import load_key\n"
        f"try:\n    load_key(Path({str(key)!r}))\nexcept KeyFileError as exc:\n"
        "    print(exc)\n    sys.exit(3)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", snippet],
        env=python_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def on_terminal(snippet: str) -> pexpect.spawn:
    """Run a Python snippet on a pseudo-terminal."""
    return pexpect.spawn(
        sys.executable,
        ["-c", snippet],
        env=python_env(),
        encoding="utf-8",
        timeout=30,
        dimensions=(40, 250),
    )


@pytest.mark.parametrize("name", ["id_ed25519.pub", "id_ed25519-cert.pub"])
def test_public_key_keypath_names_the_private_key(tmp_path: Path, name: str) -> None:
    key = keygen(tmp_path / "id_ed25519")
    public = tmp_path / name
    if not public.exists():
        public.write_text((tmp_path / "id_ed25519.pub").read_text())
    public.chmod(0o644)  # as ssh-keygen leaves it: no "chmod 600" advice for a public key
    with pytest.raises(KeyFileError) as raised:
        load_key(public)
    assert str(raised.value) == (
        f"{public} is a public key; point keypath at the private key {key}"
    )


def test_public_key_content_under_another_name(tmp_path: Path) -> None:
    keygen(tmp_path / "k")
    odd = tmp_path / "mykey"
    odd.write_text((tmp_path / "k.pub").read_text())
    odd.chmod(0o600)
    with pytest.raises(KeyFileError, match=r"mykey is a public key; point keypath at its private"):
        check_key_file(odd)


@pytest.mark.parametrize("kind", KINDS)
def test_encryption_is_recognised(tmp_path: Path, kind: str) -> None:
    plain = keygen(tmp_path / "plain", kind)
    locked = keygen(tmp_path / "locked", kind, PASSPHRASE)
    assert not is_encrypted(plain.read_bytes())
    assert is_encrypted(locked.read_bytes())
    assert load_key(plain).fingerprint == fingerprint(plain)


@pytest.mark.parametrize("kind", KINDS)
def test_passphrase_key_without_terminal_is_one_line(tmp_path: Path, kind: str) -> None:
    key = keygen(tmp_path / "id_locked", kind, PASSPHRASE)
    result = load_without_terminal(key)
    assert result.returncode == 3, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    assert f"key file {key} is protected by a passphrase" in lines[0]
    assert f"ssh-add {key}" in lines[0] and "run from a terminal" in lines[0]


@pytest.mark.parametrize("kind", KINDS)
def test_wrong_passphrase_is_one_line(tmp_path: Path, kind: str) -> None:
    key = keygen(tmp_path / "id_locked", kind, PASSPHRASE)
    with pytest.raises(KeyFileError) as raised:
        load_key(key, "not the passphrase")
    assert str(raised.value) == f"wrong passphrase for key file {key}."
    assert load_key(key, PASSPHRASE).fingerprint == fingerprint(key)


@pytest.mark.parametrize("kind", KINDS)
def test_passphrase_is_asked_once_on_a_terminal(tmp_path: Path, kind: str) -> None:
    """Asked on the terminal without echo; a second use (a reconnect) reuses the key in memory."""
    key = keygen(tmp_path / "id_locked", kind, PASSPHRASE)
    child = on_terminal(
        "from pathlib import Path\nfrom launcher.connection.auth import Credentials\n"
        f"c = Credentials('site')\nkey = Path({str(key)!r})\n"
        "print('first', c.key(key).fingerprint)\nprint('second', c.key(key).fingerprint)\n"
    )
    child.expect_exact(f"Enter passphrase for key '{key}': ")
    child.sendline(PASSPHRASE)
    child.expect(r"first (\S+)\r\n")
    assert child.match.group(1) == fingerprint(key)
    child.expect(r"second (\S+)\r\n")
    assert child.match.group(1) == fingerprint(key)
    assert PASSPHRASE not in child.before  # not echoed
    child.expect(pexpect.EOF)
    assert "passphrase" not in child.before
    child.wait()
    assert child.exitstatus == 0


def test_wrong_passphrase_on_a_terminal_is_one_line(tmp_path: Path) -> None:
    key = keygen(tmp_path / "id_locked", "ed25519-openssh", PASSPHRASE)
    child = on_terminal(
        "from pathlib import Path\nfrom eoshared.errors import KeyFileError\n"
        "from launcher.connection.auth import load_key\n"
        f"try:\n    load_key(Path({str(key)!r}))\nexcept KeyFileError as exc:\n    print(exc)\n"
    )
    child.expect_exact(f"Enter passphrase for key '{key}': ")
    child.sendline("wrong")
    child.expect(pexpect.EOF)
    assert child.before.strip().splitlines() == [f"wrong passphrase for key file {key}."]


def test_agent_keys_first_the_key_files_own_agent_key_before_others(tmp_path: Path) -> None:
    """With the key file's key in the agent, the file itself is not offered (no passphrase is
    asked); with IdentitiesOnly only that agent key is."""
    other = keygen(tmp_path / "id_other", "ed25519-openssh", PASSPHRASE)
    mine = keygen(tmp_path / "id_mine", "rsa-pem", PASSPHRASE)
    plain = keygen(tmp_path / "id_plain")
    with ssh_agent(tmp_path / "agent.sock") as agent_env:
        ssh_add(agent_env, other, PASSPHRASE, tmp_path)
        ssh_add(agent_env, mine, PASSPHRASE, tmp_path)
        assert agent_fingerprints(agent_env) == [fingerprint(other), fingerprint(mine)]
        old = os.environ.get("SSH_AUTH_SOCK")
        os.environ["SSH_AUTH_SOCK"] = agent_env["SSH_AUTH_SOCK"]
        try:
            credentials = Credentials("site")
            where = Destination("alice", "login.example", 22)
            config = paramiko.SSHConfigDict()

            strategy = credentials.strategy(where, config, mine)
            sources = list(strategy.get_sources())
            assert [type(s) for s in sources] == [AgentKeySource, AgentKeySource]
            assert [s.pkey.fingerprint for s in sources] == [fingerprint(mine), fingerprint(other)]
            assert credentials.loaded(mine) is None  # the passphrase was never needed

            config["identitiesonly"] = "yes"
            only = list(credentials.strategy(where, config, mine).get_sources())
            assert [s.pkey.fingerprint for s in only] == [fingerprint(mine)]

            del config["identitiesonly"]
            sources = list(credentials.strategy(where, config, plain).get_sources())
            assert [type(s) for s in sources] == [AgentKeySource, AgentKeySource, KeyFileSource]
            assert repr(sources[-1]) == f"key file {plain}"
            assert credentials.loaded(plain) is not None  # no passphrase: checked and loaded
        finally:
            if old is None:
                os.environ.pop("SSH_AUTH_SOCK", None)
            else:
                os.environ["SSH_AUTH_SOCK"] = old


def test_no_agent_offers_the_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSH_AUTH_SOCK", str(tmp_path / "no-agent-here.sock"))
    key = keygen(tmp_path / "id_locked", "ed25519-openssh", PASSPHRASE)
    strategy = Credentials("site").strategy(
        Destination("alice", "login.example", 22), paramiko.SSHConfigDict(), key
    )
    assert [repr(s) for s in strategy.get_sources()] == [f"key file {key}"]


def test_key_files_keypath_then_identity_files_then_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    rsa_default = keygen(home / ".ssh" / "id_rsa", "rsa-pem")
    ed_default = keygen(home / ".ssh" / "id_ed25519", "ed25519-openssh", PASSPHRASE)
    chosen = keygen(tmp_path / "chosen")
    config = paramiko.SSHConfigDict()
    assert key_files(None, config) == [
        KeyFile(rsa_default, explicit=False),
        KeyFile(ed_default, explicit=False),
    ]
    config["identityfile"] = [str(tmp_path / "missing"), str(chosen)]
    assert key_files(None, config) == [KeyFile(chosen)]
    assert key_files(rsa_default, config) == [KeyFile(rsa_default)]
