"""The fault matrix (tests/integration/faults/test_fault_matrix.py, on SLURM) on the PBS and
HTCondor rigs, for the faults these systems have. Each row asserts a bound in seconds, the
message naming the cause in the system's own words, the saved session state's outcome, and
that none of the test user's jobs is left (the fixture checks the queue).

| fault | PBS | HTCondor |
|---|---|---|
| the Jupyter job held | ``-h`` | ``hold = true`` |
| more CPUs than any node (slot) has: refused before qsub / condor_submit | both | both |
| worker jobs more memory than any node (slot) has: refused before submitting | both | both |
| it can never start | "Can Never Run" (queue resources_available) | Requirements no slot matches |
| its queue disabled / stopped | ``enabled = false`` (qsub refuses), ``started = false`` | - |
| its node offline | ``pbsnodes -o`` | - (``condor_off -startd``: the wait goes on) |
| missing environment, Jupyter exiting at start | both | both |
| a stale Dask file naming a queue | ``jobqueue.pbs.queue`` | - (no queue key) |
| a script exiting 1 | both | both |
| a worker job removed while batch mode waits | ``qdel`` | ``condor_rm`` |
| a short walltime: warning, end, how to start again | ``walltime`` | ``allowed_execute_duration`` |
| a detached session's job held at its walltime, then attach | - (PBS ends the job) | held |
| sshd restarting during batch streaming, during attach | both | both |
| the login node down longer than ``--reconnect-for`` | both | both |

Rig changes (queue, node, sshd) are undone in ``finally`` blocks; the last row checks that the
PBS rig's queue and node are as they were.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.rig import pid_alive
from tests.integration.faults.conftest import (
    SUBMITTED,
    ended_records,
    live_states,
    read_until,
    ssh_session_pids,
)
from tests.integration.launcher.conftest import wait_until
from tests.integration.launcher.test_pbs_htcondor import SYSTEMS, OtherLauncher, launcher_on

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(300)]

PROFILES = Path(__file__).resolve().parents[3] / "config" / "platforms"
#: A directive that submits the Jupyter job held, by batch system.
HOLD = {"pbs": "-h", "htcondor": "hold = true"}
#: The hold reason each system gives such a job, and the fix the launcher names.
HELD = {
    "pbs": ("it is H (held (user hold))", "qrls"),
    "htcondor": ("it is HELD (submitted on hold at user's request)", "condor_release"),
}


@pytest.fixture(params=SYSTEMS)
def rig_site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OtherLauncher]:
    yield from launcher_on(request, request.param, tmp_path)


def system_of(site: OtherLauncher) -> str:
    assert site.info is not None
    return str(site.info.extra["batch_system"])


def profile_variant(site: OtherLauncher, name: str, edit: dict[str, str]) -> None:
    """A copy of the rig's profile with text replacements, as the site ``name``."""
    assert site.info is not None
    platform = site.info.extra["platform"]
    text = (PROFILES / f"{platform}.yaml").read_text()
    for old, new in edit.items():
        assert old in text, old
        text = text.replace(old, new)
    (site.ini.parent / f"{name}.yaml").write_text(text)
    site.write_site(
        name, **{**site.info.ini_section(), "platform": name}, env_path=str(site.info.venv)
    )


def timed(
    site: OtherLauncher, *args: str, timeout: float
) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    result = site.run(*args, timeout=timeout)
    return result, time.monotonic() - start


def last_outcome(site: OtherLauncher) -> str:
    records = ended_records(site)
    assert records, "no record of the ended session"
    assert not [k for k in live_states(site) if k != "ended"], live_states(site)
    return str(records[-1]["outcome"])


