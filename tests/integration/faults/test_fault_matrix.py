"""The fault matrix: one fault per row, injected on the real rig; the launcher returns within a
stated bound (seconds, not its generic timeout), names the cause, leaves no job, and its saved
state says what happened."""

from __future__ import annotations

import re
import secrets
import subprocess
import time
from pathlib import Path

import pytest

from tests.cluster import rig
from tests.integration.faults.conftest import (
    SUBMITTED,
    StreamLines,
    ended_records,
    job_ids,
    jobs_gone,
    live_states,
    node_down,
    partition_down,
    read_until,
    scontrol,
    sshd_stopped,
)
from tests.integration.launcher.conftest import Launcher, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.netns, pytest.mark.slow, pytest.mark.timeout(300)]

SANDBOX = Path(__file__).resolve().parents[3] / "config" / "platforms" / "sandbox.yaml"


def timed(
    launcher: Launcher, *args: str, timeout: float
) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    result = launcher.run(*args, timeout=timeout)
    return result, time.monotonic() - start


def assert_ended(launcher: Launcher, *phrases: str) -> None:
    records = ended_records(launcher)
    assert records, "no record of the ended session"
    outcome = str(records[-1]["outcome"])
    for phrase in phrases:
        assert phrase in outcome, outcome
    assert not [k for k in live_states(launcher) if k != "ended"], live_states(launcher)


# ---------------------------------------------------------------- the Jupyter job at its start


@pytest.mark.parametrize(
    ("fault", "bound", "phrases"),
    [
        ("partition_down", 20, ["PartitionDown", "partition is down"]),
        ("node_down", 20, ["ReqNodeNotAvail", "sinfo -R"]),
    ],
)
def test_jupyter_job_pending_for_ever_ends_the_wait(
    faults: Launcher, fault: str, bound: float, phrases: list[str]
) -> None:
    info = faults.info
    assert info is not None
    injected = partition_down(info) if fault == "partition_down" else node_down(info)
    with injected:
        result, seconds = timed(
            faults, "--uid", "sandbox", "--mode", "run", "--no-browser", timeout=bound + 30
        )
    assert result.returncode == 4, (result.stdout, result.stderr)
    assert seconds < bound, seconds
    assert "cannot start" in result.stderr and "the job was cancelled" in result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr
    assert jobs_gone(info, job_ids(result.stderr))
    assert_ended(faults, phrases[0])


def test_missing_environment_fails_the_jupyter_job_with_its_output(faults: Launcher) -> None:
    faults.write_site("noenv", **faults.info.ini_section(), env_path="/opt/eo-rig/no-such-env")  # type: ignore[union-attr]
    result, seconds = timed(faults, "--uid", "noenv", "--mode", "run", "--no-browser", timeout=60)
    assert result.returncode == 4, (result.stdout, result.stderr)
    assert seconds < 30, seconds
    assert "ended before Jupyter was ready (state FAILED" in result.stderr
    assert "/opt/eo-rig/no-such-env" in result.stderr  # the tail of the job's output
    assert "Fix: the job script exited non-zero" in result.stderr
    assert jobs_gone(faults.info, job_ids(result.stderr))  # type: ignore[arg-type]
    assert_ended(faults, "state FAILED")


def test_jupyter_exiting_at_start_fails_the_job_with_its_output(faults: Launcher) -> None:
    """The wrapper's Jupyter exits at once (an option it does not know): the job fails and the
    wait ends with its state and the tail of its output, not after --timeout."""
    text = SANDBOX.read_text().replace(
        "jupyter:\n  app: lab\n", "jupyter:\n  app: lab\n  args: [--eohpc-no-such-option]\n"
    )
    assert "--eohpc-no-such-option" in text
    (faults.ini.parent / "badjupyter.yaml").write_text(text)
    faults.write_site(
        "badjupyter",
        **{**faults.info.ini_section(), "platform": "badjupyter"},  # type: ignore[union-attr]
        env_path=str(faults.info.venv),  # type: ignore[union-attr]
    )
    result, seconds = timed(
        faults, "--uid", "badjupyter", "--mode", "run", "--no-browser", timeout=120
    )
    assert result.returncode == 4, (result.stdout, result.stderr)
    assert seconds < 30, seconds
    assert "ended before Jupyter was ready (state FAILED, exit code 2:0" in result.stderr
    assert "unrecognized arguments: --eohpc-no-such-option" in result.stderr  # the output's tail
    assert "Fix: the job script exited non-zero" in result.stderr
    assert jobs_gone(faults.info, job_ids(result.stderr))  # type: ignore[arg-type]
    assert_ended(faults, "state FAILED", "unrecognized arguments")


