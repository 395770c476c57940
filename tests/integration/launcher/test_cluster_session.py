"""run / attach / status / logs / stop on the two-namespace cluster, through the SSH tunnel."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from launcher.connection.readiness import api_status
from tests.support.launcher_run import Launcher
from tests.support.process_output import follow_until, read_url, url_of
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.netns, pytest.mark.slow]


def status_json(sandbox: Launcher) -> dict[str, object]:
    result = sandbox.run("--uid", "sandbox", "--mode", "status", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def attach_and_check(sandbox: Launcher, token: str) -> object:
    """Attach in the foreground, reach Jupyter, detach with Ctrl-C; return the job id."""
    proc = sandbox.start("--uid", "sandbox", "--mode", "attach", "--no-browser")
    try:
        _, port, token2 = read_url(proc)
        assert token2 == token and api_status(port, token) == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    assert proc.returncode == 130
    job_id = status_json(sandbox)["job_id"]
    assert sandbox.squeue().split()[0] == job_id  # detaching leaves the job running
    return job_id


def test_run_reaches_jupyter_and_ctrl_c_cancels(sandbox: Launcher) -> None:
    proc = sandbox.start("--uid", "sandbox", "--mode", "run", "--no-browser")
    try:
        _, port, token = read_url(proc)
        assert api_status(port, token) == 200
        assert api_status(port, None) == 403
        assert api_status(port, "wrong-token") == 403
        job_id = str(status_json(sandbox)["job_id"])
        # The token is on no command line and not in what SLURM records about the job.
        ps = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
        assert token not in ps
        assert "IdentityProvider" not in ps
        assert token not in sandbox.scontrol_job(job_id)
        assert job_id in sandbox.scontrol_job(job_id)
        state_dir = Path(sandbox.info.slurm_conf).parent.parent / "state"
        recorded = subprocess.run(
            ["grep", "-rlF", "-e", token, "--", str(state_dir)], capture_output=True
        )
        assert recorded.returncode == 1, recorded.stdout
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    assert proc.returncode == 130
    assert wait_until(lambda: sandbox.squeue() == "", 30), sandbox.squeue()
    assert status_json(sandbox)["state"] == "NONE"


def test_detach_attach_status_logs_stop(sandbox: Launcher) -> None:
    result = sandbox.run("--uid", "sandbox", "--mode", "run", "--no-browser", "--detach")
    assert result.returncode == 0, result.stderr
    _, port, token = url_of(result.stdout)
    record = status_json(sandbox)
    assert record["state"] == "RUNNING"
    assert record["node"] == sandbox.info.compute_hostname
    assert record["local_port"] == port and token in str(record["url"])
    assert set(record) == {
        "uid",
        "job_id",
        "state",
        "reason",
        "node",
        "time_left",
        "url",
        "local_port",
    }

    # A second run refuses and offers attach; no second job.
    second = sandbox.run("--uid", "sandbox", "--mode", "run", "--no-browser", "--detach")
    assert second.returncode == 7
    assert "--mode attach" in second.stderr and "Traceback" not in second.stderr
    assert len(sandbox.squeue().splitlines()) == 1

    assert attach_and_check(sandbox, token) == record["job_id"]

    logs = sandbox.run("--uid", "sandbox", "--mode", "logs", "-n", "200")
    assert logs.returncode == 0 and "Jupyter is ready on" in logs.stdout

    listed = sandbox.run("--mode", "list")
    assert "sandbox" in listed.stdout and str(record["job_id"]) in listed.stdout

    stopped = sandbox.run("--uid", "sandbox", "--mode", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert wait_until(lambda: sandbox.squeue() == "", 30)
    assert status_json(sandbox)["state"] == "NONE"


def test_attach_after_kill_9(sandbox: Launcher) -> None:
    proc = sandbox.start("--uid", "sandbox", "--mode", "run", "--no-browser")
    _, _, token = read_url(proc)
    job_id = status_json(sandbox)["job_id"]
    proc.kill()
    proc.wait(timeout=30)
    assert sandbox.squeue().split()[0] == job_id
    assert attach_and_check(sandbox, token) == job_id


def test_logs_follow_shows_the_output_until_ctrl_c(sandbox: Launcher) -> None:
    """logs -f prints the job's output as it grows and ends on Ctrl-C (exit 0), leaving the
    job running."""
    result = sandbox.run("--uid", "sandbox", "--mode", "run", "--no-browser", "--detach")
    assert result.returncode == 0, result.stderr
    follow = sandbox.start("--uid", "sandbox", "--mode", "logs", "-f", "-n", "200")
    try:
        follow_until(follow, "Jupyter is ready on", 60)
    finally:
        follow.send_signal(signal.SIGINT)
        follow.wait(timeout=30)
    assert follow.returncode == 0
    assert status_json(sandbox)["state"] == "RUNNING"
    assert sandbox.run("--uid", "sandbox", "--mode", "stop").returncode == 0
    assert wait_until(lambda: sandbox.squeue() == "", 30)


def _sshd_session_pids(user: str) -> list[int]:
    ps = subprocess.run(["ps", "-eww", "-o", "pid=,args="], capture_output=True, text=True).stdout
    return [
        int(line.split()[0])
        for line in ps.splitlines()
        if line.split(None, 1)[1].startswith(f"sshd: {user}")
    ]


def test_tunnel_recovers_when_ssh_drops(sandbox: Launcher) -> None:
    proc = sandbox.start("--uid", "sandbox", "--mode", "run", "--no-browser")
    try:
        _, port, token = read_url(proc)
        assert api_status(port, token) == 200
        pids = _sshd_session_pids(sandbox.info.user)
        assert pids, "no sshd process serves the session"
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda: not set(pids) & set(_sshd_session_pids(sandbox.info.user)), 10)
        assert wait_until(lambda: api_status(port, token) == 200, 90, interval=1.0)
        assert _sshd_session_pids(sandbox.info.user), "the launcher did not reconnect"
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    assert wait_until(lambda: sandbox.squeue() == "", 30)


def test_dry_run_submits_nothing(sandbox: Launcher) -> None:
    result = sandbox.run("--uid", "sandbox", "--mode", "dry-run")
    assert result.returncode == 0, result.stderr
    assert f"#SBATCH --partition={sandbox.info.partition}" in result.stdout
    assert "#SBATCH --time=" in result.stdout
    assert "class: SLURMCluster" in result.stdout and "--lifetime-stagger" in result.stdout
    assert sandbox.squeue() == ""


def test_cluster_files_are_private(sandbox: Launcher) -> None:
    result = sandbox.run("--uid", "sandbox", "--mode", "run", "--no-browser", "--detach")
    assert result.returncode == 0, result.stderr
    info = sandbox.info
    out = subprocess.run(
        info.ssh_command(
            "stat -c '%a %n' ~/.eohpc ~/.eohpc/runs ~/.eohpc/runs/*/ "
            "~/.eohpc/runs/*/jupyter_server_config.json"
        ),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in out.splitlines():
        mode, name = line.split(" ", 1)
        assert mode == ("600" if name.endswith(".json") else "700"), line
    assert sandbox.run("--uid", "sandbox", "--mode", "stop").returncode == 0