def test_held_jupyter_job_ends_the_wait_with_its_reason(rig_site: OtherLauncher) -> None:
    system = system_of(rig_site)
    profile_variant(
        rig_site, "held", {"  mem: 1G\n": f"  mem: 1G\n  directives: ['{HOLD[system]}']\n"}
    )
    result, seconds = timed(rig_site, "--uid", "held", "--mode", "run", "--no-browser", timeout=60)
    assert result.returncode == 4, (result.stdout, result.stderr)
    assert seconds < 20, seconds
    reason, fix = HELD[system]
    assert "cannot start" in result.stderr and "the job was cancelled" in result.stderr
    assert reason in result.stderr and fix in result.stderr, result.stderr
    assert reason in last_outcome(rig_site)
    print(f"held job on {system}: {seconds:.1f} s")


@pytest.fixture(params=SYSTEMS[:1])
def pbs_site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OtherLauncher]:
    yield from launcher_on(request, request.param, tmp_path)


#: The largest node or slot of each rig, as the launcher names it.
LARGEST = {
    "pbs": "the largest node of queue 'workq' is eopbs with 8 CPUs and 16384 MiB",
    "htcondor": "the largest slot of the pool is slot1@eocondor with 8 CPUs and 16384 MiB",
}


#: The newest job id the batch system knows, finished jobs included.
NEWEST_JOB = {
    "pbs": "qselect -x | sed 's/[.[].*//' | sort -n | tail -1",
    "htcondor": "{ condor_q -allusers -af ClusterId; condor_history -limit 1 -af ClusterId; } "
    "| sort -n | tail -1",
}


def newest_job(site: OtherLauncher) -> str:
    rig = site.rig_module.RIG  # type: ignore[attr-defined]
    return str(rig.sh(NEWEST_JOB[system_of(site)], check=False).stdout.strip())


def refused_before_submitting(site: OtherLauncher, *args: str) -> tuple[str, float]:
    """Run the launcher; the one line of a request it refused before submitting anything
    (the batch system's newest job is the same before and after), and the seconds it took."""
    before = newest_job(site)
    result, seconds = timed(site, *args, timeout=60)
    assert result.returncode == 4, (result.stdout, result.stderr)
    assert seconds < 10, seconds
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert not SUBMITTED.search(result.stderr) and live_states(site) == []
    assert site.queue() == "" and newest_job(site) == before, (before, newest_job(site))
    return lines[0], seconds


def test_jupyter_job_larger_than_every_node_is_refused_before_submitting(
    rig_site: OtherLauncher,
) -> None:
    """64 CPUs on a rig whose one node (slot) has 8: refused at once, naming the node and the
    platforms.ini key, with no job created (on PBS it would have waited as "Can Never Run",
    on HTCondor idle with no match)."""
    site = rig_site
    system = system_of(site)
    assert site.info is not None
    site.write_site("huge", **{**site.info.ini_section(), "cpus": "64"}, env_path=site.info.venv)
    line, seconds = refused_before_submitting(
        site, "--uid", "huge", "--mode", "run", "--no-browser"
    )
    assert "the Jupyter job asks for 64 CPUs and 1024 MiB" in line, line
    assert LARGEST[system] in line and "Lower 'cpus' in platforms.ini [huge]" in line, line
    assert "'mem'" not in line
    print(f"Jupyter job too large on {system}: refused in {seconds:.1f} s")


def test_worker_jobs_larger_than_every_node_are_refused_before_batch_submits(
    rig_site: OtherLauncher, tmp_path: Path
) -> None:
    """Worker jobs of 64 GiB on a rig whose node (slot) has 16: batch mode refuses before the
    batch job is submitted, naming the profile's key."""
    site = rig_site
    system = system_of(site)
    profile_variant(site, "fat", {"      memory: 1GiB\n": "      memory: 64GiB\n"})
    script = tmp_path / "hello.py"
    script.write_text("print('never runs')\n")
    line, seconds = refused_before_submitting(
        site, "--uid", "fat", "--mode", "batch", "--script", str(script), "--workers", "2"
    )
    assert "each Dask worker job asks for 1 CPUs, 1 process and 65536 MiB" in line, line
    assert LARGEST[system] in line, line
    assert f"'worker_memory' in platforms.ini [fat] ('dask.jobqueue.{system}.memory' in the " \
        "profile fat.yaml)" in line, line  # fmt: skip
    print(f"worker jobs too large on {system}: refused in {seconds:.1f} s")


