"""Saved state, local port checks and SSH settings, with real files and sockets."""

from __future__ import annotations

import socket
import stat
import subprocess
from pathlib import Path

import pytest

from eoshared.errors import KeyFileError, PortInUseError
from eoshared.scheduler.files import STATE_DIR_ENV
from launcher.config import load_site
from launcher.connection.ssh import SSHLink, check_key_file
from launcher.connection.tunnel import bind_local, free_port
from launcher.session import state


def test_state_file_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "st"))
    saved = state.SessionState("s", "p", "1", "/r", "tok", 8888, remote_host="n", remote_port=1)
    state.save(saved)
    path = tmp_path / "st" / "s.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "st").stat().st_mode) == 0o700
    assert state.load("s") == saved and saved.ready
    assert [s.uid for s in state.load_all()] == ["s"]
    state.delete("s")
    assert state.load("s") is None


def test_port_in_use() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(PortInUseError, match="already in use"):
            bind_local(busy.getsockname()[1])
    listener = bind_local(free_port())
    assert listener.getsockname()[0] == "127.0.0.1"
    listener.close()


def test_key_file_checks(tmp_path: Path) -> None:
    key = tmp_path / "k"
    with pytest.raises(KeyFileError, match="does not exist"):
        check_key_file(key)
    key.write_text("x")
    key.chmod(0o640)
    with pytest.raises(KeyFileError, match="chmod 600"):
        check_key_file(key)
    key.chmod(0o600)
    check_key_file(key)


def test_ssh_config_alias(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """HostName, User, Port, IdentityFile and ProxyJump come from ~/.ssh/config; ini wins."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    key = home / ".ssh" / "id_test"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    (home / ".ssh" / "config").write_text(
        "Host hpc\n  HostName login.example.org\n  User alice\n  Port 2200\n"
        f"  IdentityFile {key}\n  ProxyJump gw.example.org\n"
    )
    monkeypatch.setenv("HOME", str(home))
    ini = tmp_path / "platforms.ini"
    ini.write_text(
        "[a]\nplatform = generic-slurm\nhost = hpc\n"
        "[b]\nplatform = generic-slurm\nhost = hpc\nuser = bob\nport = 22\n"
    )
    link = SSHLink(load_site("a", ini))
    conn = link._connection()
    assert (conn.host, conn.user, conn.port) == ("login.example.org", "alice", 2200)
    assert [f.path for f in conn.connect_kwargs["auth_strategy"].files] == [key]
    assert link._credentials.loaded(key).get_name() == "ssh-ed25519"  # no passphrase: loaded now
    assert conn.gateway is not None and conn.gateway.host == "gw.example.org"
    explicit = SSHLink(load_site("b", ini))._connection()
    assert (explicit.host, explicit.user, explicit.port) == ("login.example.org", "bob", 22)
