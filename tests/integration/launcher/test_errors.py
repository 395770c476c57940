"""Every error the launcher reports: one readable message, no traceback, non-zero exit."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from tests.support.launcher_run import Launcher, assert_error
from tests.support.waiting import wait_until


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unknown_site_lists_known_sites(local_launcher: Launcher) -> None:
    local_launcher.write_site("sandbox", platform="sandbox", host="h")
    result = local_launcher.run("--uid", "sandbx", "--mode", "run")
    assert_error(
        result, 2, "unknown site 'sandbx'", "did you mean 'sandbox'", "Known sites:", "local"
    )


def test_misspelt_key_suggests_the_right_one(local_launcher: Launcher) -> None:
    local_launcher.write_site("site", platform="sandbox", hots="login.example")
    result = local_launcher.run("--uid", "site", "--mode", "dry-run")
    assert_error(result, 2, str(local_launcher.ini), "unknown key 'hots'", "did you mean 'host'")


def test_missing_key_names_the_key(local_launcher: Launcher) -> None:
    local_launcher.write_site("site", platform="sandbox")
    result = local_launcher.run("--uid", "site", "--mode", "dry-run")
    assert_error(result, 2, "missing key 'host'")


def test_unknown_platform_lists_profiles(local_launcher: Launcher) -> None:
    local_launcher.write_site("site", platform="snelius", host="h")
    result = local_launcher.run("--uid", "site", "--mode", "dry-run")
    assert_error(result, 2, "no profile 'snelius.yaml'", "did you mean 'snellius'")


def test_key_file_missing(local_launcher: Launcher, tmp_path: Path) -> None:
    local_launcher.write_site(
        "site",
        platform="sandbox",
        host="127.0.0.1",
        port=str(free_port()),
        keypath=str(tmp_path / "nokey"),
    )
    result = local_launcher.run("--uid", "site", "--mode", "run", "--no-browser")
    assert_error(result, 3, "does not exist", "keypath")


def test_key_file_with_open_permissions(local_launcher: Launcher, tmp_path: Path) -> None:
    key = tmp_path / "id_open"
    key.write_text("not used")
    key.chmod(0o644)
    local_launcher.write_site("site", platform="sandbox", host="127.0.0.1", keypath=str(key))
    result = local_launcher.run("--uid", "site", "--mode", "run", "--no-browser")
    assert_error(result, 3, "open permissions (0644)", f"chmod 600 {key}")


def test_key_file_unreadable_as_a_key(local_launcher: Launcher, tmp_path: Path) -> None:
    key = tmp_path / "id_garbage"
    key.write_text("this is not a private key\n")
    key.chmod(0o600)
    local_launcher.write_site("site", platform="sandbox", host="127.0.0.1", keypath=str(key))
    result = local_launcher.run("--uid", "site", "--mode", "run", "--no-browser")
    assert_error(result, 3, "unreadable as an SSH private key")


@pytest.mark.cluster
def test_closed_port_is_unreachable(local_launcher: Launcher, netns_cluster) -> None:  # type: ignore[no-untyped-def]
    local_launcher.write_site(
        "site",
        platform="sandbox",
        host="127.0.0.1",
        port=str(free_port()),
        keypath=netns_cluster.key_path,
    )
    result = local_launcher.run("--uid", "site", "--mode", "run", "--no-browser")
    assert_error(result, 3, "cannot reach", "Check 'host'/'port'")


@pytest.mark.cluster
@pytest.mark.netns
def test_silent_address_times_out(local_launcher: Launcher, netns_cluster) -> None:  # type: ignore[no-untyped-def]
    # An unassigned address inside the rig's namespace network: nothing answers.
    local_launcher.write_site(
        "site",
        platform="sandbox",
        host="10.231.0.99",
        port="22",
        user=netns_cluster.user,
        keypath=netns_cluster.key_path,
    )
    result = local_launcher.run("--uid", "site", "--mode", "run", "--no-browser", timeout=120)
    assert_error(result, 3, "10.231.0.99", "Check 'host'/'port'")


@pytest.mark.cluster
@pytest.mark.netns
def test_authentication_refused(local_launcher: Launcher, netns_cluster) -> None:  # type: ignore[no-untyped-def]
    info = netns_cluster
    local_launcher.write_site("site", **{**info.ini_section(), "keypath": info.other_key_path})
    result = local_launcher.run("--uid", "site", "--mode", "run", "--no-browser")
    assert_error(result, 3, "refused authentication", "authorized_keys")


@pytest.mark.cluster
@pytest.mark.netns
def test_invalid_partition_is_refused_before_submission(sandbox: Launcher) -> None:
    sandbox.write_site("badpart", **{**sandbox.info.ini_section(), "partition": "nosuchpart"})
    result = sandbox.run("--uid", "badpart", "--mode", "run", "--no-browser")
    assert_error(result, 4, "partition 'nosuchpart'", "does not exist", "work")
    assert sandbox.squeue() == ""


@pytest.mark.cluster
@pytest.mark.netns
def test_job_failing_before_jupyter_is_ready(sandbox: Launcher) -> None:
    sandbox.write_site("broken", **sandbox.info.ini_section(), env_path="/nonexistent/venv")
    result = sandbox.run("--uid", "broken", "--mode", "run", "--no-browser")
    assert_error(
        result,
        4,
        "ended before Jupyter was ready",
        "FAILED",
        "exit code 1",
        "/nonexistent/venv/bin/activate",
    )
    status = sandbox.run("--uid", "broken", "--mode", "status", "--json")
    assert '"state": "NONE"' in status.stdout


@pytest.mark.cluster
@pytest.mark.netns
def test_jupyter_timeout_cancels_the_job(sandbox: Launcher, cluster_venv: str) -> None:
    """A job that runs but whose Jupyter never answers (its environment's python only sleeps)
    is cancelled once --timeout has passed since it started."""
    assert sandbox.info is not None
    env = ".eohpc-test-silent-env"
    silent_env = (
        f"mkdir -p ~/{env}/bin && printf 'export PATH=\"$HOME/{env}/bin:$PATH\"\\n' "
        f"> ~/{env}/bin/activate && printf '#!/bin/sh\\nexec sleep 600\\n' > ~/{env}/bin/python "
        f"&& chmod +x ~/{env}/bin/python"
    )
    subprocess.run(sandbox.info.ssh_command(silent_env), check=True)
    try:
        sandbox.write_site("silent", **{**sandbox.info.ini_section(), "env_path": f"~/{env}"})
        result = sandbox.run("--uid", "silent", "--mode", "run", "--no-browser", "--timeout", "2")
        assert_error(result, 5, "not ready 2s after job", "was cancelled", "--timeout")
        assert wait_until(lambda: sandbox.squeue() == "", 30), sandbox.squeue()
    finally:
        subprocess.run(sandbox.info.ssh_command(f"rm -rf ~/{env}"), check=False)


@pytest.mark.cluster
@pytest.mark.netns
def test_local_port_taken(sandbox: Launcher) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = sandbox.run(
            "--uid", "sandbox", "--mode", "run", "--no-browser", "--local-port", str(port)
        )
    assert_error(result, 6, f"local port {port} is already in use", "--local-port")
    assert sandbox.squeue() == ""


def test_no_session_to_stop(local_launcher: Launcher) -> None:
    result = local_launcher.run("--uid", "local", "--mode", "stop")
    assert_error(result, 8, "no session saved for site 'local'")


def test_verbose_shows_traceback(local_launcher: Launcher) -> None:
    result = local_launcher.run("--uid", "nosuch", "--mode", "run", "-v")
    assert result.returncode == 2 and "Traceback" in result.stderr


def test_add_platform_appends_a_valid_section(local_launcher: Launcher) -> None:
    answers = "hpc\ngeneric-slurm\nlocalhost\nalice\n\ngpu\n\n"
    result = subprocess.run(
        local_launcher.command("--add-platform"),
        input=answers,
        env=local_launcher.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    dry = local_launcher.run("--uid", "hpc", "--mode", "dry-run")
    assert "#SBATCH --partition=gpu" in dry.stdout