#: A queue of the PBS rig's own for the "Can Never Run" row: 2 CPUs for all its jobs together
#: (a queue-level resources_available, which only the scheduler applies, after qsub).
SMALL_QUEUE = "eohpcsmallq"
CREATE_SMALL_QUEUE = " && ".join(
    f"qmgr -c '{command}'"
    for command in (
        f"create queue {SMALL_QUEUE} queue_type=execution",
        f"set queue {SMALL_QUEUE} resources_available.ncpus = 2",
        f"set queue {SMALL_QUEUE} enabled = true",
        f"set queue {SMALL_QUEUE} started = true",
    )
)
DELETE_SMALL_QUEUE = (
    f"for i in 1 2 3 4 5 6 7 8 9 10; do qmgr -c 'delete queue {SMALL_QUEUE}' && break; "
    "sleep 1; done"
)


def test_pbs_request_that_can_never_run_ends_the_wait(pbs_site: OtherLauncher) -> None:
    """4 CPUs fit the node, but the queue has 2 for all its jobs: PBS's scheduler says "Can
    Never Run" after qsub (the size check reads nodes and resources_max, not a queue's
    resources_available), and the wait ends on it."""
    site = pbs_site
    assert site.info is not None
    section = {**site.info.ini_section(), "partition": SMALL_QUEUE, "cpus": "4"}
    site.write_site("huge", **section, env_path=site.info.venv)
    with pbs_admin(site, CREATE_SMALL_QUEUE, DELETE_SMALL_QUEUE):
        result, seconds = timed(site, "--uid", "huge", "--mode", "run", "--no-browser",
                                timeout=60)  # fmt: skip
    assert result.returncode == 4, (result.stdout, result.stderr)
    assert seconds < 20, seconds
    phrase = "it is Q (Can Never Run: Insufficient amount of queue resource: ncpus"
    assert phrase in result.stderr, result.stderr
    assert "lower the request" in result.stderr and "the job was cancelled" in result.stderr
    assert "Can Never Run" in last_outcome(site)
    print(f"never-run job on pbs: {seconds:.1f} s")


def test_missing_environment_fails_the_jupyter_job_with_its_output(
    rig_site: OtherLauncher,
) -> None:
    site = rig_site
    missing = "/opt/eohpc/no-such-env"
    site.write_site("noenv", **site.info.ini_section(), env_path=missing)  # type: ignore[union-attr]
    result, seconds = timed(site, "--uid", "noenv", "--mode", "run", "--no-browser", timeout=90)
    assert result.returncode == 4, (result.stdout, result.stderr)
    assert seconds < 30, seconds
    final = {"pbs": "state F, exit code 1", "htcondor": "state COMPLETED, exit code 1"}
    assert f"ended before Jupyter was ready ({final[system_of(site)]}" in result.stderr
    assert missing in result.stderr  # the tail of the job's output
    assert "Fix: the job script exited non-zero" in result.stderr
    assert "exit code 1" in last_outcome(site)
    print(f"missing environment on {system_of(site)}: {seconds:.1f} s")


@pytest.fixture(params=SYSTEMS[1:])
def htcondor_site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OtherLauncher]:
    yield from launcher_on(request, request.param, tmp_path)


