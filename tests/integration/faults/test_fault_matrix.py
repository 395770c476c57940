"""The fault matrix: one fault per scenario, injected on the real rig of each batch system
(SLURM's two-namespace rig, the PBS rig, the HTCondor rig; the ``site`` fixture). Each row
asserts that the launcher returns within a stated bound (seconds, not its generic timeout),
names the cause in the system's own words, leaves no job, and that its saved state says what
happened. A fault a system cannot have is a row skipped saying why (``absent_on``).

| fault | SLURM | PBS | HTCondor |
|---|---|---|---|
| Jupyter job waiting for ever: queue stopped | partition down | ``started = false`` | - |
| Jupyter job waiting for ever: node out of service | node down | ``pbsnodes -o`` | - (1) |
| Jupyter job held | - | ``-h`` | ``hold = true`` |
| more CPUs, worker memory than any node (slot) has | test_fit.py | refused | refused |
| a request that can never run | - | "Can Never Run" | no slot matches |
| missing environment, Jupyter exiting at start | yes | yes | yes |
| a stale Dask file naming a queue | partition | queue | - (no queue key) |
| a script exiting 1 | yes | yes | yes |
| a worker job removed while batch mode waits | ``scancel`` | ``qdel`` | ``condor_rm`` |
| a short walltime: warning, end, how to start again | yes | yes | yes |
| a detached session's job held at its walltime | - (ended) | - (ended) | held |
| its queue disabled (the submission refused) | - | ``enabled = false`` | - |
| sshd restarting during batch streaming, during attach | yes | yes | yes |
| the login node down longer than ``--reconnect-for`` | yes | yes | yes |
| a running session put back in the queue | node down | ``qrerun`` | ``condor_vacate_job`` |

(1) ``condor_off -startd`` leaves the job idle: the wait goes on. An HTCondor pool has no
queues.

Rig changes (partition, queue, node, sshd) are undone in ``finally`` blocks; the last scenario
checks that the rigs' queues and nodes are as they were. The helpers are in
tests/support/faults.py.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest

from tests.cluster import rig
from tests.support.faults import (
    SUBMITTED,
    assert_ended,
    job_ids,
    live_states,
    node_down,
    partition_down,
    pbs_admin,
    pbs_node_change,
    scontrol,
    sshd_stopped,
    timed,
)
from tests.support.process_output import URL_RE, StreamLines, read_until
from tests.support.rig_sites import OtherLauncher, RigSite
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(300)]

absent_on = pytest.mark.absent_on
NO_QUEUES = "an HTCondor pool has no queues"


def chroot_site(site: RigSite) -> OtherLauncher:
    """The PBS or HTCondor site, whose rig runs in a Debian root (for the rows only those
    systems have)."""
    assert isinstance(site, OtherLauncher)
    return site


# ---------------------------------------------------------------- the Jupyter job at its start


@dataclass(frozen=True)
class Pending:
    """A fault under which the Jupyter job waits for ever, as one batch system has it."""

    inject: Callable[[RigSite], AbstractContextManager[None]]
    #: What the launcher's message says, and what its saved outcome says.
    phrases: tuple[str, ...]
    outcome: str


PENDING_FOR_EVER = {
    "queue_stopped": {
        "slurm": Pending(
            lambda site: partition_down(site.info),  # type: ignore[arg-type]
            ("PartitionDown", "partition is down"),
            "PartitionDown",
        ),
        "pbs": Pending(
            lambda site: pbs_node_change(
                chroot_site(site),
                "qmgr -c 'set queue workq started = false'",
                "qmgr -c 'set queue workq started = true'",
            ),
            ("it is Q (Not Running: Queue not started.)", "started = false"),
            "Not Running: Queue n",
        ),
    },
    "node_down": {
        "slurm": Pending(
            lambda site: node_down(site.info),  # type: ignore[arg-type]
            ("ReqNodeNotAvail", "sinfo -R"),
            "ReqNodeNotAvail",
        ),
        "pbs": Pending(
            lambda site: pbs_node_change(
                chroot_site(site), "pbsnodes -o eopbs", "pbsnodes -r eopbs"
            ),
            (
                "it is Q (Not Running: Not enough free nodes available; every node is offline "
                "or down: eopbs offline)",
                "pbsnodes -l",
            ),
            "Not Running: Not eno",
        ),
    },
}


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param("queue_stopped", marks=absent_on(htcondor=NO_QUEUES)),
        pytest.param(
            "node_down",
            marks=absent_on(
                htcondor="a startd turned off (condor_off -startd) leaves the job idle with "
                "nothing that says it never starts: the wait goes on"
            ),
        ),
    ],
)
def test_jupyter_job_pending_for_ever_ends_the_wait(site: RigSite, fault: str) -> None:
    row = PENDING_FOR_EVER[fault][site.system]
    with row.inject(site):
        result, seconds = timed(site, "--uid", "sandbox", "--mode", "run", "--no-browser",
                                timeout=60)  # fmt: skip
    assert result.returncode == 4, (result.stdout, result.stderr)
    assert seconds < 20, seconds
    assert "cannot start" in result.stderr and "the job was cancelled" in result.stderr
    for phrase in row.phrases:
        assert phrase in result.stderr, result.stderr
    assert site.jobs_gone(job_ids(result.stderr))
    assert_ended(site, row.outcome)
    print(f"{fault} on {site.system}: {seconds:.1f} s")


#: A directive that submits the Jupyter job held, by batch system.
HOLD = {"pbs": "-h", "htcondor": "hold = true"}
#: The hold reason each system gives such a job, and the fix the launcher names.
HELD = {
    "pbs": ("it is H (held (user hold))", "qrls"),
    "htcondor": ("it is HELD (submitted on hold at user's request)", "condor_release"),
}


@absent_on(slurm="no SLURM row yet (a job submitted with sbatch --hold waits as JobHeldUser)")
def test_held_jupyter_job_ends_the_wait_with_its_reason(site: RigSite) -> None:
    system = site.system
    site.profile_variant("held", {"  mem: 1G\n": f"  mem: 1G\n  directives: ['{HOLD[system]}']\n"})
    result, seconds = timed(site, "--uid", "held", "--mode", "run", "--no-browser", timeout=60)
    assert result.returncode == 4, (result.stdout, result.stderr)
    assert seconds < 20, seconds
    reason, fix = HELD[system]
    assert "cannot start" in result.stderr and "the job was cancelled" in result.stderr
    assert reason in result.stderr and fix in result.stderr, result.stderr
    assert_ended(site, reason)
    print(f"held job on {system}: {seconds:.1f} s")


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
IN_TEST_FIT = "SLURM's rows are in tests/integration/launcher/test_fit.py"


def newest_job(site: RigSite) -> str:
    chroot = chroot_site(site).rig_module.RIG  # type: ignore[attr-defined]
    return str(chroot.sh(NEWEST_JOB[site.system], check=False).stdout.strip())


def refused_before_submitting(site: RigSite, *args: str) -> tuple[str, float]:
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


@absent_on(slurm=IN_TEST_FIT)
def test_jupyter_job_larger_than_every_node_is_refused_before_submitting(site: RigSite) -> None:
    """64 CPUs on a rig whose one node (slot) has 8: refused at once, naming the node and the
    platforms.ini key, with no job created (on PBS it would have waited as "Can Never Run",
    on HTCondor idle with no match)."""
    system = site.system
    assert site.info is not None
    site.write_site("huge", **{**site.info.ini_section(), "cpus": "64"}, env_path=site.info.venv)
    line, seconds = refused_before_submitting(
        site, "--uid", "huge", "--mode", "run", "--no-browser"
    )
    assert "the Jupyter job asks for 64 CPUs and 1024 MiB" in line, line
    assert LARGEST[system] in line and "Lower 'cpus' in platforms.ini [huge]" in line, line
    assert "'mem'" not in line
    print(f"Jupyter job too large on {system}: refused in {seconds:.1f} s")


@absent_on(slurm=IN_TEST_FIT)
def test_worker_jobs_larger_than_every_node_are_refused_before_batch_submits(
    site: RigSite, tmp_path: Path
) -> None:
    """Worker jobs of 64 GiB on a rig whose node (slot) has 16: batch mode refuses before the
    batch job is submitted, naming the profile's key."""
    system = site.system
    site.profile_variant("fat", {"      memory: 1GiB\n": "      memory: 64GiB\n"})
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