# ---------------------------------------------------------------- batch mode and its workers


def test_stale_user_dask_config_is_named_before_submitting(
    faults: Launcher, tmp_path: Path
) -> None:
    info = faults.info
    assert info is not None
    section = {k: v for k, v in info.ini_section().items() if k != "partition"}
    faults.write_site("stale", **section, env_path=str(info.venv))
    name = f"zz-eohpc-stale-{secrets.token_hex(3)}.yaml"
    remote = f"/home/{info.user}/.config/dask/{name}"
    script = tmp_path / "hello.py"
    script.write_text("print('never runs')\n")
    with info.connection() as conn:
        conn.run("mkdir -p ~/.config/dask", hide=True, in_stream=False)
        conn.run(
            f"printf 'jobqueue:\\n  slurm:\\n    queue: oldgpu\\n' > {remote}",
            hide=True,
            in_stream=False,
        )
        try:
            result, seconds = timed(
                faults,
                "--uid",
                "stale",
                "--mode",
                "batch",
                "--script",
                str(script),
                "--workers",
                "2",
                "-v",
                timeout=60,
            )
        finally:
            conn.run(f"rm -f {remote}", hide=True, in_stream=False)
    assert result.returncode == 4, (result.stdout, result.stderr)
    assert seconds < 15, seconds
    assert "partition 'oldgpu', which does not exist" in result.stderr
    assert f"'queue' in {remote} on the cluster" in result.stderr
    assert f"queue: 'oldgpu'  <- {remote}" in result.stderr  # -v shows the merged values
    assert not SUBMITTED.search(result.stderr)
    assert live_states(faults) == []


def test_script_that_exits_1_gives_its_status(faults: Launcher, tmp_path: Path) -> None:
    script = tmp_path / "fails.py"
    script.write_text("import sys\nprint('about to fail', flush=True)\nsys.exit(1)\n")
    result, seconds = timed(
        faults,
        "--uid",
        "sandbox",
        "--mode",
        "batch",
        "--script",
        str(script),
        "--workers",
        "1",
        "--timeout",
        "60",
        timeout=120,
    )
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert seconds < 60, seconds
    assert "about to fail" in result.stdout
    assert "script exit status 1" in result.stderr
    assert jobs_gone(faults.info, job_ids(result.stderr))  # type: ignore[arg-type]
    assert_ended(faults, "script exit status 1")


def slow_worker_profile(faults: Launcher) -> None:
    """A profile whose worker jobs take 120 s before their worker starts."""
    text = SANDBOX.read_text().replace(
        "      local-directory: /tmp\n",
        "      local-directory: /tmp\n      job-script-prologue: ['sleep 120']\n",
    )
    (faults.ini.parent / "slowworkers.yaml").write_text(text)
    faults.write_site(
        "slow",
        **{**faults.info.ini_section(), "platform": "slowworkers"},  # type: ignore[union-attr]
        env_path=str(faults.info.venv),  # type: ignore[union-attr]
    )


def test_cancelled_worker_job_ends_the_wait_at_once(faults: Launcher, tmp_path: Path) -> None:
    info = faults.info
    assert info is not None
    slow_worker_profile(faults)
    script = tmp_path / "hello.py"
    script.write_text("print('never runs')\n")
    proc = faults.start(
        "--uid",
        "slow",
        "--mode",
        "batch",
        "--script",
        str(script),
        "--workers",
        "1",
        "--timeout",
        "200",
    )
    try:
        read_until(proc, "waiting for 1 workers", 60)

        def worker_running() -> str:
            cmd = rig.slurm_cmd(info, "squeue", "-h", "-u", info.user, "-t", "R", "-o", "%i %j")
            lines = subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()
            return next((ln.split()[0] for ln in lines if ln.endswith("-workers")), "")

        assert wait_until(lambda: bool(worker_running()), 60)
        worker = worker_running()
        start = time.monotonic()
        rig.run(rig.slurm_cmd(info, "scancel", worker))
        out, err = proc.communicate(timeout=60)
        seconds = time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert seconds < 20, seconds
    assert f"worker job {worker} ended CANCELLED" in out, out
    assert "The script did not run" in err and "CANCELLED" in err, err
    assert proc.returncode == 1
    assert jobs_gone(info, [worker, *job_ids(err)])
    assert_ended(faults, f"worker job {worker} ended CANCELLED")