def test_removed_worker_job_ends_the_wait_for_workers(
    rig_site: OtherLauncher, tmp_path: Path
) -> None:
    """qdel on PBS, condor_rm on HTCondor, while batch mode waits for the worker. (The rig
    lists the worker jobs one qstat each: given several ids, `qstat -f -F json` prints only
    the first, which hid the worker job from this test on PBS. The launcher reports the job
    under the id qstat gives, also when dask-jobqueue's "12" of "12.eopbs" is seen gone
    first.)"""
    site = rig_site
    system = system_of(site)
    # Worker jobs whose worker never starts (they sleep for 120 s, then end), so the removal
    # comes first. `exec`: qdel's SIGTERM may reach the sleep before the job's shell, which
    # then started the worker within PBS's kill_delay, and the worker joined.
    prologue = "      job-script-prologue: ['exec sleep 120']\n"
    directory = "      local-directory: /tmp\n"
    profile_variant(site, "slow", {directory: directory + prologue})
    script = tmp_path / "hello.py"
    script.write_text("print('never runs')\n")
    proc = site.start(
        "--uid", "slow", "--mode", "batch", "--script", str(script), "--workers", "1",
        "--timeout", "200",
    )  # fmt: skip
    module = site.rig_module

    def running_worker() -> str:
        jobs = module.job_names()  # type: ignore[attr-defined]
        return next(
            (i for i, (name, state) in jobs.items()
             if name.endswith("-workers") and state in ("R", "RUNNING")), "",
        )  # fmt: skip

    try:
        read_until(proc, "waiting for 1 workers", 90)
        assert wait_until(lambda: bool(running_worker()), 60)
        worker = running_worker()
        start = time.monotonic()
        remove = {"pbs": f"qdel {worker}", "htcondor": f"condor_rm {worker}"}[system]
        module.RIG.sh(remove, user="eouser")  # type: ignore[attr-defined]
        out, err = proc.communicate(timeout=90)
        seconds = time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    ended = {"pbs": f"worker job {worker} ended F, exit code 271",
             "htcondor": f"worker job {worker} ended REMOVED"}[system]  # fmt: skip
    assert seconds < 25, seconds
    assert ended in out, out
    assert "The script did not run" in err and ended in err, err
    assert proc.returncode == 1
    assert ended in last_outcome(site)
    print(f"removed worker job on {system}: {seconds:.1f} s")


def test_stale_user_dask_config_queue_is_named_before_submitting(
    pbs_site: OtherLauncher, tmp_path: Path
) -> None:
    """A Dask file of the user's on the cluster names a PBS queue that does not exist: the
    launcher says so before anything is submitted, naming the file."""
    site = pbs_site
    info = site.info
    assert info is not None
    # no queue of the site's own: the worker jobs take the user's file's
    section = {k: v for k, v in info.ini_section().items() if k != "partition"}
    site.write_site("stale", **section, env_path=str(info.venv))
    name = f"zz-eohpc-stale-{secrets.token_hex(3)}.yaml"
    remote = f"/home/{info.user}/.config/dask/{name}"
    script = tmp_path / "hello.py"
    script.write_text("print('never runs')\n")
    with info.connection() as conn:
        conn.run("mkdir -p ~/.config/dask", hide=True, in_stream=False)
        conn.run(f"printf 'jobqueue:\\n  pbs:\\n    queue: oldq\\n' > {remote}", hide=True,
                 in_stream=False)  # fmt: skip
        try:
            result, seconds = timed(
                site, "--uid", "stale", "--mode", "batch", "--script", str(script),
                "--workers", "2", "-v", timeout=60,
            )  # fmt: skip
        finally:
            conn.run(f"rm -f {remote}", hide=True, in_stream=False)
    assert result.returncode == 4, (result.stdout, result.stderr)
    assert seconds < 15, seconds
    assert "each Dask worker job asks for queue 'oldq', which does not exist" in result.stderr
    assert "queues there: workq" in result.stderr
    assert f"'queue' in {remote} on the cluster" in result.stderr
    assert f"queue: 'oldq'  <- {remote}" in result.stderr  # -v shows the merged values
    assert not SUBMITTED.search(result.stderr)
    assert live_states(site) == []
    print(f"stale Dask file on pbs: {seconds:.1f} s")


