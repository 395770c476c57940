"""Command line: `python run_jupyter.py --uid SITE --mode MODE [options] [-- script args]`."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import webbrowser
from collections.abc import Callable, Iterator
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from launcher import batch, dryrun, session_scheduler
from launcher import state as saved
from launcher.config import Site, config_help, describe_sites, find_config, load_site, site_names
from launcher.dashboard import dashboard_hint
from launcher.errors import JobFailedError, LauncherError, NoSessionError, SessionExistsError
from launcher.jobscript import dask_yaml, render, render_batch
from launcher.local import LocalSession
from launcher.scheduler import JobStatus
from launcher.session import RemoteSession
from launcher.ssh import SSHLink
from launcher.tunnel import check_port_free, free_port

MODES = (
    "run",
    "attach",
    "status",
    "list",
    "stop",
    "logs",
    "batch",
    "dry-run",
    "install",
    "uninstall",
    "sites",
)
DEFAULT_TIMEOUT = 300.0
DEFAULT_MAX_WORKER_JOBS = 4
BATCH_HELP = (
    "--mode batch --script analysis.py --workers N [-- args] runs `python analysis.py args` in "
    "a small SLURM job with a Dask cluster of N workers: distributed.Client() without arguments "
    "connects to it. The workers are dask-jobqueue SLURMCluster jobs of their own rather than "
    "the ranks of one SLURMRunner allocation: they come and go independently, the script's job "
    "needs no large multi-node allocation, they use the same profile Dask config as the "
    "interactive sessions, and a lost worker is replaced. The output is streamed here and the "
    "launcher exits with the script's exit status; with --detach it prints the job id, and "
    "status/logs/stop take --job JOBID."
)

Session = LocalSession | RemoteSession
console = Console(stderr=True, highlight=False, emoji=False, markup=False)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of run_jupyter.py / run-jupyter."""
    parser = argparse.ArgumentParser(
        prog="run_jupyter.py",
        usage="%(prog)s [options] [-- script args]",
        description="JupyterLab (with Dask) on an HPC cluster or on this machine.",
    )
    parser.add_argument("--uid", help="site: a section of platforms.ini, or 'local'")
    parser.add_argument("--mode", choices=MODES, default="run", help="what to do (default: run)")
    parser.add_argument("--config", type=Path, help=config_help())
    parser.add_argument("--local-port", type=int, help="local port of the tunnel (default: free)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help="seconds Jupyter may take to start once the job runs (default 300)",
    )
    parser.add_argument("--no-browser", action="store_true", help="print the URL, open no browser")
    parser.add_argument(
        "--detach",
        action="store_true",
        help="return once Jupyter answers and leave the job running",
    )
    parser.add_argument(
        "--new", action="store_true", help="start a new job even though one is live for the site"
    )
    parser.add_argument("--json", action="store_true", help="status, list, sites: as JSON")
    parser.add_argument("-f", "--follow", action="store_true", help="logs: follow the output")
    parser.add_argument("-n", "--lines", type=int, default=40, help="logs: lines to show")
    parser.add_argument(
        "--add-platform",
        action="store_true",
        help="add a site section to your platforms.ini interactively",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug output, tracebacks")
    parser.add_argument(
        "--scheduler",
        action="store_true",
        help="run: also start a TLS Dask scheduler in the job, reachable from this machine with "
        "eotoolkit.cluster.get_client() (EOHPC_SESSION=SITE) while run/attach holds the tunnel",
    )
    parser.add_argument(
        "--max-worker-jobs",
        type=int,
        default=DEFAULT_MAX_WORKER_JOBS,
        help=f"--scheduler: the most worker jobs it adapts to (default {DEFAULT_MAX_WORKER_JOBS})",
    )
    parser.add_argument(
        "--job", help="status/logs/stop: the session or batch job with this SLURM job id"
    )
    group = parser.add_argument_group("batch mode", BATCH_HELP)
    group.add_argument("--script", type=Path, help="batch: the Python script to run")
    group.add_argument(
        "--workers",
        type=int,
        default=1,
        help="batch: Dask workers to start and wait for (--timeout seconds) before the script",
    )
    return parser


def split_script_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """Split the command line at the first `--`: launcher options, then the script's args."""
    if "--" not in argv:
        return argv, []
    index = argv.index("--")
    return argv[:index], argv[index + 1 :]


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    own, script_args = split_script_args(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(own)
    args.script_args = script_args
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    try:
        return dispatch(args)
    except LauncherError as exc:
        if args.verbose:
            console.print_exception()
        console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True, markup=True)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def dispatch(args: argparse.Namespace) -> int:
    """Run the selected mode."""
    config = find_config(args.config)
    if args.add_platform:
        from launcher.add_platform import add_platform

        return add_platform(config)
    if args.mode == "list":
        return cmd_list(args)
    if args.mode == "sites":
        return describe_sites(config, args.json)
    if not args.uid:
        raise LauncherError(f"--uid is required. Known sites: {', '.join(site_names(config))}.")
    site = load_site(args.uid, config)
    if args.mode == "dry-run":
        return cmd_dry_run(args, site)
    if args.mode in ("install", "uninstall"):
        from launcher.install import install, uninstall

        with SSHLink(site) as link:
            (install if args.mode == "install" else uninstall)(site, link, console)
        return 0
    with open_session(site) as session:
        if args.mode == "run":
            return cmd_run(args, site, session)
        if args.mode == "attach":
            return cmd_attach(args, site, session)
        if args.mode == "batch":
            return cmd_batch(args, site, session)
        if args.mode == "status":
            return cmd_status(args, site, session)
        if args.mode == "stop":
            return cmd_stop(args, site, session)
        return cmd_logs(args, site, session)


@contextlib.contextmanager
def open_session(site: Site) -> Iterator[Session]:
    """A local session, or a remote one over the run's single SSH connection."""
    if site.is_local:
        yield LocalSession(site)
        return
    with SSHLink(site) as link:
        yield RemoteSession(site, link)


def show_status(status: JobStatus, last: list[str], waiting_for: str = "Jupyter") -> None:
    """Print the job's queue state when it changes."""
    if status.pending:
        text = f"job {status.job_id} {status.state}"
        if status.reason:
            text += f" ({status.reason})"
        if status.start_estimate:
            text += f", estimated start {status.start_estimate}"
    elif status.running:
        text = f"job {status.job_id} RUNNING on {status.node}, waiting for {waiting_for}"
    else:
        text = f"job {status.job_id} {status.state}"
    if not last or last[-1] != text:
        last.append(text)
        console.print(f"[cyan]•[/] {escape(text)}", markup=True, soft_wrap=True)


def require_no_live_session(site: Site, session: Session) -> None:
    """Refuse a second job for a site whose saved session is still queued or running."""
    existing = saved.load(site.uid)
    if existing is None:
        return
    status = session.status(existing)
    if status.finished:
        saved.delete(site.uid)
        return
    raise SessionExistsError(
        f"site '{site.uid}' already has a live session (job {existing.job_id}, {status.state}). "
        f"Reconnect with --mode attach, end it with --mode stop, or pass --new for a second job."
    )


def cmd_run(args: argparse.Namespace, site: Site, session: Session) -> int:
    """Submit, wait, tunnel, open the browser; stay in the foreground unless --detach."""
    if not args.new:
        require_no_live_session(site, session)
    port = args.local_port or free_port()
    check_port_free(port)
    last: list[str] = []
    with_scheduler = require_remote(session, "--scheduler") if args.scheduler else None
    if with_scheduler is not None:
        state = with_scheduler.start(port, args.max_worker_jobs)
    else:
        state = session.start(port)
    console.print(f"submitted job {state.job_id} for site '{site.uid}'")
    try:
        try:
            state = session.wait_ready(state, args.timeout, lambda s: show_status(s, last))
            if with_scheduler is not None:
                state.scheduler_port = free_port()
                console.print("[cyan]•[/] waiting for the session's Dask scheduler", markup=True)
                state = with_scheduler.wait_scheduler(state, args.timeout)
        except JobFailedError:
            saved.delete(site.uid)
            raise
        return serve(args, site, session, state, cancel_on_exit=True)
    except KeyboardInterrupt:
        return interrupted(session.stop, state, "job", "--mode attach reconnects")


def cmd_attach(args: argparse.Namespace, site: Site, session: Session) -> int:
    """Open a new tunnel to the site's running session (the same job)."""
    state = saved.load(site.uid)
    if state is None:
        raise NoSessionError(f"no session saved for site '{site.uid}'. Start one with --mode run.")
    status = session.status(state)
    if status.finished:
        saved.delete(site.uid)
        raise NoSessionError(
            f"job {state.job_id} of site '{site.uid}' has ended ({status.state}). "
            "Start a new one with --mode run."
        )
    if args.local_port:
        state.local_port = args.local_port
    elif not _port_free(state.local_port):
        state.local_port = free_port()
    check_port_free(state.local_port)
    if site.is_local:
        state.local_port = state.remote_port or state.local_port
    if state.scheduler_remote and not _port_free(state.scheduler_port):
        state.scheduler_port = free_port()
    last: list[str] = []
    if not state.ready:
        state = session.wait_ready(state, args.timeout, lambda s: show_status(s, last))
    saved.save(state)
    try:
        return serve(args, site, session, state, cancel_on_exit=False)
    except KeyboardInterrupt:
        console.print(f"detached; job {state.job_id} keeps running (--mode stop ends it)")
        return 130


def serve(
    args: argparse.Namespace,
    site: Site,
    session: Session,
    state: saved.SessionState,
    cancel_on_exit: bool,
) -> int:
    """Open the tunnels, announce the URL, and keep them up while the job runs."""
    with contextlib.ExitStack() as tunnels:
        tunnels.enter_context(session.tunnel(state))
        if state.scheduler_remote:
            tunnels.enter_context(require_remote(session, "--scheduler").scheduler_tunnel(state))
        console.print(
            f"[green]Jupyter is ready[/] {escape(f'(job {state.job_id} on {state.node})')}",
            markup=True,
        )
        print(state.url, flush=True)
        if state.scheduler_remote:
            announce_scheduler(state)
        console.print(dashboard_hint(site.profile, state.local_port), soft_wrap=True)
        if not args.no_browser:
            webbrowser.open(state.url)
        if args.detach:
            console.print(
                f"detached; --mode attach reconnects, --mode stop ends job {state.job_id}"
            )
            return 0
        console.print("Ctrl-C " + ("cancels the job" if cancel_on_exit else "detaches"))
        final = session.watch(state)
    console.print(f"job {state.job_id} ended ({final.state}). Last lines of its output:")
    console.print(session.tail(state), markup=False, highlight=False)
    if state.scheduler_file:
        session_scheduler.remove_local(state.uid)
    saved.delete(site.uid)
    return 1


def require_remote(session: Session, what: str) -> RemoteSession:
    """The session as a RemoteSession, or an error saying `what` needs a SLURM site."""
    if not isinstance(session, RemoteSession):
        raise LauncherError(f"{what} needs a SLURM site; the local site has no batch scheduler.")
    return session


def announce_scheduler(state: saved.SessionState) -> None:
    """Print where the session scheduler is and the one call that connects to it."""
    console.print(
        "[green]Dask scheduler is ready[/] "
        + escape(
            f"at {state.scheduler_address} (forwarded to {state.scheduler_remote}); "
            f"scheduler file {state.scheduler_file}"
        ),
        markup=True,
        soft_wrap=True,
    )
    print(f"export EOHPC_SESSION={state.uid}  # or EOHPC_SCHEDULER_FILE={state.scheduler_file}")
    print(session_scheduler.USAGE, flush=True)


def confirm_cancel(job_id: str) -> bool:
    """Ask before cancelling on a terminal; cancel without asking otherwise."""
    if not sys.stdin.isatty():
        return True
    try:
        answer = input(f"\nCancel job {job_id}? [Y/n] ").strip().lower()
    except (EOFError, KeyboardInterrupt):
        return True
    return answer in ("", "y", "yes")


def interrupted(
    stop: Callable[[saved.SessionState], object],
    state: saved.SessionState,
    what: str,
    resume_hint: str,
) -> int:
    """After Ctrl-C: cancel the job if the user agrees (see confirm_cancel), else say how to
    find it again. Returns 130, the exit status of an interrupted command."""
    if confirm_cancel(state.job_id):
        stop(state)
        console.print(f"cancelled {what} {state.job_id}")
    else:
        console.print(f"{what} {state.job_id} keeps running; {resume_hint}")
    return 130


def _port_free(port: int) -> bool:
    try:
        check_port_free(port)
    except LauncherError:
        return False
    return True


def find_state(args: argparse.Namespace, site: Site) -> saved.SessionState:
    """The saved session `--job JOBID` names, else the site's interactive session."""
    if args.job:
        state = saved.find(site.uid, args.job)
        if state is None:
            raise NoSessionError(f"no session or batch job {args.job} saved for site '{site.uid}'.")
        return state
    state = saved.load(site.uid)
    if state is None:
        batch_jobs = [s.job_id for s in saved.load_all() if s.uid == site.uid]
        hint = f" Batch jobs: {', '.join(batch_jobs)} (pass --job JOBID)." if batch_jobs else ""
        raise NoSessionError(
            f"no session saved for site '{site.uid}'. Start one with --mode run.{hint}"
        )
    return state


def status_record(
    site: Site, session: Session, state: saved.SessionState
) -> dict[str, str | int | None]:
    """What status reports about a saved session or batch job."""
    status = session.status(state)
    record: dict[str, str | int | None] = {
        "uid": site.uid,
        "job_id": state.job_id,
        "state": status.state,
        "reason": status.reason,
        "node": status.node or state.node,
        "time_left": status.time_left,
        "url": state.url if state.ready else None,
        "local_port": state.local_port,
    }
    if state.scheduler_remote:
        record["scheduler_address"] = state.scheduler_address
        record["scheduler_file"] = state.scheduler_file
    if state.kind == saved.BATCH:
        remote = require_remote(session, "batch mode")
        record["url"] = record["local_port"] = None
        record["kind"] = state.kind
        record["run_dir"] = state.run_dir
        record["exit_status"] = (
            batch.exit_status(remote, state, status) if status.finished else None
        )
    return record


def cmd_status(args: argparse.Namespace, site: Site, session: Session) -> int:
    """Show the saved session's job state (one JSON object with --json)."""
    if args.json and not args.job and saved.load(site.uid) is None:
        print(
            json.dumps(
                {
                    "uid": site.uid,
                    "job_id": None,
                    "state": "NONE",
                    "reason": "",
                    "node": "",
                    "time_left": "",
                    "url": None,
                    "local_port": None,
                }
            )
        )
        return 0
    record = status_record(site, session, find_state(args, site))
    if args.json:
        print(json.dumps(record))
    else:
        for key, value in record.items():
            print(f"{key:>17}: {value if value is not None else ''}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """List every saved session and batch job (no network access)."""
    states = saved.load_all()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "uid": s.uid,
                        "kind": s.kind,
                        "platform": s.platform,
                        "job_id": s.job_id,
                        "node": s.node,
                        "local_port": s.local_port,
                    }
                    for s in states
                ]
            )
        )
        return 0
    if not states:
        console.print("no saved sessions")
    for s in states:
        print(
            f"{s.uid:<16} {s.kind:<8} {s.platform:<14} job {s.job_id:<12} "
            f"node {s.node or '-':<16} port {s.local_port or '-'}"
        )
    return 0


def cmd_stop(args: argparse.Namespace, site: Site, session: Session) -> int:
    """Cancel the job and forget the session (`--job` picks a batch job)."""
    if not args.job and saved.load(site.uid) is None:
        raise NoSessionError(f"no session saved for site '{site.uid}'; nothing to stop.")
    state = find_state(args, site)
    session.stop(state)
    what = "batch job" if state.kind == saved.BATCH else "job"
    console.print(f"stopped {what} {state.job_id} of site '{site.uid}'")
    return 0


def cmd_logs(args: argparse.Namespace, site: Site, session: Session) -> int:
    """Print the tail of the job's output (-f follows it; a batch job until it ends)."""
    state = find_state(args, site)
    if args.follow and state.kind == saved.BATCH:
        with contextlib.suppress(KeyboardInterrupt):
            batch.stream(require_remote(session, "batch mode"), state, sys.stdout, lambda _: None)
        return 0
    if args.follow:
        with contextlib.suppress(KeyboardInterrupt):
            session.follow(state, args.lines)
        return 0
    print(session.tail(state, args.lines))
    return 0


def cmd_batch(args: argparse.Namespace, site: Site, session: Session) -> int:
    """Submit a script with N Dask workers; stream its output and return its exit status."""
    remote = require_remote(session, "--mode batch")
    if args.script is None:
        raise LauncherError("--mode batch needs --script PATH (and --workers N).")
    state = batch.submit(remote, args.script, args.script_args, args.workers, args.timeout)
    console.print(
        f"submitted batch job {state.job_id} for site '{site.uid}' (run directory {state.run_dir})",
        soft_wrap=True,
    )
    if args.detach:
        print(state.job_id, flush=True)
        console.print(
            f"--mode logs/status/stop --job {state.job_id} follow, show or cancel it",
            soft_wrap=True,
        )
        return 0
    last: list[str] = []
    try:
        final = batch.stream(
            remote, state, sys.stdout, lambda s: show_status(s, last, "the script")
        )
    except KeyboardInterrupt:
        return interrupted(remote.stop, state, "batch job", f"--job {state.job_id} finds it")
    code = batch.exit_status(remote, state, final)
    saved.delete(state.key)
    console.print(f"batch job {state.job_id} ended ({final.state}); script exit status {code}")
    return code


def cmd_dry_run(args: argparse.Namespace, site: Site) -> int:
    """Print the job script (batch mode's with --script) and the Dask config; submit nothing."""
    run_dir = f"$HOME/.eohpc/runs/{site.uid}-TIMESTAMP"
    if site.is_local:
        print(dryrun.local_header(site))
    elif args.script is not None:
        print(f"# batch-mode job script for site '{site.uid}' (sbatch --parsable, on stdin)")
        print(dryrun.REMOTE_PLACEHOLDERS)
        print(
            render_batch(
                site, run_dir, args.script.name, args.script_args, args.workers, args.timeout
            )
        )
    else:
        print(f"# batch script for site '{site.uid}' (sbatch --parsable, script on stdin)")
        print(dryrun.REMOTE_PLACEHOLDERS)
        print(render(site, run_dir, args.max_worker_jobs if args.scheduler else None))
    print(f"# Dask config (DASK_CONFIG of the job) from {site.profile.path}")
    print(dryrun.dask_note(site))
    print(dask_yaml(site.profile, dryrun.dask_home(site)))
    return 0
