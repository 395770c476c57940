"""Logging in like OpenSSH, against the real test cluster's sshds.

A passphrase-protected key in a real ssh-agent, the same key without agent or terminal, and a
login node that asks for a TOTP code after the key (tests/cluster/twofactor.py), answered on a
pseudo-terminal driven by pexpect; the code comes from the rig's secret through pyotp.

These tests share the cluster user's queue with whoever else uses the rig: they cancel only the
jobs they submitted.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pyotp
import pytest

from launcher.connection.readiness import api_status
from launcher.session import state as saved
from tests.cluster import rig, twofactor
from tests.sshkeys import PASSPHRASE, agent_fingerprints, fingerprint, keygen, ssh_add, ssh_agent
from tests.support.launcher_run import RUN_JUPYTER, Launcher, launcher_env
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.cluster]

URL_RE = r"http://127\.0\.0\.1:(\d+)/lab\?token=(\S+)"
CODE_PROMPT = "Verification code: "
AGAIN = "the login node asks for the second factor again"
STATE_DIR_ENV = "EOHPC_STATE_DIR"  # where the launcher keeps its saved sessions


@pytest.fixture
def locked_key(shared_single_cluster: rig.ClusterInfo, tmp_path: Path) -> Iterator[Path]:
    """A passphrase-protected ed25519 key authorized for the cluster user during the test."""
    key = keygen(tmp_path / "keys" / "id_locked", "ed25519-openssh", PASSPHRASE)
    with rig.extra_authorized_key(shared_single_cluster.user, key.with_name("id_locked.pub")):
        yield key


def no_agent_env(tmp_path: Path) -> dict[str, str]:
    env = launcher_env(tmp_path)
    env.pop("SSH_AUTH_SOCK", None)
    env["NO_COLOR"] = "1"
    return env


def assert_one_line_error(result: subprocess.CompletedProcess[str], *phrases: str) -> None:
    assert result.returncode == 3, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for phrase in phrases:
        assert phrase in lines[0], lines[0]


def save_unknown_job(launcher: Launcher, uid: str) -> None:
    """A saved session for a job SLURM never had: `status` must log in to ask about it."""
    os.environ[STATE_DIR_ENV] = launcher.env[STATE_DIR_ENV]
    try:
        saved.save(saved.SessionState(uid, "sandbox", "999999999", "/nonexistent", "t", 1))
    finally:
        del os.environ[STATE_DIR_ENV]


def test_agent_key_logs_in_without_a_terminal(
    shared_single_cluster: rig.ClusterInfo, locked_key: Path, tmp_path: Path
) -> None:
    """The key's passphrase is in the agent: no terminal needed. Without the agent, the same
    key ends in one line that says to ssh-add it, and exit code 3."""
    info = shared_single_cluster
    launcher = Launcher(tmp_path / "platforms.ini", no_agent_env(tmp_path), info)
    launcher.write_site("agent", **{**info.ini_section(), "keypath": str(locked_key)})
    save_unknown_job(launcher, "agent")

    with ssh_agent(tmp_path / "agent.sock") as agent_env:
        ssh_add(agent_env, locked_key, PASSPHRASE, tmp_path)
        assert agent_fingerprints(agent_env) == [fingerprint(locked_key)]
        launcher.env.update(agent_env)
        started = time.monotonic()
        result = launcher.run("--uid", "agent", "--mode", "status", "--json")
        assert result.returncode == 0, result.stderr
        assert '"job_id": "999999999"' in result.stdout
        assert time.monotonic() - started < 60

    launcher.env.pop("SSH_AUTH_SOCK")
    result = launcher.run("--uid", "agent", "--mode", "status", "--json")
    assert_one_line_error(
        result,
        f"key file {locked_key} is protected by a passphrase",
        f"ssh-add {locked_key}",
        "run from a terminal",
    )


def test_public_key_as_keypath_against_the_cluster(
    shared_single_cluster: rig.ClusterInfo, locked_key: Path, tmp_path: Path
) -> None:
    info = shared_single_cluster
    launcher = Launcher(tmp_path / "platforms.ini", no_agent_env(tmp_path), info)
    public = locked_key.with_name("id_locked.pub")
    launcher.write_site("pub", **{**info.ini_section(), "keypath": str(public)})
    save_unknown_job(launcher, "pub")
    result = launcher.run("--uid", "pub", "--mode", "status", "--json")
    assert_one_line_error(
        result, f"{public} is a public key; point keypath at the private key {locked_key}"
    )
    assert "chmod" not in result.stderr


def test_second_factor_without_a_terminal_is_one_line(
    shared_single_cluster: rig.ClusterInfo, twofactor_sshd: twofactor.TwoFactorInfo, tmp_path: Path
) -> None:
    info = shared_single_cluster
    launcher = Launcher(tmp_path / "platforms.ini", no_agent_env(tmp_path), info)
    launcher.write_site("twofa", **twofactor_sshd.ini_section(info, info.key_path))
    save_unknown_job(launcher, "twofa")
    result = launcher.run("--uid", "twofa", "--mode", "status", "--json")
    assert_one_line_error(
        result,
        "site 'twofa'",
        "asks for a second factor (keyboard-interactive)",
        "run the launcher from a terminal",
    )


def test_ctrl_c_at_the_code_prompt_leaves_the_terminal_echoing(
    shared_single_cluster: rig.ClusterInfo, twofactor_sshd: twofactor.TwoFactorInfo, tmp_path: Path
) -> None:
    """The code is read without echo by paramiko's thread; Ctrl-C meanwhile ends the launcher
    (exit 130) and the shell gets its echo back."""
    info = shared_single_cluster
    launcher = Launcher(tmp_path / "platforms.ini", no_agent_env(tmp_path), info)
    launcher.write_site("twofa", **twofactor_sshd.ini_section(info, info.key_path))
    save_unknown_job(launcher, "twofa")
    command = shlex.join(launcher.command("--uid", "twofa", "--mode", "status", "--json"))
    shell = (
        f"trap : INT; {command}; echo exit=$?; "
        "stty -a | tr ' ' '\\n' | grep -x -e echo -e -echo | sed 's/^/stty:/'"
    )
    child = pexpect.spawn("bash", ["-c", shell], env=launcher.env, encoding="utf-8", timeout=60)
    child.expect_exact(f"({info.user}@{info.ssh_host}) {CODE_PROMPT}")
    time.sleep(0.5)
    child.sendintr()
    child.expect(r"exit=(\d+)")
    assert child.match.group(1) == "130"
    child.expect(r"stty:(\S+)")
    assert child.match.group(1) == "echo"
    child.expect(pexpect.EOF)


def connection_processes(listener_pid: int) -> list[int]:
    """The processes the sshd listener forked for connections (the per-connection monitor and
    its unprivileged child), found by parent pid."""
    ps = subprocess.run(["ps", "-eo", "pid=,ppid=,stat="], capture_output=True, text=True)
    children: dict[int, list[int]] = {}
    for line in ps.stdout.splitlines():
        pid, ppid, stat = line.split()
        if not stat.startswith("Z"):
            children.setdefault(int(ppid), []).append(int(pid))
    found, todo = [], list(children.get(listener_pid, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def cancel_own_job(info: rig.ClusterInfo, job_id: str | None) -> None:
    if job_id:
        subprocess.run(rig.slurm_cmd(info, "scancel", job_id), check=False, capture_output=True)


def job_queued(info: rig.ClusterInfo, job_id: str) -> bool:
    cmd = rig.slurm_cmd(info, "squeue", "-h", "-j", job_id, "-o", "%i")
    return job_id in subprocess.run(cmd, capture_output=True, text=True).stdout.split()


@pytest.mark.slow
def test_second_factor_on_a_terminal_and_again_after_the_connection_drops(
    shared_single_cluster: rig.ClusterInfo,
    twofactor_sshd: twofactor.TwoFactorInfo,
    cluster_venv: str,
    locked_key: Path,
    tmp_path: Path,
) -> None:
    """run on a terminal: the key's passphrase and the TOTP code are asked once; when the SSH
    connection dies, the tunnel comes back after exactly one new code prompt (the passphrase
    is not asked again); Ctrl-C and "y" cancel the job."""
    info = shared_single_cluster
    totp = pyotp.TOTP(twofactor_sshd.secret)
    listener = rig.pid_alive(Path(twofactor_sshd.pid_file))
    assert listener is not None
    ini = tmp_path / "platforms.ini"
    launcher = Launcher(ini, no_agent_env(tmp_path), info)
    section = twofactor_sshd.ini_section(info, str(locked_key))
    launcher.write_site("twofa", **section, env_path=cluster_venv)
    # Connections of earlier tests may take a moment to end on the server side.
    assert wait_until(lambda: connection_processes(listener) == [], 30)

    child = pexpect.spawn(
        sys.executable,
        [str(RUN_JUPYTER), "--config", str(ini), "--uid", "twofa", "--mode", "run", "--no-browser"],
        env=launcher.env,
        encoding="utf-8",
        timeout=60,
        dimensions=(50, 250),
    )
    job_id: str | None = None
    try:
        child.expect_exact(f"Enter passphrase for key '{locked_key}': ")
        child.sendline(PASSPHRASE)
        child.expect_exact(f"({info.user}@{info.ssh_host}) {CODE_PROMPT}")
        child.sendline(totp.now())
        child.expect(r"submitted job (\d+)")
        job_id = child.match.group(1)
        child.expect(URL_RE, timeout=300)
        port, token = int(child.match.group(1)), child.match.group(2)
        child.expect_exact("Ctrl-C cancels the job")
        assert api_status(port, token) == 200
        first = connection_processes(listener)
        assert first, "no sshd process serves the launcher's connection"

        for pid in first:
            os.kill(pid, signal.SIGKILL)
        child.expect_exact(f"the SSH connection to {info.ssh_host} was lost; {AGAIN}")
        child.expect_exact(f"({info.user}@{info.ssh_host}) {CODE_PROMPT}")
        assert "passphrase" not in child.before.lower()
        child.sendline(totp.now())
        assert wait_until(lambda: api_status(port, token) == 200, 90, interval=1.0)
        second = connection_processes(listener)
        assert second and not set(first) & set(second)

        # Exactly one new prompt: nothing more is asked while the tunnel serves requests.
        for _ in range(3):
            assert api_status(port, token) == 200
        more = child.expect([CODE_PROMPT, "passphrase", pexpect.TIMEOUT], timeout=5)
        assert more == 2, child.before
        assert child.isalive()

        child.sendintr()
        child.expect_exact(f"Cancel job {job_id}? [Y/n] ")
        child.sendline("y")
        child.expect_exact(f"cancelled job {job_id}")
        child.expect(pexpect.EOF, timeout=60)
        child.close()
        assert child.exitstatus == 130
        assert wait_until(lambda: not job_queued(info, job_id), 30), f"job {job_id} left"
    finally:
        if child.isalive():
            child.close(force=True)
        cancel_own_job(info, job_id)