#: How long after Jupyter answered the end of a 60 s walltime is seen: PBS's MOM checks its
#: jobs' walltime about every 10 s (a 20 s job ended after 37 s); the HTCondor rig's schedd
#: evaluates the launcher's periodic_hold every 60 s (PERIODIC_EXPR_INTERVAL); then one watch
#: interval (10 s).
WALLTIME_BOUND = {"pbs": 110, "htcondor": 150}


def test_short_walltime_warns_then_says_how_to_start_again(rig_site: OtherLauncher) -> None:
    """A one-minute Jupyter job (PBS ``-l walltime``, HTCondor ``allowed_execute_duration``):
    status shows the time left, attach warns before the end, and the end says how to start
    again."""
    site = rig_site
    system = system_of(site)
    assert site.info is not None
    site.write_site(
        "short", **{**site.info.ini_section(), "time": "00:01:00"}, env_path=str(site.info.venv)
    )
    proc = site.start("--uid", "short", "--mode", "run", "--no-browser", "--walltime-warning", "1")
    try:
        read_until(proc, "/lab?token=", 90)
        ready = time.monotonic()
        status = json.loads(site.run("--uid", "short", "--mode", "status", "--json").stdout)
        _out, err = proc.communicate(timeout=WALLTIME_BOUND[system] + 30)
        seconds = time.monotonic() - ready
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert re.fullmatch(r"0:0[01]:\d\d", status["time_left"]), status
    assert "reaches its walltime in" in err, err
    assert "reached its walltime (00:01:00)" in err and "Start again with --mode run" in err, err
    assert "Your notebooks are saved in" in err
    assert seconds < WALLTIME_BOUND[system], seconds
    assert "reached its walltime" in last_outcome(site)
    print(f"walltime on {system}: {seconds:.1f} s after Jupyter was ready")


@contextlib.contextmanager
def pbs_admin(site: OtherLauncher, change: str, undo: str) -> Iterator[None]:
    """A change of the PBS rig's queue or node as its administrator, undone on leaving."""
    rig = site.rig_module.RIG  # type: ignore[attr-defined]
    rig.sh(change)
    try:
        yield
    finally:
        rig.sh(undo, check=False)


def test_pbs_disabled_queue_refuses_the_submission(pbs_site: OtherLauncher) -> None:
    site = pbs_site
    disable = "qmgr -c 'set queue workq enabled = false'"
    with pbs_admin(site, disable, "qmgr -c 'set queue workq enabled = true'"):
        result, seconds = timed(site, "--uid", "sandbox", "--mode", "run", "--no-browser",
                                timeout=60)  # fmt: skip
    assert result.returncode == 4, (result.stdout, result.stderr)
    assert seconds < 15, seconds
    assert "qsub rejected the job: qsub: Queue is not enabled" in result.stderr, result.stderr
    assert not SUBMITTED.search(result.stderr) and live_states(site) == []
    print(f"disabled queue on pbs: {seconds:.1f} s")


@pytest.mark.parametrize(
    ("fault", "change", "undo", "phrases"),
    [
        (
            "stopped_queue",
            "qmgr -c 'set queue workq started = false'",
            "qmgr -c 'set queue workq started = true'",
            ["it is Q (Not Running: Queue not started.)", "started = false"],
        ),
        (
            "offline_node",
            "pbsnodes -o eopbs",
            "pbsnodes -r eopbs",
            ["it is Q (Not Running: Not enough free nodes available; every node is offline or "
             "down: eopbs offline)", "pbsnodes -l"],
        ),
    ],
    ids=["stopped_queue", "offline_node"],
)  # fmt: skip
def test_pbs_job_waiting_for_a_reason_that_does_not_clear_ends_the_wait(
    pbs_site: OtherLauncher, fault: str, change: str, undo: str, phrases: list[str]
) -> None:
    site = pbs_site
    try:
        with pbs_admin(site, change, undo):
            result, seconds = timed(site, "--uid", "sandbox", "--mode", "run", "--no-browser",
                                    timeout=60)  # fmt: skip
    finally:
        site.rig_module.wait_node_free()  # type: ignore[attr-defined]
    assert result.returncode == 4, (result.stdout, result.stderr)
    assert seconds < 20, seconds
    assert "cannot start" in result.stderr and "the job was cancelled" in result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr
    assert phrases[0].split("(", 1)[1][:20] in last_outcome(site)
    print(f"{fault} on pbs: {seconds:.1f} s")