def never_runs_on_pbs(site: RigSite) -> AbstractContextManager[None]:
    """4 CPUs fit the node, but the queue has 2 for all its jobs: PBS's scheduler says "Can
    Never Run" after qsub (the size check reads nodes and resources_max, not a queue's
    resources_available)."""
    assert site.info is not None
    section = {**site.info.ini_section(), "partition": SMALL_QUEUE, "cpus": "4"}
    site.write_site("never", **section, env_path=site.info.venv)
    return pbs_admin(chroot_site(site), CREATE_SMALL_QUEUE, DELETE_SMALL_QUEUE)


def never_runs_on_htcondor(site: RigSite) -> AbstractContextManager[None]:
    """Requirements no slot of the pool meets: the job stays idle with the negotiator's "no
    match found"; condor_q -better-analyze says every slot rejects it."""
    requirement = 'requirements = Machine == "eohpc-no-such-node"'
    directive = f"  mem: 1G\n  directives: ['{requirement}']\n"
    site.profile_variant("never", {"  mem: 1G\n": directive})
    return contextlib.nullcontext()


#: How each system has a request that can never run: the site "never", what the launcher
#: says (besides "the job was cancelled"), and what its saved outcome says.
NEVER_RUNS = {
    "pbs": Pending(
        never_runs_on_pbs,
        ("it is Q (Can Never Run: Insufficient amount of queue resource: ncpus",
         "lower the request"),
        "Can Never Run",
    ),
    "htcondor": Pending(
        never_runs_on_htcondor,
        ("cannot start: it is IDLE (no match found: Of 1 machines, 1 are rejected by your job's "
         "requirements; no slot matches the job's requirements)", "condor_status"),
        "rejected by your job's requirements",
    ),
}  # fmt: skip