# ---------------------------------------------------------------- walltime


def test_short_walltime_warns_then_says_how_to_start_again(faults: Launcher) -> None:
    faults.write_site(
        "short",
        **{**faults.info.ini_section(), "time": "00:01:00"},  # type: ignore[union-attr]
        env_path=str(faults.info.venv),
    )  # type: ignore[union-attr]
    proc = faults.start(
        "--uid", "short", "--mode", "run", "--no-browser", "--walltime-warning", "1"
    )
    try:
        read_until(proc, "/lab?token=", 60)
        ready = time.monotonic()
        _out, err = proc.communicate(timeout=150)
        seconds = time.monotonic() - ready
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "reaches its walltime in" in err, err
    if "ended (CANCELLED)" in err:  # on a shared rig another session's fixture cancelled it
        pytest.skip("the job was cancelled by someone else before its walltime ended")
    assert "reached its walltime (00:01:00)" in err and "Start again with --mode run" in err
    assert "Your notebooks are saved in" in err
    assert seconds < 130, seconds  # 60 s walltime + SLURM's enforcement (up to a minute)
    assert_ended(faults, "reached its walltime")


# ---------------------------------------------------------------- sshd on the login node


def test_sshd_restart_during_batch_streaming_keeps_output_and_status(
    faults: Launcher, tmp_path: Path
) -> None:
    info = faults.info
    assert info is not None
    script = tmp_path / "ticks.py"
    script.write_text(
        "import sys, time\nfor i in range(20):\n    print(f'tick {i}', flush=True)\n"
        "    time.sleep(1)\nsys.exit(3)\n"
    )
    proc = faults.start(
        "--uid",
        "sandbox",
        "--mode",
        "batch",
        "--script",
        str(script),
        "--workers",
        "1",
        "--timeout",
        "60",
    )
    try:
        read_until(proc, "tick 2", 90)
        with sshd_stopped(info, proc.pid):
            time.sleep(6)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 3, (out, err)
    assert "lost the connection to" in err and "is back after" in err, err
    assert "tick 19" in (out + err) and "script exit status 3" in err


def test_sshd_restart_during_attach_reconnects_and_the_job_end_is_still_seen(
    faults: Launcher,
) -> None:
    """attach watches the job with the same code as run: an sshd restart on the login node is
    bridged (one line lost, one line back), and the job's end afterwards still ends attach."""
    info = faults.info
    assert info is not None
    started = faults.run("--uid", "sandbox", "--mode", "run", "--no-browser", "--detach")
    assert started.returncode == 0, started.stderr
    job = job_ids(started.stderr)[0]
    proc = faults.start("--uid", "sandbox", "--mode", "attach", "--no-browser")
    try:
        read_until(proc, "/lab?token=", 60)
        # Down for longer than one watch interval (10 s), so that a poll meets the outage.
        with sshd_stopped(info, proc.pid):
            time.sleep(12)
        time.sleep(5)  # a retry every 2 s finds sshd back
        assert proc.poll() is None, proc.communicate()
        start = time.monotonic()
        rig.run(rig.slurm_cmd(info, "scancel", job))
        out, err = proc.communicate(timeout=60)
        seconds = time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        if live_states(faults):
            faults.run("--uid", "sandbox", "--mode", "stop", timeout=60)
    assert "lost the connection to" in err, err
    back = re.search(r"is back after (\d+)s", err)
    assert back and int(back.group(1)) < 12 + 2 + 10, err  # the outage, a retry, one connect
    assert "unreachable for" not in err, err
    assert seconds < 10 + 10, seconds  # a watch interval, one status query
    assert f"job {job} ended (CANCELLED)" in err, err
    assert proc.returncode == 1, (out, err)
    assert jobs_gone(info, [job])
    assert_ended(faults, f"job {job} ended (CANCELLED)")