def test_htcondor_job_no_slot_matches_ends_the_wait(htcondor_site: OtherLauncher) -> None:
    """Requirements no slot of the pool meets: the job stays idle with the negotiator's
    "no match found"; condor_q -better-analyze says every slot rejects it."""
    site = htcondor_site
    requirement = 'requirements = Machine == "eohpc-no-such-node"'
    directive = f"  mem: 1G\n  directives: ['{requirement}']\n"
    profile_variant(site, "nomatch", {"  mem: 1G\n": directive})
    result, seconds = timed(site, "--uid", "nomatch", "--mode", "run", "--no-browser", timeout=60)
    assert result.returncode == 4, (result.stdout, result.stderr)
    assert seconds < 20, seconds
    reason = (
        "cannot start: it is IDLE (no match found: Of 1 machines, 1 are rejected by your job's "
        "requirements; no slot matches the job's requirements)"
    )
    assert reason in result.stderr, result.stderr
    assert "the job was cancelled" in result.stderr and "condor_status" in result.stderr
    assert "rejected by your job's requirements" in last_outcome(site)
    print(f"no matching slot on htcondor: {seconds:.1f} s")


def test_htcondor_detached_session_held_at_its_walltime_ends_on_attach(
    htcondor_site: OtherLauncher,
) -> None:
    """HTCondor holds a job past its walltime and keeps it in the queue: a detached session's
    next attach ends it (removing the job) with how to start again, instead of a tunnel to a
    Jupyter that is gone, and the next run is not refused as a second live session."""
    site = htcondor_site
    assert site.info is not None
    site.write_site(
        "short", **{**site.info.ini_section(), "time": "00:01:00"}, env_path=str(site.info.venv)
    )
    started = site.run("--uid", "short", "--mode", "run", "--no-browser", "--detach", timeout=90)
    assert started.returncode == 0, started.stderr
    job = re.findall(r"submitted job (\S+) for site", started.stderr)[0]

    def held() -> bool:
        return site.rig_module.job_names().get(job, ("", ""))[1] == "HELD"  # type: ignore[attr-defined]

    assert wait_until(held, 150, 2), site.queue()
    status = json.loads(site.run("--uid", "short", "--mode", "status", "--json").stdout)
    assert status["state"] == "HELD" and "execute duration" in status["reason"], status
    result, seconds = timed(site, "--uid", "short", "--mode", "attach", "--no-browser", timeout=60)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert seconds < 15, seconds
    assert f"job {job} ended (HELD)" in result.stderr, result.stderr
    assert "reached its walltime (00:01:00)" in result.stderr
    assert "Start again with --mode run" in result.stderr
    assert "reached its walltime" in last_outcome(site)
    print(f"walltime hold ended by attach on htcondor: {seconds:.1f} s")


# ---------------------------------------------------------------- the rig's sshd restarting