@absent_on(
    slurm="no SLURM row yet (the SLURM rows of a job that waits for ever are "
    "test_jupyter_job_pending_for_ever_ends_the_wait's)"
)
def test_request_that_can_never_run_ends_the_wait(site: RigSite) -> None:
    row = NEVER_RUNS[site.system]
    with row.inject(site):
        result, seconds = timed(site, "--uid", "never", "--mode", "run", "--no-browser",
                                timeout=60)  # fmt: skip
    assert result.returncode == 4, (result.stdout, result.stderr)
    assert seconds < 20, seconds
    for phrase in row.phrases:
        assert phrase in result.stderr, result.stderr
    assert "the job was cancelled" in result.stderr
    assert_ended(site, row.outcome)
    print(f"never-run job on {site.system}: {seconds:.1f} s")


def test_missing_environment_fails_the_jupyter_job_with_its_output(site: RigSite) -> None:
    assert site.info is not None
    missing = str(PurePosixPath(site.info.venv).parent / "no-such-env")
    site.write_site("noenv", **site.info.ini_section(), env_path=missing)
    result, seconds = timed(site, "--uid", "noenv", "--mode", "run", "--no-browser", timeout=90)
    assert result.returncode == 4, (result.stdout, result.stderr)
    assert seconds < 30, seconds
    final = {
        "slurm": "state FAILED",
        "pbs": "state F, exit code 1",
        "htcondor": "state COMPLETED, exit code 1",
    }[site.system]
    assert f"ended before Jupyter was ready ({final}" in result.stderr
    assert missing in result.stderr  # the tail of the job's output
    assert "Fix: the job script exited non-zero" in result.stderr
    assert site.jobs_gone(job_ids(result.stderr))
    outcome = {"slurm": "state FAILED", "pbs": "exit code 1", "htcondor": "exit code 1"}
    assert_ended(site, outcome[site.system])
    print(f"missing environment on {site.system}: {seconds:.1f} s")


def test_jupyter_exiting_at_start_fails_the_job_with_its_output(site: RigSite) -> None:
    """The wrapper's Jupyter exits at once (an option it does not know): the job ends and the
    wait ends with its state and the tail of its output, not after --timeout."""
    system = site.system
    site.profile_variant(
        "badjupyter",
        {"jupyter:\n  app: lab\n": "jupyter:\n  app: lab\n  args: [--eohpc-no-such-option]\n"},
    )
    result, seconds = timed(
        site, "--uid", "badjupyter", "--mode", "run", "--no-browser", timeout=120
    )
    assert result.returncode == 4, (result.stdout, result.stderr)
    assert seconds < 30, seconds
    final = {
        "slurm": "state FAILED, exit code 2:0",
        "pbs": "state F, exit code 2",
        "htcondor": "state COMPLETED, exit code 2",
    }[system]
    assert f"ended before Jupyter was ready ({final}" in result.stderr, result.stderr
    assert "unrecognized arguments: --eohpc-no-such-option" in result.stderr  # the output's tail
    assert "Fix: the job script exited non-zero" in result.stderr
    assert site.jobs_gone(job_ids(result.stderr))
    outcome = {"slurm": ("state FAILED",), "pbs": (), "htcondor": ()}[system]
    assert_ended(site, *outcome, "unrecognized arguments")
    print(f"Jupyter exiting at start on {system}: {seconds:.1f} s")


