"""A JupyterLab session in a batch job: start, wait, tunnel, status, logs, stop.

With a session scheduler (`--scheduler`) the job also runs a Dask scheduler; its files are
copied to this machine and its port is forwarded next to Jupyter's (see session_scheduler).
"""

from __future__ import annotations

import contextlib
import io
import json
import secrets
import shlex
import tarfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path, PurePosixPath

from launcher import session_scheduler
from launcher import state as saved
from launcher.config import Site
from launcher.errors import JobFailedError, JupyterTimeoutError, SchedulerError
from launcher.jobscript import (
    JUPYTER_CONFIG_NAME,
    WRAPPER_NAME,
    dask_yaml,
    jupyter_config,
    render,
    template_text,
)
from launcher.readiness import new_token, wait_for_api
from launcher.scheduler import JobStatus, scheduler_for
from launcher.ssh import SSHLink
from launcher.state import SessionState
from launcher.tunnel import Tunnel

POLL_SECONDS = 1.0
#: How often the login node looks for the job's connection file while the job runs.
FILE_CHECK_SECONDS = 0.1
WATCH_SECONDS = 10.0
TAIL_LINES = 30

StatusCallback = Callable[[JobStatus], None]


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


class RemoteSession:
    """JupyterLab as a batch job on a site, reached through an SSH tunnel."""

    def __init__(self, site: Site, link: SSHLink) -> None:
        self.site = site
        self.link = link
        self.scheduler = scheduler_for(site.profile.scheduler, link)

    def _run(self, command: str, stdin: str | bytes | None = None) -> str:
        return self.scheduler.check(command, stdin)

    def home(self) -> str:
        """The user's home directory on the cluster."""
        return self._run('printf %s "$HOME"').strip()

    def new_run_dir(self, label: str, files: Mapping[str, str]) -> str:
        """Create a fresh 0700 run directory holding the site's Dask config and ``files``
        (relative path -> text, each 0600), in one round trip; return its path.

        The files travel as a tar archive on the command's standard input, never on a
        command line."""
        home = self.home()
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = f"{home}/.eohpc/runs"
        run_dir = f"{base}/{label}-{stamp}-{secrets.token_hex(3)}"
        contents = {"dask/eohpc.yaml": dask_yaml(self.site.profile, home), **files}
        self._run(
            f"umask 077 && mkdir -p {shlex.quote(run_dir)} && chmod 700 "
            f"{shlex.quote(home + '/.eohpc')} {shlex.quote(base)} {shlex.quote(run_dir)} && "
            f"tar -x -o -f - -C {shlex.quote(run_dir)}",
            stdin=private_tar(contents),
        )
        return run_dir

    def start(self, local_port: int, scheduler_max_jobs: int | None = None) -> SessionState:
        """Prepare a run directory, upload the token config, submit the job.

        With `scheduler_max_jobs` the job also runs the session's Dask scheduler.
        """
        token = new_token()
        files = {
            JUPYTER_CONFIG_NAME: json.dumps(jupyter_config(token)),
            WRAPPER_NAME: template_text(WRAPPER_NAME),
        }
        run_dir = self.new_run_dir(self.site.uid, files)
        job_id = self.scheduler.submit(render(self.site, run_dir, scheduler_max_jobs))
        state = SessionState(
            uid=self.site.uid,
            platform=self.site.platform,
            job_id=job_id,
            run_dir=run_dir,
            token=token,
            local_port=local_port,
        )
        saved.save(state)
        return state

    def output_path(self, state: SessionState) -> str:
        """The job's output file on the cluster."""
        return f"{state.run_dir}/job-{state.job_id}.out"

    def wait_ready(self, state: SessionState, timeout: float, show: StatusCallback) -> SessionState:
        """Wait (however long the job pends) until Jupyter wrote its connection file.

        `timeout` counts from the moment the job runs; on expiry the job is cancelled.
        """
        running_since: float | None = None
        while True:
            status = self.scheduler.status(state.job_id)
            show(status)
            if status.finished:
                raise JobFailedError(self.failure_message(state, status))
            if status.running:
                running_since = running_since or time.monotonic()
                found = self._connection_file(state, wait=POLL_SECONDS)
                if found is not None:
                    state.node = status.node
                    state.remote_host, state.remote_port = found
                    saved.save(state)
                    return state
                if time.monotonic() - running_since > timeout:
                    self.scheduler.cancel(state.job_id)
                    saved.delete(state.key)
                    raise JupyterTimeoutError(
                        f"Jupyter was not ready {timeout:.0f}s after job {state.job_id} started "
                        f"on {status.node}; the job was cancelled. Last lines of its output:\n"
                        f"{self.tail(state)}\nFix: raise --timeout, or check the environment "
                        "activation in the platform profile."
                    )
            else:
                time.sleep(POLL_SECONDS)

    def _connection_file(self, state: SessionState, wait: float = 0.0) -> tuple[str, int] | None:
        """(host, port) from the job's connection file, waiting up to ``wait`` seconds for it."""
        text = self._wait_for_file(f"{state.run_dir}/connection.json", wait)
        if not text.strip():
            return None
        info = json.loads(text)
        return str(info["host"]), int(info["port"])

    def _wait_for_file(self, path: str, wait: float) -> str:
        """The text of a cluster file once it is non-empty ("" if it is not within ``wait``
        seconds). The login node looks every FILE_CHECK_SECONDS: one SSH round trip in all."""
        checks = max(0, round(wait / FILE_CHECK_SECONDS))
        loop = (
            f'i=0; while [ ! -s "$1" ] && [ $i -lt {checks} ]; do '
            f"sleep {FILE_CHECK_SECONDS} 2>/dev/null || sleep 1; i=$((i+1)); done; "
            'if [ -s "$1" ]; then cat "$1"; fi'
        )
        code, out, _ = self.scheduler.run(f"sh -c {shlex.quote(loop)} sh {shlex.quote(path)}")
        return out if code == 0 else ""

    def failure_message(self, state: SessionState, status: JobStatus) -> str:
        """Explain a job that ended before Jupyter was ready."""
        exit_code = f", exit code {status.exit_code}" if status.exit_code else ""
        return (
            f"job {state.job_id} ended before Jupyter was ready (state {status.state}"
            f"{exit_code}). Last lines of {self.output_path(state)}:\n{self.tail(state)}\n"
            "Fix the cause shown above (often the environment: run --mode install, or check "
            "the profile's modules/env_path)."
        )

    @contextlib.contextmanager
    def tunnel(self, state: SessionState, ready_timeout: float = 60.0) -> Iterator[Tunnel]:
        """Forward 127.0.0.1:local_port to Jupyter and check /api/status with the token."""
        with Tunnel(self.link, state.remote_host, state.remote_port, state.local_port) as tunnel:
            wait_for_api(state.local_port, state.token, ready_timeout)
            yield tunnel

    def wait_scheduler(self, state: SessionState, timeout: float) -> SessionState:
        """Wait for the job's session scheduler file, then copy it and its TLS files here.

        On expiry, or if the job ends first, the job is cancelled.
        """
        path = session_scheduler.remote_file(state.run_dir)
        deadline = time.monotonic() + timeout
        while not self._wait_for_file(path, POLL_SECONDS).strip():
            status = self.scheduler.status(state.job_id)
            if status.finished:
                raise JobFailedError(self.failure_message(state, status))
            if time.monotonic() > deadline:
                self.stop(state)
                raise JupyterTimeoutError(
                    f"the session scheduler of job {state.job_id} published no {path} within "
                    f"{timeout:.0f}s; the job was cancelled. Last lines of its output:\n"
                    f"{self.tail(state)}\nFix: check that eotoolkit and dask-jobqueue are in "
                    "the cluster environment (--mode install), or raise --timeout."
                )
        dest = session_scheduler.local_dir(state.uid)
        published = session_scheduler.copy_files(self.link.conn.sftp(), state.run_dir, dest)
        state.scheduler_remote = published["address"]
        state.scheduler_file = str(dest / session_scheduler.FILE_NAME)
        session_scheduler.write_local_file(dest, published, state.scheduler_port)
        saved.save(state)
        return state

    @contextlib.contextmanager
    def scheduler_tunnel(self, state: SessionState) -> Iterator[Tunnel]:
        """Forward 127.0.0.1:scheduler_port to the session scheduler; point the copy at it."""
        host, port = session_scheduler.parse_address(state.scheduler_remote)
        path = Path(state.scheduler_file)
        published = session_scheduler.read_local_file(path)
        with Tunnel(self.link, host, port, state.scheduler_port) as tunnel:
            session_scheduler.write_local_file(path.parent, published, state.scheduler_port)
            yield tunnel

    def read_from(self, path: str, offset: int) -> bytes:
        """The bytes of a cluster file from offset on (b"" while it does not exist)."""
        try:
            with self.link.conn.sftp().open(path, "rb") as handle:
                handle.seek(offset)
                data: bytes = handle.read()
                return data
        except OSError:
            return b""

    def status(self, state: SessionState) -> JobStatus:
        """The job's scheduler status."""
        return self.scheduler.status(state.job_id)

    def watch(self, state: SessionState) -> JobStatus:
        """Block while the job runs; return its final status. Survives SSH reconnects."""
        while True:
            time.sleep(WATCH_SECONDS)
            try:
                status = self.scheduler.status(state.job_id)
            except Exception:  # the link may be reconnecting; the tunnel thread handles that
                continue
            if status.finished:
                return status

    def tail(self, state: SessionState, lines: int = TAIL_LINES) -> str:
        """The last lines of the job's output."""
        code, out, err = self.scheduler.run(
            f"tail -n {int(lines)} {shlex.quote(self.output_path(state))}"
        )
        return out.rstrip() if code == 0 else f"(no output yet: {err.strip()})"

    def follow(self, state: SessionState, lines: int = TAIL_LINES) -> None:
        """Print the job's output as it grows (until Ctrl-C)."""
        path = shlex.quote(self.output_path(state))
        self.link.conn.run(f"tail -n {int(lines)} -F {path}", warn=True, in_stream=False)

    def stop(self, state: SessionState) -> None:
        """Cancel the job, remove the token file on the cluster and forget the session.

        Cancelling sends SIGTERM to the job's processes: a session scheduler then cancels its
        worker jobs, a batch job's driver its workers. The local scheduler files are removed.
        """
        try:
            self.scheduler.cancel(state.job_id)
        finally:
            with contextlib.suppress(SchedulerError):
                self._run(f"rm -f {shlex.quote(state.run_dir)}/{JUPYTER_CONFIG_NAME}")
            if state.scheduler_file:
                session_scheduler.remove_local(state.uid)
            saved.delete(state.key)
