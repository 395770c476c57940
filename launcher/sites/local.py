"""The built-in `local` site: JupyterLab as a subprocess of this machine, no SSH, no SLURM."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from eoshared.batchsystem import FINISHED, RUNNING, JobSpec, JobStatus
from eoshared.errors import ClusterSiteError, ConfigError, JobFailedError, JupyterTimeoutError
from eoshared.scheduler.files import make_private_dir, state_dir, write_private
from launcher.config import Site
from launcher.connection.readiness import new_token, wait_for_api
from launcher.session import state as saved
from launcher.session.jobsite import (
    CONNECTION_FILE,
    POLL_SECONDS,
    TAIL_LINES,
    ProblemCallback,
    StatusCallback,
)
from launcher.session.state import SessionState
from launcher.sites.jobscript import (
    DASK_DIR,
    JUPYTER_CONFIG_NAME,
    WRAPPER_NAME,
    dask_yaml,
    jupyter_args,
    jupyter_config,
    template_text,
)

if TYPE_CHECKING:
    from eoshared.scheduler.contract import SchedulerInfo
    from launcher.session.kinds import JobKind

LOG_NAME = "jupyter.log"


def root_dir(site: Site) -> Path:
    """The directory JupyterLab serves on this machine: the site's notebook_dir (profile
    jupyter.root_dir) if set, else the directory the command was started from, as with
    `jupyter lab`."""
    configured = site.profile.jupyter.root_dir
    return Path(configured).expanduser() if configured else Path.cwd()


def local_jupyter_args(site: Site) -> list[str]:
    """jupyter_args with the root directory spelled out (absolute)."""
    jupyter = dataclasses.replace(site.profile.jupyter, root_dir=str(root_dir(site)))
    return jupyter_args(dataclasses.replace(site.profile, jupyter=jupyter))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


#: Run directories of the local site kept in the state directory: those of saved sessions
#: always, and of the others the newest KEEP_RUNS that are younger than KEEP_RUN_DAYS.
KEEP_RUNS = 20
KEEP_RUN_DAYS = 14


def prune_runs(runs: Path, now: float | None = None) -> list[Path]:
    """Remove the run directories of ``runs`` that the retention rule does not keep (see
    KEEP_RUNS); return them."""
    live = {Path(s.run_dir).name for s in saved.load_all() if s.run_dir}
    entries = sorted(
        (p for p in runs.iterdir() if p.is_dir() and p.name not in live),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    cutoff = (time.time() if now is None else now) - KEEP_RUN_DAYS * 86400
    removed = [p for n, p in enumerate(entries) if n >= KEEP_RUNS or p.stat().st_mtime < cutoff]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


class LocalSite:
    """JupyterLab on this machine, started through the same wrapper as the batch job; it
    serves the directory the command was started from, as `jupyter lab` does.

    A :class:`~launcher.session.jobsite.JobSite`: with no batch system, nothing is checked against a
    partition, there is no tunnel, no walltime and no connection to retry, and what needs a
    batch system (batch jobs, pipelines, the session scheduler) raises ClusterSiteError."""

    def __init__(self, config: Site) -> None:
        self.config = config
        #: Nothing to reconnect to here; kept so that both sites take the same settings.
        self.reconnect_for = 0.0

    def kind(self, cls: type) -> JobKind:
        """A job of kind ``cls`` as this site runs it: a Jupyter session runs here, a kind that
        needs a batch system answers every call with ClusterSiteError."""
        from launcher.session.kinds import ClusterOnlyKind

        if cls.needs_cluster:  # type: ignore[attr-defined]
            return ClusterOnlyKind(*cls.needs_cluster)  # type: ignore[attr-defined]
        kind: JobKind = cls(self)
        return kind

    def prepare(self, check: Callable[[], None]) -> None:
        """Nothing to log in to: only ``check``."""
        check()

    def check_build(self, on_problem: ProblemCallback) -> None:
        """The session runs the launcher's own Python: always the same build."""

    def check_fit(
        self,
        job: JobSpec,
        what: str,
        workers: bool,
        on_problem: ProblemCallback,
        show_config: ProblemCallback | None = None,
    ) -> None:
        """Nothing to check: JupyterLab runs as a process of this machine, in no partition."""

    def new_run_dir(self, label: str, files: Mapping[str, str]) -> str:
        """Create a fresh 0700 run directory in the state directory's ``runs/``, holding the
        site's Dask config and ``files`` (relative path -> text, each 0600); return its path."""
        runs = make_private_dir(state_dir() / "runs")
        prune_runs(runs)
        run_dir = Path(
            tempfile.mkdtemp(prefix=f"{label}-{time.strftime('%Y%m%d-%H%M%S')}-", dir=runs)
        )
        run_dir.chmod(0o700)
        contents = {f"{DASK_DIR}/eohpc.yaml": dask_yaml(self.config.profile), **files}
        for name, text in contents.items():
            write_private(make_private_dir((run_dir / name).parent) / Path(name).name, text)
        return str(run_dir)

    def submit_jupyter(self, local_port: int, scheduler_max_jobs: int | None) -> SessionState:
        """Start JupyterLab in its own process group, listening on 127.0.0.1:local_port (the
        session scheduler, ``scheduler_max_jobs``, needs a cluster site)."""
        if scheduler_max_jobs is not None:
            raise ClusterSiteError("--scheduler")
        root = root_dir(self.config)
        if not root.is_dir():
            raise ConfigError(
                f"the notebook directory {root} does not exist. Create it, or fix "
                f"'notebook_dir' of site '{self.config.uid}'."
            )
        token = new_token()
        files = {
            JUPYTER_CONFIG_NAME: json.dumps(jupyter_config(token, allow_root=os.geteuid() == 0)),
            WRAPPER_NAME: template_text(WRAPPER_NAME),
        }
        run_dir = Path(self.new_run_dir(self.config.uid, files))
        command = [
            sys.executable,
            str(run_dir / WRAPPER_NAME),
            "--run-dir",
            str(run_dir),
            "--ip",
            "127.0.0.1",
            "--port",
            str(local_port),
            "--",
            *local_jupyter_args(self.config),
        ]
        env = {**os.environ, "DASK_CONFIG": str(run_dir / DASK_DIR)}
        fd = os.open(run_dir / LOG_NAME, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "ab") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                cwd=root,
            )
        return SessionState(
            uid=self.config.uid,
            platform=self.config.platform,
            job_id=f"pid-{process.pid}",
            run_dir=str(run_dir),
            token=token,
            local_port=local_port,
            pid=process.pid,
            node="localhost",
        )

    def wait_ready(
        self,
        state: SessionState,
        timeout: float,
        show: StatusCallback,
        on_problem: ProblemCallback | None = None,
    ) -> SessionState:
        """Wait until the wrapper wrote connection.json; the process is stopped on timeout."""
        deadline = time.monotonic() + timeout
        connection = Path(state.run_dir) / CONNECTION_FILE
        while not connection.is_file():
            status = self.status(state)
            show(status)
            if status.finished:
                raise JobFailedError(
                    f"JupyterLab exited before it was ready. Last lines of its log:\n"
                    f"{self.tail(state)}\nFix: pip install 'eo-hpc[jupyter]' "
                    "(in a checkout: pip install -e '.[jupyter]')"
                )
            if time.monotonic() > deadline:
                self.cancel(state)
                raise JupyterTimeoutError(
                    f"JupyterLab was not ready within {timeout:.0f}s and was stopped. Last lines "
                    f"of its log:\n{self.tail(state)}\nFix: raise --timeout."
                )
            time.sleep(POLL_SECONDS / 4)
        info = json.loads(connection.read_text(encoding="utf-8"))
        state.remote_host, state.remote_port = "127.0.0.1", int(info["port"])
        return state

    @contextlib.contextmanager
    def tunnel(
        self, state: SessionState, on_problem: ProblemCallback, ready_timeout: float = 60.0
    ) -> Iterator[None]:
        """No tunnel is needed locally; only check /api/status with the token."""
        wait_for_api(state.local_port, state.token, ready_timeout)
        yield None

    def wait_scheduler(
        self, state: SessionState, timeout: float, on_problem: ProblemCallback | None = None
    ) -> SchedulerInfo:
        """The session scheduler runs in a cluster job only."""
        raise ClusterSiteError("--scheduler")

    def scheduler_tunnel(
        self, state: SessionState, on_problem: ProblemCallback
    ) -> contextlib.AbstractContextManager[object]:
        """The session scheduler runs in a cluster job only."""
        raise ClusterSiteError("--scheduler")

    def jupyter_port(self, state: SessionState) -> int:
        """JupyterLab's own port: no tunnel stands between it and the browser."""
        return state.remote_port or state.local_port

    def status(self, state: SessionState) -> JobStatus:
        """RUNNING while the JupyterLab process lives."""
        running = _alive(state.pid)
        return JobStatus(
            job_id=state.job_id,
            state="RUNNING" if running else "COMPLETED",
            phase=RUNNING if running else FINISHED,
            node="localhost" if running else "",
        )

    def watch(
        self,
        state: SessionState,
        on_problem: ProblemCallback,
        warn_before: float = 0.0,
        on_warning: ProblemCallback | None = None,
    ) -> JobStatus:
        """Block while JupyterLab runs; return its final status (a process here has no
        walltime to warn about)."""
        while (status := self.status(state)).running:
            time.sleep(POLL_SECONDS)
        return status

    def stuck(self, status: JobStatus) -> bool:
        """A process is never held or pending."""
        return False

    def reached_walltime(self, status: JobStatus) -> bool:
        """Only a state that says so: a process here has no walltime of its own."""
        return status.state == "TIMEOUT"

    def stuck_fix(self, status: JobStatus) -> str:
        """Nothing: a process is never stuck."""
        return ""

    def status_fix(self, status: JobStatus) -> str:
        """Nothing to add: the log's last lines tell why JupyterLab ended."""
        return ""

    def tail(self, state: SessionState, lines: int = TAIL_LINES) -> str:
        """The last lines of JupyterLab's log."""
        log = Path(state.run_dir) / LOG_NAME
        text = log.read_text(encoding="utf-8", errors="replace") if log.is_file() else ""
        return "\n".join(text.splitlines()[-lines:])

    def follow(self, state: SessionState, lines: int = TAIL_LINES) -> None:
        """Print the log as it grows (until Ctrl-C)."""
        subprocess.run(["tail", "-n", str(lines), "-F", str(Path(state.run_dir) / LOG_NAME)])

    def cancel(self, state: SessionState) -> None:
        """Terminate JupyterLab's process group and remove its token file."""
        if state.pid and _alive(state.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(state.pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while _alive(state.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(state.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(state.pid, signal.SIGKILL)
        (Path(state.run_dir) / JUPYTER_CONFIG_NAME).unlink(missing_ok=True)