# ---------------------------------------------------------------- batch mode and its workers


#: The queue a stale Dask file of the user's names, and how the launcher says it is not there.
STALE_QUEUE = {
    "slurm": ("oldgpu", ("partition 'oldgpu', which does not exist",)),
    "pbs": (
        "oldq",
        ("each Dask worker job asks for queue 'oldq', which does not exist",
         "queues there: workq"),
    ),
}  # fmt: skip


@absent_on(htcondor=f"{NO_QUEUES} (dask-jobqueue's htcondor settings have no 'queue' key)")
def test_stale_user_dask_config_queue_is_named_before_submitting(
    site: RigSite, tmp_path: Path
) -> None:
    """A Dask file of the user's on the cluster names a queue (a SLURM partition) that does not
    exist: the launcher says so before anything is submitted, naming the file."""
    system = site.system
    info = site.info
    assert info is not None
    queue, phrases = STALE_QUEUE[system]
    # no queue of the site's own: the worker jobs take the user's file's
    section = {k: v for k, v in info.ini_section().items() if k != "partition"}
    site.write_site("stale", **section, env_path=str(info.venv))
    name = f"zz-eohpc-stale-{secrets.token_hex(3)}.yaml"
    remote = f"/home/{info.user}/.config/dask/{name}"
    script = tmp_path / "hello.py"
    script.write_text("print('never runs')\n")
    with info.connection() as conn:
        conn.run("mkdir -p ~/.config/dask", hide=True, in_stream=False)
        conn.run(f"printf 'jobqueue:\\n  {system}:\\n    queue: {queue}\\n' > {remote}",
                 hide=True, in_stream=False)  # fmt: skip
        try:
            result, seconds = timed(
                site, "--uid", "stale", "--mode", "batch", "--script", str(script),
                "--workers", "2", "-v", timeout=60,
            )  # fmt: skip
        finally:
            conn.run(f"rm -f {remote}", hide=True, in_stream=False)
    assert result.returncode == 4, (result.stdout, result.stderr)
    assert seconds < 15, seconds
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr
    assert f"'queue' in {remote} on the cluster" in result.stderr
    assert f"queue: '{queue}'  <- {remote}" in result.stderr  # -v shows the merged values
    assert not SUBMITTED.search(result.stderr)
    assert live_states(site) == []
    print(f"stale Dask file on {system}: {seconds:.1f} s")


def test_script_that_exits_1_gives_its_status(site: RigSite, tmp_path: Path) -> None:
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
    assert site.jobs_gone(job_ids(result.stderr))
    assert_ended(site, "script exit status 1")
    print(f"script exit 1 on {site.system}: {seconds:.1f} s")


def test_removed_worker_job_ends_the_wait_for_workers(site: RigSite, tmp_path: Path) -> None:
    """scancel on SLURM, qdel on PBS, condor_rm on HTCondor, while batch mode waits for the
    worker. (The PBS rig lists the worker jobs one qstat each: given several ids, `qstat -f -F
    json` prints only the first, which hid the worker job from this test on PBS. The launcher
    reports the job under the id qstat gives, also when dask-jobqueue's "12" of "12.eopbs" is
    seen gone first.)"""
    system = site.system
    # Worker jobs whose worker never starts (they sleep for 120 s, then end), so the removal
    # comes first. `exec`: qdel's SIGTERM may reach the sleep before the job's shell, which
    # then started the worker within PBS's kill_delay, and the worker joined.
    prologue = "      job-script-prologue: ['exec sleep 120']\n"
    directory = "      local-directory: /tmp\n"
    site.profile_variant("slow", {directory: directory + prologue})
    script = tmp_path / "hello.py"
    script.write_text("print('never runs')\n")
    proc = site.start(
        "--uid", "slow", "--mode", "batch", "--script", str(script), "--workers", "1",
        "--timeout", "200",
    )  # fmt: skip
    try:
        read_until(proc, "waiting for 1 workers", 90)
        assert wait_until(lambda: bool(site.running_worker()), 60)
        worker = site.running_worker()
        start = time.monotonic()
        site.cancel(worker)
        out, err = proc.communicate(timeout=90)
        seconds = time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    ended = {
        "slurm": f"worker job {worker} ended CANCELLED",
        "pbs": f"worker job {worker} ended F, exit code 271",
        "htcondor": f"worker job {worker} ended REMOVED",
    }[system]
    assert seconds < {"slurm": 20, "pbs": 25, "htcondor": 25}[system], seconds
    assert ended in out, out
    assert "The script did not run" in err and ended in err, err
    assert proc.returncode == 1
    assert site.jobs_gone([worker, *job_ids(err)])
    assert_ended(site, ended)
    print(f"removed worker job on {system}: {seconds:.1f} s")