@contextlib.contextmanager
def sshd_stopped(site: OtherLauncher, client_pid: int) -> Iterator[None]:
    """Kill the rig's sshd listener and the sessions of ``client_pid`` (as a restart of sshd
    on the login node would); start sshd again on leaving, also on failure."""
    chroot = site.rig_module.RIG  # type: ignore[attr-defined]
    assert site.info is not None
    pids = ssh_session_pids(client_pid, site.info.ssh_host, site.info.ssh_port, chroot.netns)
    assert pids, "found no SSH session of the launcher to cut"
    try:
        listener = pid_alive(chroot.sshd_pid)
        if listener is not None:
            os.kill(listener, signal.SIGTERM)
            wait_until(lambda: pid_alive(chroot.sshd_pid) is None, 10, 0.05)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        yield
    finally:
        chroot.start_sshd()


def test_sshd_restart_during_batch_streaming_keeps_output_and_status(
    rig_site: OtherLauncher, tmp_path: Path
) -> None:
    site = rig_site
    system = system_of(site)
    script = tmp_path / "ticks.py"
    script.write_text(
        "import sys, time\nfor i in range(20):\n    print(f'tick {i}', flush=True)\n"
        "    time.sleep(1)\nsys.exit(3)\n"
    )
    proc = site.start(
        "--uid", "sandbox", "--mode", "batch", "--script", str(script), "--workers", "1",
        "--timeout", "60",
    )  # fmt: skip
    try:
        read_until(proc, "tick 2", 120)
        start = time.monotonic()
        with sshd_stopped(site, proc.pid):
            time.sleep(6)
        out, err = proc.communicate(timeout=90)
        seconds = time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 3, (out, err)
    assert "lost the connection to" in err and "is back after" in err, err
    assert "tick 19" in (out + err) and "script exit status 3" in err
    assert seconds < 6 + 17 + 30, seconds  # the outage, the script's rest, one reconnect
    assert "script exit status 3" in last_outcome(site)
    print(f"sshd restart during batch streaming on {system}: {seconds:.1f} s to the end")


def test_sshd_restart_during_attach_reconnects_and_the_job_end_is_still_seen(
    rig_site: OtherLauncher,
) -> None:
    """attach watches the job as run does: an sshd restart on the login node is bridged, and
    the job's end afterwards (qdel, condor_rm) still ends attach."""
    site = rig_site
    system = system_of(site)
    started = site.run("--uid", "sandbox", "--mode", "run", "--no-browser", "--detach")
    assert started.returncode == 0, started.stderr
    job = re.findall(r"submitted job (\S+) for site", started.stderr)[0]
    proc = site.start("--uid", "sandbox", "--mode", "attach", "--no-browser")
    try:
        read_until(proc, "/lab?token=", 60)
        # Down for longer than one watch interval (10 s), so that a poll meets the outage.
        with sshd_stopped(site, proc.pid):
            time.sleep(12)
        time.sleep(5)  # a retry every 2 s finds sshd back
        assert proc.poll() is None, proc.communicate()
        start = time.monotonic()
        cancel = {"pbs": f"qdel {job}", "htcondor": f"condor_rm {job}"}[system]
        site.rig_module.RIG.sh(cancel, user="eouser")  # type: ignore[attr-defined]
        out, err = proc.communicate(timeout=60)
        seconds = time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        if live_states(site):
            site.run("--uid", "sandbox", "--mode", "stop", timeout=60)
    assert "lost the connection to" in err, err
    back = re.search(r"is back after (\d+)s", err)
    assert back and int(back.group(1)) < 12 + 2 + 10, err  # the outage, a retry, one connect
    assert "unreachable for" not in err, err
    # a watch interval, one status query; on PBS the job stays E (exiting) until its MOM has
    # ended its processes: SIGTERM, then SIGKILL after the queue's kill_delay (10 s)
    assert seconds < {"pbs": 10 + 10 + 10, "htcondor": 10 + 10}[system], seconds
    ended = {"pbs": f"job {job} ended (F)", "htcondor": f"job {job} ended (REMOVED)"}[system]
    assert ended in err, err
    assert proc.returncode == 1, (out, err)
    assert ended in last_outcome(site)
    print(f"sshd restart during attach on {system}: end seen {seconds:.1f} s after the cancel")


