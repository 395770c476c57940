"""Real SSH keys (ssh-keygen) and a real ssh-agent for the tests of how the launcher logs in."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PASSPHRASE = "correct horse battery staple"

# (ssh-keygen options, description): an ed25519 key in OpenSSH's own format and an RSA key in
# the older PEM format ("BEGIN RSA PRIVATE KEY", Proc-Type: 4,ENCRYPTED).
KEY_KINDS = {
    "ed25519-openssh": ["-t", "ed25519"],
    "rsa-pem": ["-t", "rsa", "-b", "2048", "-m", "PEM"],
}


def keygen(path: Path, kind: str = "ed25519-openssh", passphrase: str = "") -> Path:
    """A new key pair at ``path`` (and ``path``.pub), made by ssh-keygen."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", *KEY_KINDS[kind], "-N", passphrase, "-C", path.name, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path


def fingerprint(path: Path) -> str:
    """The SHA256 fingerprint ssh-keygen reports for a key's public half."""
    out = subprocess.run(
        ["ssh-keygen", "-l", "-f", f"{path}.pub"], check=True, capture_output=True, text=True
    ).stdout
    return out.split()[1]


@contextmanager
def ssh_agent(socket_path: Path) -> Iterator[dict[str, str]]:
    """A real ssh-agent on ``socket_path`` for the block; yields the environment to reach it."""
    proc = subprocess.Popen(
        ["ssh-agent", "-D", "-a", str(socket_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not socket_path.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ssh-agent did not create {socket_path}")
            time.sleep(0.05)
        yield {"SSH_AUTH_SOCK": str(socket_path)}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        socket_path.unlink(missing_ok=True)


def ssh_add(agent_env: dict[str, str], key: Path, passphrase: str, workdir: Path) -> None:
    """Add a passphrase-protected key to the agent, the passphrase fed through SSH_ASKPASS."""
    askpass = workdir / "askpass.sh"
    askpass.write_text(f"#!/bin/sh\nprintf '%s\\n' '{passphrase}'\n")
    askpass.chmod(0o700)
    env = {
        **os.environ,
        **agent_env,
        "SSH_ASKPASS": str(askpass),
        "SSH_ASKPASS_REQUIRE": "force",
        "DISPLAY": os.environ.get("DISPLAY", ":0"),
    }
    subprocess.run(
        ["ssh-add", str(key)],
        env=env,
        stdin=subprocess.DEVNULL,
        check=True,
        capture_output=True,
        timeout=30,
    )
    askpass.unlink()


def agent_fingerprints(agent_env: dict[str, str]) -> list[str]:
    """The fingerprints of the keys the agent holds (``ssh-add -l``)."""
    proc = subprocess.run(
        ["ssh-add", "-l"], env={**os.environ, **agent_env}, capture_output=True, text=True
    )
    return [line.split()[1] for line in proc.stdout.splitlines() if line.strip()]