# ---------------------------------------------------------------- walltime


#: How long after Jupyter answered the end of a 60 s walltime is seen: SLURM enforces it within
#: a minute; PBS's MOM checks its jobs' walltime about every 10 s (a 20 s job ended after
#: 37 s); the HTCondor rig's schedd evaluates the launcher's periodic_hold every 60 s
#: (PERIODIC_EXPR_INTERVAL); then one watch interval (10 s).
WALLTIME_BOUND = {"slurm": 130, "pbs": 110, "htcondor": 150}
#: The time left that status shows soon after the start: squeue's M:SS under an hour, H:MM:SS.
TIME_LEFT = {"slurm": r"[01]:\d\d", "pbs": r"0:0[01]:\d\d", "htcondor": r"0:0[01]:\d\d"}


def test_short_walltime_warns_then_says_how_to_start_again(site: RigSite) -> None:
    """A one-minute Jupyter job (SLURM ``--time``, PBS ``-l walltime``, HTCondor
    ``allowed_execute_duration``): status shows the time left, attach warns before the end,
    and the end says how to start again."""
    system = site.system
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
    assert re.fullmatch(TIME_LEFT[system], status["time_left"]), status
    assert "reaches its walltime in" in err, err
    if "ended (CANCELLED)" in err:  # on SLURM's shared rig another session's fixture cancelled it
        pytest.skip("the job was cancelled by someone else before its walltime ended")
    assert "reached its walltime (00:01:00)" in err and "Start again with --mode run" in err, err
    assert "Your notebooks are saved in" in err
    assert seconds < WALLTIME_BOUND[system], seconds
    assert_ended(site, "reached its walltime")
    print(f"walltime on {system}: {seconds:.1f} s after Jupyter was ready")


@absent_on(
    slurm="SLURM ends a job at its walltime (TIMEOUT), it does not hold it",
    pbs="PBS ends a job at its walltime, it does not hold it",
)
def test_detached_session_held_at_its_walltime_ends_on_attach(site: RigSite) -> None:
    """HTCondor holds a job past its walltime and keeps it in the queue: a detached session's
    next attach ends it (removing the job) with how to start again, instead of a tunnel to a
    Jupyter that is gone, and the next run is not refused as a second live session."""
    assert site.info is not None
    site.write_site(
        "short", **{**site.info.ini_section(), "time": "00:01:00"}, env_path=str(site.info.venv)
    )
    started = site.run("--uid", "short", "--mode", "run", "--no-browser", "--detach", timeout=90)
    assert started.returncode == 0, started.stderr
    job = job_ids(started.stderr)[0]

    def held() -> bool:
        return chroot_site(site).rig_module.job_names().get(job, ("", ""))[1] == "HELD"  # type: ignore[attr-defined]

    assert wait_until(held, 150, 2), site.queue()
    status = json.loads(site.run("--uid", "short", "--mode", "status", "--json").stdout)
    assert status["state"] == "HELD" and "execute duration" in status["reason"], status
    result, seconds = timed(site, "--uid", "short", "--mode", "attach", "--no-browser", timeout=60)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert seconds < 15, seconds
    assert f"job {job} ended (HELD)" in result.stderr, result.stderr
    assert "reached its walltime (00:01:00)" in result.stderr
    assert "Start again with --mode run" in result.stderr
    assert_ended(site, "reached its walltime")
    print(f"walltime hold ended by attach on {site.system}: {seconds:.1f} s")


# ---------------------------------------------------------------- a queue that refuses jobs