def test_login_node_down_longer_than_the_bound_leaves_the_job_and_attach_continues(
    rig_site: OtherLauncher,
) -> None:
    site = rig_site
    system = system_of(site)
    proc = site.start("--uid", "sandbox", "--mode", "run", "--no-browser", "--reconnect-for", "5")
    try:
        read_until(proc, "/lab?token=", 90)
        with sshd_stopped(site, proc.pid):
            start = time.monotonic()
            out, err = proc.communicate(timeout=60)
            seconds = time.monotonic() - start
        assert proc.returncode == 3, (out, err)
        assert seconds < 5 + 10 + 20, seconds  # the bound, a watch interval, one connect
        assert err.count("keeps running; --mode attach reconnects") == 1, err
        assert live_states(site) == ["sandbox"]
        attach = site.run(
            "--uid", "sandbox", "--mode", "attach", "--no-browser", "--detach", timeout=90
        )
        assert attach.returncode == 0, attach.stderr
        assert "Jupyter is ready" in attach.stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        site.run("--uid", "sandbox", "--mode", "stop", timeout=60)
    assert live_states(site) == []
    print(f"login node down on {system}: run gave up {seconds:.1f} s after the outage began")


# ---------------------------------------------------------------- the job's own failures


def test_jupyter_exiting_at_start_fails_the_job_with_its_output(rig_site: OtherLauncher) -> None:
    """The wrapper's Jupyter exits at once (an option it does not know): the job ends and the
    wait ends with its state and the tail of its output, not after --timeout."""
    site = rig_site
    system = system_of(site)
    profile_variant(
        site, "badjupyter",
        {"jupyter:\n  app: lab\n": "jupyter:\n  app: lab\n  args: [--eohpc-no-such-option]\n"},
    )  # fmt: skip
    result, seconds = timed(
        site, "--uid", "badjupyter", "--mode", "run", "--no-browser", timeout=120
    )
    assert result.returncode == 4, (result.stdout, result.stderr)
    assert seconds < 30, seconds
    final = {"pbs": "state F, exit code 2", "htcondor": "state COMPLETED, exit code 2"}[system]
    assert f"ended before Jupyter was ready ({final}" in result.stderr, result.stderr
    assert "unrecognized arguments: --eohpc-no-such-option" in result.stderr  # the output's tail
    assert "Fix: the job script exited non-zero" in result.stderr
    assert "unrecognized arguments" in last_outcome(site)
    print(f"Jupyter exiting at start on {system}: {seconds:.1f} s")


def test_script_that_exits_1_gives_its_status(rig_site: OtherLauncher, tmp_path: Path) -> None:
    site = rig_site
    system = system_of(site)
    script = tmp_path / "fails.py"
    script.write_text("import sys\nprint('about to fail', flush=True)\nsys.exit(1)\n")
    result, seconds = timed(
        site, "--uid", "sandbox", "--mode", "batch", "--script", str(script), "--workers", "1",
        "--timeout", "60", timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert seconds < 60, seconds
    assert "about to fail" in result.stdout
    assert "script exit status 1" in result.stderr
    assert "script exit status 1" in last_outcome(site)
    print(f"script exit 1 on {system}: {seconds:.1f} s")


def test_pbs_queue_and_node_state_is_restored(pbs_site: OtherLauncher) -> None:
    """The matrix leaves the PBS rig as it found it."""
    chroot = pbs_site.rig_module.RIG  # type: ignore[attr-defined]
    queue = json.loads(chroot.sh("qstat -Q -f -F json workq").stdout)["Queue"]["workq"]
    assert queue["enabled"] == "True" and queue["started"] == "True", queue
    assert SMALL_QUEUE not in chroot.sh("qstat -Q").stdout
    pbs_site.rig_module.wait_node_free(30)  # type: ignore[attr-defined]