def test_login_node_down_longer_than_the_bound_leaves_the_job_and_attach_continues(
    faults: Launcher,
) -> None:
    info = faults.info
    assert info is not None
    proc = faults.start("--uid", "sandbox", "--mode", "run", "--no-browser", "--reconnect-for", "5")
    try:
        read_until(proc, "/lab?token=", 60)
        with sshd_stopped(info, proc.pid):
            start = time.monotonic()
            out, err = proc.communicate(timeout=60)
            seconds = time.monotonic() - start
        assert proc.returncode == 3, (out, err)
        assert seconds < 5 + 10 + 20, seconds  # the bound, a watch interval, one connect
        assert err.count("keeps running; --mode attach reconnects") == 1, err
        assert live_states(faults) == ["sandbox"]
        attach = faults.run(
            "--uid", "sandbox", "--mode", "attach", "--no-browser", "--detach", timeout=90
        )
        assert attach.returncode == 0, attach.stderr
        assert "Jupyter is ready" in attach.stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        faults.run("--uid", "sandbox", "--mode", "stop", timeout=60)
    assert live_states(faults) == []


def test_partition_state_is_restored(faults: Launcher) -> None:
    """The matrix leaves the rig as it found it."""
    info = faults.info
    assert info is not None
    out = rig.run(rig.slurm_cmd(info, "scontrol", "show", "partition", "-o", info.partition))
    assert "State=UP" in out.stdout
    rig.wait_node_idle(info, 30)
    scontrol(info, "show", "node", info.compute_hostname)


# ------------------------------------------------------- a running job put back in the queue


@pytest.mark.timeout(480)
def test_node_failure_under_a_running_session_is_said_at_once_and_reconnected(
    faults: Launcher,
) -> None:
    """The compute node goes DOWN under a running Jupyter job: SLURM requeues the job. run
    says so within a watch interval, waits, and reconnects the same local URL when the job
    runs again (its node back)."""
    from launcher.connection.readiness import api_status
    from tests.integration.launcher.conftest import URL_RE

    info = faults.info
    assert info is not None
    node = info.compute_hostname
    proc = faults.start("--uid", "sandbox", "--mode", "run", "--no-browser")
    assert proc.stdout is not None and proc.stderr is not None
    out, err = StreamLines(proc.stdout), StreamLines(proc.stderr)
    try:
        first = out.wait_for("/lab?token=", 90)
        match = URL_RE.search(out.lines[first])
        assert match is not None
        port, token = int(match.group(1)), match.group(2)
        assert api_status(port, token) == 200
        start = time.monotonic()
        scontrol(info, "update", f"nodename={node}", "state=down", "reason=eo-hpc node failure")
        try:
            err.wait_for("put it back in the queue", 30)
            seconds = time.monotonic() - start
        finally:
            # SLURM may have returned the responding node to service already (ReturnToService)
            resume = ("update", f"nodename={node}", "state=resume")
            rig.run(rig.slurm_cmd(info, "scontrol", *resume), check=False)
        assert seconds < 10 + 10, seconds  # a watch interval and one status query
        said = err.text
        assert "node failure or a preemption" in said and "PENDING" in said, said
        assert "Waiting to reconnect; Ctrl-C cancels" in said
        # SLURM starts a requeued job again after a delay of its own (BeginTime, 2 minutes)
        again = out.wait_for("/lab?token=", 300, after=first + 1)
        assert out.lines[again].strip() == out.lines[first].strip()  # the same local URL
        assert wait_until(lambda: api_status(port, token) == 200, 30)
        assert proc.poll() is None
    finally:
        if proc.poll() is None:
            proc.send_signal(2)
            proc.wait(timeout=60)
    assert proc.returncode == 130, err.text
    assert "cancelled job" in err.text
    assert jobs_gone(info, job_ids(err.text))
    print(f"node failure under a session: said after {seconds:.1f} s, reconnected")
