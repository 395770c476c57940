"""A cluster site: jobs of its batch system, their run directories, output and tunnels.

Everything here goes through the site's one :class:`~launcher.connection.ssh.SSHLink`. Nothing
here saves or forgets a session: :mod:`launcher.jobs.lifecycle` owns the saved state.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
import secrets
import shlex
import tarfile
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, TypeVar

from eoshared.batchsystem import JobSpec, JobStatus, batch_system_class
from eoshared.batchsystem.units import format_seconds, parse_slurm_time
from eoshared.errors import (
    AuthenticationError,
    JobFailedError,
    JupyterTimeoutError,
    KeyFileError,
    LauncherError,
    LinkLostError,
    SSHError,
)
from eoshared.scheduler import local_copy
from eoshared.scheduler.contract import SchedulerInfo, parse_address
from launcher.config import Site
from launcher.connection.readiness import new_token, wait_for_api
from launcher.connection.ssh import SSHLink
from launcher.connection.tunnel import Tunnel
from launcher.session.jobsite import (
    CONNECTION_FILE,
    POLL_SECONDS,
    TAIL_LINES,
    ProblemCallback,
    StatusCallback,
)
from launcher.session.options import RECONNECT_SECONDS
from launcher.session.state import SessionState
from launcher.sites import fit
from launcher.sites.jobscript import (
    DASK_DIR,
    JUPYTER_CONFIG_NAME,
    WRAPPER_NAME,
    dask_yaml,
    jupyter_config,
    render,
    template_text,
)

if TYPE_CHECKING:
    from launcher.session.kinds import JobKind
    from launcher.sites.dask_sources import Merged

#: How often the login node looks for a file the job writes (connection or scheduler file).
FILE_CHECK_SECONDS = 0.05
WATCH_SECONDS = 10.0
RUNS_DIR = ".eohpc/runs"
#: How often a lost connection to the login node is retried (for RECONNECT_SECONDS).
RECONNECT_RETRY_SECONDS = 2.0
T = TypeVar("T")
log = logging.getLogger(__name__)


def private_tar(files: Mapping[str, str]) -> bytes:
    """A tar archive of ``files`` (relative path -> text): files 0600, directories 0700."""
    buffer = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        dirs = sorted({str(PurePosixPath(n).parent) for n in files} - {"."})
        for name in dirs:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o700, now
            tar.addfile(info)
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o600, now
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def time_left_seconds(text: str) -> int | None:
    """Seconds of a batch system's time-left field ("29:41", "1-02:00:00"); None when it
    is not a time (unlimited, not known)."""
    try:
        return parse_slurm_time(text) if text and text[0].isdigit() else None
    except ValueError:
        return None


class RemoteSite:
    """A site's login node and batch system, reached through one SSH link (a
    :class:`~launcher.session.jobsite.JobSite`)."""

    def __init__(self, config: Site, link: SSHLink) -> None:
        self.config = config
        self.link = link
        self.batch = batch_system_class(config.profile.batch_system)(link.run)
        #: Seconds a lost connection is retried by the waits and watches (see persist).
        self.reconnect_for = RECONNECT_SECONDS

    def kind(self, cls: type) -> JobKind:
        """A job of kind ``cls`` as this site runs it: a cluster site runs every kind."""
        kind: JobKind = cls(self)
        return kind

    def prepare(self, check: Callable[[], None]) -> None:
        """Log in here (a passphrase or second factor is asked on this thread), then ask for
        the home directory the run directory goes in while ``check`` runs: one round trip
        fewer before the job is submitted."""
        self.link.reconnect()
        with ThreadPoolExecutor(1) as pool:
            home = pool.submit(self.link.home)
            check()
            home.result()

    def check_build(self, on_problem: ProblemCallback) -> None:
        """Warn when the environment ``--mode install`` made for this site holds another build
        of eo-hpc than this machine runs (a site-managed environment is not checked)."""
        from launcher.config.distribution import build_digest
        from launcher.sites.install import manifest_path

        manifest = f'cat "{manifest_path(self.config, "$HOME")}"'
        code, out, _ = self.persist(lambda: self.link.run(manifest), on_problem)
        try:
            record = json.loads(out) if code == 0 else {}
        except ValueError:
            record = {}
        there, here = record.get("build"), build_digest()
        if there and there != here:
            on_problem(
                f"the environment {record.get('env_path')} on the cluster holds eo-hpc build "
                f"{there}, this machine runs build {here}: both ends should run the same code. "
                "--mode install puts this machine's build there."
            )

    def check_fit(
        self,
        job: JobSpec,
        what: str,
        workers: bool,
        on_problem: ProblemCallback,
        show_config: ProblemCallback | None = None,
    ) -> None:
        """Refuse a job (and, with ``workers``, the Dask worker jobs) that no node of its
        partition can hold, before anything is submitted. The workers' request is the merged
        Dask config, the user's own files on the cluster included (one command). Its queries
        are retried while the login node cannot be reached (see persist)."""
        requests: list[fit.Request | None] = [fit.job_request(self.config, job, what)]
        if workers:
            merged = self.persist(self.merged_dask_config, on_problem)
            if show_config:
                show_config("\n".join(merged.lines()))
            requests.append(fit.worker_request(self.config, merged))
        limits = self.persist(lambda: fit.partition_limits(self.batch, requests), on_problem)
        fit.check(self.batch, requests, on_problem, limits)

    def persist(self, call: Callable[[], T], on_problem: ProblemCallback) -> T:
        """``call()``, retried while the login node cannot be reached (sshd restarting, a
        network hiccup) for up to ``reconnect_for`` seconds: one line when the connection is
        lost and one when it is back. Refused credentials are not retried; a longer outage
        raises LinkLostError (the job on the cluster is left as it is)."""
        lost_since: float | None = None
        while True:
            try:
                result = call()
            except (AuthenticationError, KeyFileError):
                raise
            except SSHError as exc:
                now = time.monotonic()
                if lost_since is None:
                    lost_since = now
                    on_problem(
                        f"lost the connection to {self.config.host}; reconnecting for up to "
                        f"{self.reconnect_for:.0f}s ({exc})"
                    )
                if now - lost_since >= self.reconnect_for:
                    raise LinkLostError(
                        f"the login node {self.config.host} has been unreachable for "
                        f"{now - lost_since:.0f}s ({exc})."
                    ) from None
                time.sleep(RECONNECT_RETRY_SECONDS)
                continue
            if lost_since is not None:
                on_problem(
                    f"the connection to {self.config.host} is back after "
                    f"{time.monotonic() - lost_since:.0f}s"
                )
            return result

    def merged_dask_config(self) -> Merged:
        """The worker jobs' jobqueue config: the site's over the user's own Dask files on the
        cluster (read in one command), each value with its source."""
        from launcher.sites.dask_sources import merged, read_cluster_files

        layers, notes = read_cluster_files(self.link.run, self.config)
        return merged(self.config, layers, self.link.home(), notes)

    def new_run_dir(self, label: str, files: Mapping[str, str]) -> str:
        """Create a fresh 0700 run directory holding the site's Dask config and ``files``
        (relative path -> text, each 0600), in one round trip; return its path.

        The files travel as a tar archive on the command's standard input, never on a
        command line."""
        home = self.link.home()
        base = f"{home}/{RUNS_DIR}"
        run_dir = f"{base}/{label}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        contents = {f"{DASK_DIR}/eohpc.yaml": dask_yaml(self.config.profile, home), **files}
        self.link.check(
            f"umask 077 && mkdir -p {shlex.quote(run_dir)} && chmod 700 "
            f"{shlex.quote(home + '/.eohpc')} {shlex.quote(base)} {shlex.quote(run_dir)} && "
            f"tar -x -o -f - -C {shlex.quote(run_dir)}",
            stdin=private_tar(contents),
        )
        return run_dir

    def submit_jupyter(self, local_port: int, scheduler_max_jobs: int | None) -> SessionState:
        """Prepare a run directory with a fresh token and submit the Jupyter job.

        With `scheduler_max_jobs` the job also runs the session's Dask scheduler.
        """
        token = new_token()
        files = {
            JUPYTER_CONFIG_NAME: json.dumps(jupyter_config(token)),
            WRAPPER_NAME: template_text(WRAPPER_NAME),
        }
        run_dir = self.new_run_dir(self.config.uid, files)
        job_id = self.batch.submit(render(self.config, run_dir, scheduler_max_jobs))
        return SessionState(
            uid=self.config.uid,
            platform=self.config.platform,
            job_id=job_id,
            run_dir=run_dir,
            token=token,
            local_port=local_port,
            with_scheduler=scheduler_max_jobs is not None,
        )

    def output_path(self, state: SessionState) -> str:
        """The job's output file on the cluster."""
        return f"{state.run_dir}/{self.batch.output_name(state.job_id)}"

    def wait_ready(
        self,
        state: SessionState,
        timeout: float,
        show: StatusCallback,
        on_problem: ProblemCallback | None = None,
    ) -> SessionState:
        """Wait (however long the job pends) until Jupyter wrote its connection file.

        `timeout` counts from the moment the job runs; on expiry the job is cancelled. A job
        that ends first, or pends for a reason that does not clear by itself, ends the wait at
        once (the latter is cancelled). A lost connection is retried (see persist).
        """
        problem = on_problem or (lambda _: None)
        connection = f"{state.run_dir}/{CONNECTION_FILE}"
        running_since: float | None = None
        while True:
            status = self.persist(lambda: self.batch.status(state.job_id), problem)
            show(status)
            if status.finished:
                raise JobFailedError(self.failure_message(state, status, "Jupyter was ready"))
            if self.batch.stuck(status):
                self.cancel(state)
                raise JobFailedError(self.stuck_message(state, status))
            if not status.running:
                time.sleep(POLL_SECONDS)
                continue
            running_since = running_since or time.monotonic()
            text = self.persist(lambda: self.wait_for_file(connection, POLL_SECONDS), problem)
            if text.strip():
                info = json.loads(text)
                state.node, state.started = status.node, status.started
                state.remote_host, state.remote_port = str(info["host"]), int(info["port"])
                return state
            if time.monotonic() - running_since > timeout:
                self.cancel(state)
                raise JupyterTimeoutError(
                    f"Jupyter was not ready {timeout:.0f}s after job {state.job_id} started "
                    f"on {status.node}; the job was cancelled. Last lines of its output:\n"
                    f"{self.tail(state)}\nFix: raise --timeout, or check the environment "
                    "activation in the platform profile."
                )

    def stuck_message(self, state: SessionState, status: JobStatus) -> str:
        """Explain a job cancelled because it pends for a reason that does not clear."""
        return (
            f"job {state.job_id} cannot start: it is {status.state} ({status.reason}), a reason "
            f"{self.batch.display_name} does not clear by itself; the job was cancelled. "
            f"Fix: {self.batch.stuck_fix(status)}."
        )

    def wait_for_file(self, path: str, wait: float) -> str:
        """The text of a cluster file once it is non-empty ("" if it is not within ``wait``
        seconds). The login node looks every FILE_CHECK_SECONDS: one SSH round trip in all."""
        checks = max(0, round(wait / FILE_CHECK_SECONDS))
        loop = (
            f'i=0; while [ ! -s "$1" ] && [ $i -lt {checks} ]; do '
            f"sleep {FILE_CHECK_SECONDS} 2>/dev/null || sleep 1; i=$((i+1)); done; "
            'if [ -s "$1" ]; then cat "$1"; fi'
        )
        code, out, _ = self.link.run(f"sh -c {shlex.quote(loop)} sh {shlex.quote(path)}")
        return out if code == 0 else ""

    def failure_message(self, state: SessionState, status: JobStatus, before: str) -> str:
        """Explain a job that ended before ``before`` happened: its state as the batch system
        gives it, the last lines of its output and the fix for that state."""
        exit_code = f", exit code {status.exit_code}" if status.exit_code else ""
        reason = f", reason {status.reason}" if status.reason else ""
        fix = self.batch.status_fix(status) or (
            "fix the cause shown above (often the environment: run --mode install, or check "
            "the profile's modules/env_path)"
        )
        return (
            f"job {state.job_id} ended before {before} (state {status.state}{exit_code}"
            f"{reason}). Last lines of {self.output_path(state)}:\n{self.tail(state)}\n"
            f"Fix: {fix}."
        )

    def wait_scheduler(
        self, state: SessionState, timeout: float, on_problem: ProblemCallback | None = None
    ) -> SchedulerInfo:
        """Wait for the job's session scheduler to publish itself; copy its files here.

        On expiry, or if the job ends first, the job is cancelled. A lost connection is
        retried (see persist).
        """
        problem = on_problem or (lambda _: None)
        path = local_copy.remote_file(state.run_dir)
        deadline = time.monotonic() + timeout
        while not self.persist(lambda: self.wait_for_file(path, POLL_SECONDS), problem).strip():
            status = self.persist(lambda: self.batch.status(state.job_id), problem)
            if status.finished:
                raise JobFailedError(
                    self.failure_message(state, status, "its Dask scheduler was ready")
                )
            if time.monotonic() > deadline:
                self.cancel(state)
                raise JupyterTimeoutError(
                    f"the session scheduler of job {state.job_id} published no {path} within "
                    f"{timeout:.0f}s; the job was cancelled. Last lines of its output:\n"
                    f"{self.tail(state)}\nFix: check that eo-hpc and dask-jobqueue are in "
                    "the cluster environment (--mode install), or raise --timeout."
                )
        return self.persist(
            lambda: local_copy.copy_published(self.link.read, state.run_dir, state.uid), problem
        )

    @contextlib.contextmanager
    def tunnel(
        self, state: SessionState, on_problem: ProblemCallback, ready_timeout: float = 60.0
    ) -> Iterator[Tunnel]:
        """Forward 127.0.0.1:local_port to Jupyter and check /api/status with the token."""
        with Tunnel(
            self.link, state.remote_host, state.remote_port, state.local_port, on_problem
        ) as tunnel:
            wait_for_api(state.local_port, state.token, ready_timeout)
            yield tunnel

    @contextlib.contextmanager
    def scheduler_tunnel(
        self, state: SessionState, on_problem: ProblemCallback
    ) -> Iterator[Tunnel]:
        """Forward 127.0.0.1:scheduler_port to the session scheduler."""
        host, port = parse_address(state.scheduler_remote)
        with Tunnel(self.link, host, port, state.scheduler_port, on_problem) as tunnel:
            yield tunnel

    def jupyter_port(self, state: SessionState) -> int:
        """The tunnel's end on this machine."""
        return state.local_port

    def status(self, state: SessionState) -> JobStatus:
        """The job's status."""
        return self.batch.status(state.job_id)

    def stuck(self, status: JobStatus) -> bool:
        """The batch system's answer (HTCondor holds a job that ran past its allowed time)."""
        return self.batch.stuck(status)

    def reached_walltime(self, status: JobStatus) -> bool:
        """The batch system's answer."""
        return self.batch.reached_walltime(status)

    def stuck_fix(self, status: JobStatus) -> str:
        """The batch system's fix for a job that is stuck."""
        return self.batch.stuck_fix(status)

    def status_fix(self, status: JobStatus) -> str:
        """The batch system's fix for a final state ("" when it has none)."""
        return self.batch.status_fix(status)

    def watch(
        self,
        state: SessionState,
        on_problem: ProblemCallback,
        warn_before: float = 0.0,
        on_warning: ProblemCallback | None = None,
    ) -> JobStatus:
        """Block while the job runs; return its final status. ``warn_before`` seconds before
        the job's walltime ends, ``on_warning`` gets one line saying how much time is left. A
        lost connection is retried (see persist); a longer outage raises LinkLostError. A job
        put on hold (HTCondor holds a job that ran past its ``allowed_execute_duration``) will
        not run again by itself: it is cancelled and its status returned. A job put back in
        the queue while it ran (requeued after a node failure, preempted) is returned at once,
        pending, with its connection file removed (its next run writes its own); so is one
        that started again since Jupyter answered (its start time changed), returned running
        (the new run removed the old run's files as it started). A suspended one is said once
        and watched on."""
        warned = suspended = False
        started = state.started
        while True:
            time.sleep(WATCH_SECONDS)
            status = self.persist(lambda: self.batch.status(state.job_id), on_problem)
            if status.finished:
                return status
            if self.batch.stuck(status):
                self.persist(lambda: self.cancel(state), on_problem)
                return status
            if status.pending and status.state in self.batch.suspended_states:
                if not suspended:
                    reason = f", {status.reason}" if status.reason else ""
                    on_problem(
                        f"job {state.job_id} is suspended ({status.state}{reason}): it keeps "
                        f"its place on {state.node} and resumes by itself; Jupyter does not "
                        "answer until then."
                    )
                suspended = True
                continue
            if started and status.started and status.started != started:
                return status  # its new run removed the old run's files itself
            if status.pending:
                self.persist(functools.partial(self.forget_connection, state), on_problem)
                return status
            started = started or status.started
            if suspended:
                on_problem(f"job {state.job_id} runs again; Jupyter answers again")
                suspended = False
            left = time_left_seconds(status.time_left)
            if warn_before > 0 and not warned and left is not None and left <= warn_before:
                warned = True
                (on_warning or on_problem)(
                    f"job {state.job_id} reaches its walltime in {format_seconds(left)}: save "
                    "your notebooks now; the job and its kernels end then."
                )

    def forget_connection(self, state: SessionState) -> None:
        """Remove the job's connection and scheduler files (a requeued job's next run writes
        its own)."""
        files = [f"{state.run_dir}/{CONNECTION_FILE}", local_copy.remote_file(state.run_dir)]
        self.link.run("rm -f " + " ".join(shlex.quote(f) for f in files))

    def tail(self, state: SessionState, lines: int = TAIL_LINES) -> str:
        """The last lines of the job's output."""
        return self.tail_file(self.output_path(state), lines)

    def tail_file(self, path: str, lines: int = TAIL_LINES) -> str:
        """The last lines of a file on the cluster."""
        code, out, err = self.link.run(f"tail -n {int(lines)} {shlex.quote(path)}")
        return out.rstrip() if code == 0 else f"(no output yet: {err.strip()})"

    def follow(self, state: SessionState, lines: int = TAIL_LINES) -> None:
        """Print the job's output as it grows (until Ctrl-C)."""
        self.link.stream(f"tail -n {int(lines)} -F {shlex.quote(self.output_path(state))}")

    def read_output(self, state: SessionState, offset: int) -> bytes:
        """The job's output from ``offset`` on."""
        return self.link.read(self.output_path(state), offset)

    def cancel(self, state: SessionState) -> None:
        """Cancel the job and remove its token file on the cluster.

        Cancelling sends SIGTERM to the job's processes: a session scheduler then cancels its
        worker jobs, a batch job's driver its workers. A connection broken when the cancel is
        sent (Ctrl-C can land in the middle of a status query and leave the SSH transport
        half-written) is reopened and the cancel sent again, so that no job is left behind.
        """
        try:
            self.persist(lambda: self.batch.cancel(state.job_id), log.warning)
        finally:
            with contextlib.suppress(LauncherError):
                self.link.run(f"rm -f {shlex.quote(state.run_dir)}/{JUPYTER_CONFIG_NAME}")