@absent_on(
    slurm="no SLURM row yet (a partition in state INACTIVE or DRAIN refuses sbatch)",
    htcondor=NO_QUEUES,
)
def test_disabled_queue_refuses_the_submission(site: RigSite) -> None:
    disable = "qmgr -c 'set queue workq enabled = false'"
    with pbs_admin(chroot_site(site), disable, "qmgr -c 'set queue workq enabled = true'"):
        result, seconds = timed(site, "--uid", "sandbox", "--mode", "run", "--no-browser",
                                timeout=60)  # fmt: skip
    assert result.returncode == 4, (result.stdout, result.stderr)
    assert seconds < 15, seconds
    assert "qsub rejected the job: qsub: Queue is not enabled" in result.stderr, result.stderr
    assert not SUBMITTED.search(result.stderr) and live_states(site) == []
    print(f"disabled queue on {site.system}: {seconds:.1f} s")


# ---------------------------------------------------------------- sshd on the login node


def test_sshd_restart_during_batch_streaming_keeps_output_and_status(
    site: RigSite, tmp_path: Path
) -> None:
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
    assert_ended(site, "script exit status 3")
    print(f"sshd restart during batch streaming on {site.system}: {seconds:.1f} s to the end")


def test_sshd_restart_during_attach_reconnects_and_the_job_end_is_still_seen(
    site: RigSite,
) -> None:
    """attach watches the job with the same code as run: an sshd restart on the login node is
    bridged (one line lost, one line back), and the job's end afterwards (scancel, qdel,
    condor_rm) still ends attach."""
    system = site.system
    started = site.run("--uid", "sandbox", "--mode", "run", "--no-browser", "--detach")
    assert started.returncode == 0, started.stderr
    job = job_ids(started.stderr)[0]
    proc = site.start("--uid", "sandbox", "--mode", "attach", "--no-browser")
    try:
        read_until(proc, "/lab?token=", 60)
        # Down for longer than one watch interval (10 s), so that a poll meets the outage.
        with sshd_stopped(site, proc.pid):
            time.sleep(12)
        time.sleep(5)  # a retry every 2 s finds sshd back
        assert proc.poll() is None, proc.communicate()
        start = time.monotonic()
        site.cancel(job)
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
    assert seconds < {"slurm": 10 + 10, "pbs": 10 + 10 + 10, "htcondor": 10 + 10}[system], seconds
    state = {"slurm": "CANCELLED", "pbs": "F", "htcondor": "REMOVED"}[system]
    ended = f"job {job} ended ({state})"
    assert ended in err, err
    assert proc.returncode == 1, (out, err)
    assert site.jobs_gone([job])
    assert_ended(site, ended)
    print(f"sshd restart during attach on {system}: end seen {seconds:.1f} s after the cancel")


def test_login_node_down_longer_than_the_bound_leaves_the_job_and_attach_continues(
    site: RigSite,
) -> None:
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
    print(f"login node down on {site.system}: run gave up {seconds:.1f} s after the outage began")


# ------------------------------------------------------- a running job put back in the queue


@contextlib.contextmanager
def slurm_node_down(site: RigSite, job_id: str) -> Iterator[None]:
    """The compute node marked DOWN: SLURM requeues its job (and starts it again after its
    BeginTime delay, the node back in service)."""
    info = site.info
    assert info is not None
    node = info.compute_hostname
    scontrol(info, "update", f"nodename={node}", "state=down", "reason=eo-hpc node failure")
    try:
        yield
    finally:
        # SLURM may have returned the responding node to service already (ReturnToService)
        resume = ("update", f"nodename={node}", "state=resume")
        rig.run(rig.slurm_cmd(info, "scontrol", *resume), check=False)


@contextlib.contextmanager
def pbs_rerun(site: RigSite, job_id: str) -> Iterator[None]:
    """``qrerun`` by the administrator: PBS kills the job and queues it again."""
    chroot_site(site).rig_module.RIG.sh(f"qrerun {job_id}")  # type: ignore[attr-defined]
    yield


@contextlib.contextmanager
def htcondor_vacate(site: RigSite, job_id: str) -> Iterator[None]:
    """``condor_vacate_job``: the job is evicted from its slot and waits to be matched again."""
    module = chroot_site(site).rig_module
    module.RIG.sh(f"condor_vacate_job {job_id}", user=module.CLUSTER_USER)  # type: ignore[attr-defined]
    yield


