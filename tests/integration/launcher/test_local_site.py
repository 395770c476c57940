"""The built-in `local` site: JupyterLab on this machine, no SSH, no SLURM."""

from __future__ import annotations

import json

import pytest

from launcher.connection.readiness import api_status
from tests.support.launcher_run import Launcher
from tests.support.process_output import read_url, url_of
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


def test_local_run_detach_status_stop(local_launcher: Launcher) -> None:
    result = local_launcher.run("--uid", "local", "--mode", "run", "--no-browser", "--detach")
    assert result.returncode == 0, result.stderr
    _, port, token = url_of(result.stdout)
    try:
        assert len(token) >= 43  # 32 random bytes, URL-safe base64
        assert api_status(port, token) == 200
        assert api_status(port, None) == 403
        status = json.loads(
            local_launcher.run("--uid", "local", "--mode", "status", "--json").stdout
        )
        assert status["state"] == "RUNNING" and status["local_port"] == port
        ps = local_launcher.run("--uid", "local", "--mode", "logs").stdout
        assert "Jupyter is ready" in ps
    finally:
        stopped = local_launcher.run("--uid", "local", "--mode", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert wait_until(lambda: api_status(port, token) == 0, 15)


def test_local_dry_run(local_launcher: Launcher) -> None:
    result = local_launcher.run("--uid", "local", "--mode", "dry-run")
    assert result.returncode == 0
    assert "class: LocalCluster" in result.stdout


def test_stop_from_another_command_is_no_failure_of_the_foreground_run(
    local_launcher: Launcher,
) -> None:
    proc = local_launcher.start("--uid", "local", "--mode", "run", "--no-browser")
    try:
        _, port, token = read_url(proc)
        stopped = local_launcher.run("--uid", "local", "--mode", "stop")
        assert stopped.returncode == 0, stopped.stderr
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    # the watching run says what the user did, exits 0, and advises nothing
    assert proc.returncode == 0, err
    assert "was stopped with --mode stop" in err, err
    assert "Fix:" not in err and "warning" not in err.lower(), err
    status = json.loads(local_launcher.run("--uid", "local", "--mode", "status", "--json").stdout)
    assert status["state"] == "NONE" and "stopped with --mode stop" in status["last_outcome"]
    assert wait_until(lambda: api_status(port, token) == 0, 15)


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGHUP"])
def test_terminal_signals_end_a_foreground_run_as_ctrl_c_does(
    local_launcher: Launcher, signal_name: str
) -> None:
    """Closing the terminal (SIGHUP) or a process manager's SIGTERM cancels the job of a
    foreground run on a real pseudo-terminal, without asking, as Ctrl-C would."""
    import signal

    import pexpect

    command = local_launcher.command("--uid", "local", "--mode", "run", "--no-browser")
    child = pexpect.spawn(
        command[0], command[1:], env=local_launcher.env, encoding="utf-8", timeout=120
    )
    try:
        child.expect(r"http://127\.0\.0\.1:(\d+)/lab\?token=([\w-]+)")
        port, token = int(child.match.group(1)), child.match.group(2)
        assert api_status(port, token) == 200
        child.kill(getattr(signal, signal_name))
        child.expect(pexpect.EOF, timeout=60)
        child.close()
    finally:
        if child.isalive():
            child.terminate(force=True)
    assert child.exitstatus == 130, child.before
    assert f"{signal_name}: cancelled job" in child.before
    assert wait_until(lambda: api_status(port, token) == 0, 15)
    status = json.loads(local_launcher.run("--uid", "local", "--mode", "status", "--json").stdout)
    assert status["state"] == "NONE"