@dataclass(frozen=True)
class Requeue:
    """A running job put back in the queue, as one batch system does it."""

    inject: Callable[[RigSite, str], AbstractContextManager[None]]
    #: What the launcher's message says the job's state is, as the batch system names it.
    state_words: re.Pattern[str]
    #: Seconds until the job runs again at the most.
    runs_again_within: float


REQUEUE = {
    # SLURM starts a requeued job again after a delay of its own (BeginTime, 2 minutes).
    "slurm": Requeue(slurm_node_down, re.compile(r"\(PENDING"), 300),
    # PBS queues it (Q) and its scheduler may start it again before the next query (R since).
    "pbs": Requeue(pbs_rerun, re.compile(r"\(Q\b|\(R since "), 120),
    # HTCondor's job waits (IDLE) until the negotiator matches it again (RUNNING since).
    "htcondor": Requeue(htcondor_vacate, re.compile(r"\(IDLE\b|\(RUNNING since "), 180),
}


@pytest.mark.timeout(480)
def test_running_session_put_back_in_the_queue_is_said_at_once_and_reconnected(
    site: RigSite,
) -> None:
    """The batch system puts a running Jupyter job back in the queue (SLURM: its node goes
    DOWN; PBS: qrerun; HTCondor: condor_vacate_job). run says so within a watch interval,
    waits, and reconnects the same local URL when the job runs again."""
    from launcher.connection.readiness import api_status

    fault = REQUEUE[site.system]
    proc = site.start("--uid", "sandbox", "--mode", "run", "--no-browser")
    assert proc.stdout is not None and proc.stderr is not None
    out, err = StreamLines(proc.stdout), StreamLines(proc.stderr)
    try:
        first = out.wait_for("/lab?token=", 90)
        match = URL_RE.search(out.lines[first])
        assert match is not None
        port, token = int(match.group(1)), match.group(2)
        assert api_status(port, token) == 200
        (job_id,) = job_ids(err.text)
        with fault.inject(site, job_id):
            # From the moment the job is back in the queue (qrerun returns once the job's
            # processes were killed, up to PBS's kill_delay later).
            start = time.monotonic()
            err.wait_for("put it back in the queue", 30)
            seconds = time.monotonic() - start
        assert seconds < 10 + 10, seconds  # a watch interval and one status query
        said = err.text
        assert "node failure or a preemption" in said and fault.state_words.search(said), said
        assert "Waiting to reconnect; Ctrl-C cancels" in said
        again = out.wait_for("/lab?token=", fault.runs_again_within, after=first + 1)
        assert out.lines[again].strip() == out.lines[first].strip()  # the same local URL
        assert wait_until(lambda: api_status(port, token) == 200, 30)
        assert proc.poll() is None
    finally:
        if proc.poll() is None:
            proc.send_signal(2)
            proc.wait(timeout=60)
    assert proc.returncode == 130, err.text
    assert "cancelled job" in err.text
    assert site.jobs_gone(job_ids(err.text))
    print(f"{site.system}: a running session put back in the queue: said after {seconds:.1f} s")


# ---------------------------------------------------------------- the rigs as they were


def slurm_partition_and_node_restored(site: RigSite) -> None:
    info = site.info
    assert info is not None
    out = rig.run(rig.slurm_cmd(info, "scontrol", "show", "partition", "-o", info.partition))
    assert "State=UP" in out.stdout
    rig.wait_node_idle(info, 30)
    scontrol(info, "show", "node", info.compute_hostname)


def pbs_queue_and_node_restored(site: RigSite) -> None:
    module = chroot_site(site).rig_module
    chroot = module.RIG  # type: ignore[attr-defined]
    queue = json.loads(chroot.sh("qstat -Q -f -F json workq").stdout)["Queue"]["workq"]
    assert queue["enabled"] == "True" and queue["started"] == "True", queue
    assert SMALL_QUEUE not in chroot.sh("qstat -Q").stdout
    module.wait_node_free(30)  # type: ignore[attr-defined]


RESTORED = {"slurm": slurm_partition_and_node_restored, "pbs": pbs_queue_and_node_restored}


@absent_on(htcondor="the matrix changes no queue or node of the HTCondor pool")
def test_rig_state_is_restored(site: RigSite) -> None:
    """The matrix leaves each rig's queues and nodes as it found them."""
    RESTORED[site.system](site)
