"""Command line: `python run_jupyter.py --uid SITE --mode MODE [options] [-- script args]`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from eoshared.errors import LauncherError
from launcher import signals
from launcher.config import Site, config_help, describe_sites, find_config, load_site, site_names
from launcher.jobs.lifecycle import Lifecycle, open_site
from launcher.session import state as saved
from launcher.session.options import RECONNECT_SECONDS, Options
from launcher.sites.remote import RUNS_DIR

MODES = (
    "run",
    "attach",
    "status",
    "list",
    "stop",
    "logs",
    "batch",
    "pipeline",
    "report",
    "dry-run",
    "install",
    "uninstall",
    "sites",
)
#: The modes that start a job, and the kind of job each starts.
KIND_OF_MODE = {"run": saved.JUPYTER, "batch": saved.BATCH, "pipeline": saved.PIPELINE}
DEFAULT_TIMEOUT = 300.0
#: The exit status after the reader of standard output went away (128 + SIGPIPE).
BROKEN_PIPE_STATUS = 141
DEFAULT_WALLTIME_WARNING = 10.0
DEFAULT_MAX_WORKER_JOBS = 4
BATCH_HELP = (
    "--mode batch --script analysis.py --workers N [-- args] runs `python analysis.py args` in "
    "a small job with a Dask cluster of N workers: distributed.Client() without arguments "
    "connects to it. The workers are dask-jobqueue worker jobs of their own rather than "
    "the ranks of one runner allocation: they come and go independently, the script's job "
    "needs no large multi-node allocation, they use the same profile Dask config as the "
    "interactive sessions, and a lost worker is replaced. With --nodes N (or the site's "
    "batch_nodes) the script, the scheduler and the workers run in one job of N nodes instead "
    "(srun on SLURM, pbsdsh on PBS). The output is streamed here and the launcher exits with "
    "the script's exit status; with --detach it prints the job id, and status/logs/stop take "
    "--job JOBID."
)

console = Console(stderr=True, highlight=False, emoji=False, markup=False, soft_wrap=True)


def _integer(text: str, low: int, high: int | None, what: str) -> int:
    """``text`` as an integer from ``low`` to ``high`` (None: no upper bound), or the
    ArgumentTypeError argparse prints naming ``what`` it must be."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a {what}") from None
    if value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"({low} to {high})"
        raise argparse.ArgumentTypeError(f"{value} is not a {what} {bounds}")
    return value


def count(text: str) -> int:
    """A whole number >= 1 (workers, jobs, lines)."""
    return _integer(text, 1, None, "whole number")


def port(text: str) -> int:
    """A TCP port number, 1 to 65535."""
    return _integer(text, 1, 65535, "port number")


def seconds(text: str) -> float:
    """A duration >= 0 in seconds (or minutes, as the option says)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a duration >= 0")
    return value


def positive_seconds(text: str) -> float:
    """A duration > 0."""
    try:
        value = seconds(text)
    except argparse.ArgumentTypeError:
        value = 0.0
    if value == 0:
        raise argparse.ArgumentTypeError(f"{text} is not a duration > 0")
    return value


class VersionAction(argparse.Action):
    """--version: print the version (worked out only when asked) and exit."""

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        print(version())
        parser.exit()


def version() -> str:
    """This launcher's version (of the eo-hpc distribution) and where it runs from."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    from launcher.config.distribution import DIST_NAME, build_digest

    try:
        number = installed(DIST_NAME)
    except PackageNotFoundError:
        number = "0+unknown"
    return f"{DIST_NAME} {number} (build {build_digest()}, {Path(__file__).parent})"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of run_jupyter.py / run-jupyter."""
    parser = argparse.ArgumentParser(
        prog="run_jupyter.py",
        usage="%(prog)s [options] [-- script args]",
        description="JupyterLab (with Dask) on an HPC cluster or on this machine.",
    )
    parser.add_argument(
        "--version", action=VersionAction, nargs=0, help="show the version and build, and exit"
    )
    parser.add_argument("--uid", help="site: a section of platforms.ini, or 'local'")
    parser.add_argument("--mode", choices=MODES, default="run", help="what to do (default: run)")
    parser.add_argument("--config", type=Path, help=config_help())
    parser.add_argument("--local-port", type=port, help="local port of the tunnel (default: free)")
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
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
    parser.add_argument("-n", "--lines", type=count, default=40, help="logs: lines to show")
    parser.add_argument(
        "--add-platform",
        action="store_true",
        help="add a site section to platforms.ini interactively",
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
        type=count,
        default=DEFAULT_MAX_WORKER_JOBS,
        help=f"--scheduler: the most worker jobs it adapts to (default {DEFAULT_MAX_WORKER_JOBS})",
    )
    parser.add_argument(
        "--walltime-warning",
        type=seconds,
        default=DEFAULT_WALLTIME_WARNING,
        metavar="MINUTES",
        help="run/attach: warn this many minutes before the Jupyter job's walltime ends "
        f"(default {DEFAULT_WALLTIME_WARNING:g}; 0: never)",
    )
    parser.add_argument(
        "--reconnect-for",
        type=seconds,
        default=RECONNECT_SECONDS,
        metavar="SECONDS",
        help="run/attach/batch: how long a lost connection to the login node is retried before "
        f"the launcher gives up and leaves the job running (default {RECONNECT_SECONDS:g})",
    )
    parser.add_argument(
        "--job",
        help="status/logs/stop: the session or batch job with this job id; report: the "
        "pipeline id (default: the newest run with a report)",
    )
    group = parser.add_argument_group("batch mode", BATCH_HELP)
    group.add_argument("--script", type=Path, help="batch: the Python script to run")
    group.add_argument(
        "--workers",
        type=count,
        default=None,
        help="batch: Dask workers to start and wait for (--timeout seconds) before the script "
        "(default 1), each a job of its own",
    )
    group.add_argument(
        "--nodes",
        type=count,
        default=None,
        help="batch: run the script, the scheduler and the workers in one job of this many "
        "nodes, each running one worker job's workers (srun on SLURM, pbsdsh on PBS, or "
        "dask-mpi ranks of the site's batch_mpiexec; the site's batch_nodes by default)",
    )
    parser.add_argument(
        "--file",
        type=Path,
        help="pipeline: the pipeline YAML file (stage-in, one array task per scene, stage-out; "
        "see README 'Staged pipelines'); status/logs/stop take --job with its id or a job id",
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
    signals.end_like_ctrl_c()
    try:
        return dispatch(args)
    except LauncherError as exc:
        if args.verbose:
            console.print_exception()
        console.print(f"error: {exc}", markup=False, emoji=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader of standard output went away (| head): end quietly, as a pipe's writer
        # ended by SIGPIPE does, and send what is still buffered nowhere
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE_STATUS


def options_from(args: argparse.Namespace) -> Options:
    """The session options the command line gives."""
    return Options(
        local_port=args.local_port,
        timeout=args.timeout,
        no_browser=args.no_browser,
        detach=args.detach,
        new=args.new,
        scheduler_max_jobs=args.max_worker_jobs if args.scheduler else None,
        walltime_warning=args.walltime_warning,
        reconnect_for=args.reconnect_for,
        script=args.script,
        script_args=args.script_args,
        workers=args.workers,
        nodes=args.nodes,
        file=args.file,
        as_json=args.json,
        out=sys.stdout,
    )


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
    if args.mode == "report":
        return cmd_report(args, site)
    if args.mode in ("install", "uninstall"):
        from launcher.connection.ssh import SSHLink
        from launcher.sites.install import install, uninstall

        with SSHLink(site) as link:
            (install if args.mode == "install" else uninstall)(site, link, console)
        return 0
    with open_site(site) as job_site:
        lifecycle = Lifecycle(job_site, console)
        lifecycle.configure(args.reconnect_for)
        lifecycle.verbose = args.verbose
        if args.mode in KIND_OF_MODE:
            return lifecycle.start(KIND_OF_MODE[args.mode], options_from(args))
        if args.mode == "attach":
            return lifecycle.attach(options_from(args))
        if args.mode == "status":
            return print_status(lifecycle.status_record(args.job), args.json)
        if args.mode == "stop":
            lifecycle.stop_saved(args.job)
            return 0
        lifecycle.logs(args.job, args.follow, args.lines, sys.stdout)
        return 0


def cmd_report(args: argparse.Namespace, site: Site) -> int:
    """Fetch a pipeline run's report page, save it here and open it in the browser."""
    if site.is_local:
        raise LauncherError(
            f"site '{site.uid}' runs on this machine, where pipelines do not run: --mode report "
            "shows a cluster site's pipeline runs. Fix: pass --uid of a cluster site."
        )
    from launcher.connection.ssh import SSHLink
    from launcher.pipeline.report import open_report
    from launcher.sites.remote import RemoteSite

    with SSHLink(site) as link:
        open_report(RemoteSite(site, link), args.job, args.no_browser, console.print)
    return 0


def print_status(record: dict[str, str | int | None], as_json: bool) -> int:
    """Print a status record (one JSON object with --json)."""
    if as_json:
        print(json.dumps(record))
        return 0
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


def cmd_dry_run(args: argparse.Namespace, site: Site) -> int:
    """Print the job script (batch mode's with --script) and the Dask config; submit nothing."""
    from launcher.jobs.batch import batch_size
    from launcher.sites import dryrun
    from launcher.sites.jobscript import dask_yaml, render, render_batch

    run_dir = f"$HOME/{RUNS_DIR}/{site.uid}-TIMESTAMP"
    submit = f"{site.profile.batch_system}: job script on the submit command's standard input"
    if site.is_local:
        print(dryrun.local_header(site))
    elif args.script is not None:
        print(f"# batch-mode job script for site '{site.uid}' ({submit})")
        print(dryrun.REMOTE_PLACEHOLDERS)
        workers, nodes = batch_size(site, args.workers, args.nodes)
        print(
            render_batch(
                site, run_dir, args.script.name, args.script_args, workers, args.timeout, nodes
            )
        )
    else:
        print(f"# Jupyter job script for site '{site.uid}' ({submit})")
        print(dryrun.REMOTE_PLACEHOLDERS)
        print(render(site, run_dir, args.max_worker_jobs if args.scheduler else None))
    print(f"# Dask config (DASK_CONFIG of the job) from {site.profile.path}")
    print(dryrun.dask_note(site))
    print(dask_yaml(site.profile, dryrun.dask_home(site)))
    if not site.is_local:
        print("\n".join(dryrun.merged_dask(site, connect=args.verbose).lines()))
    return 0


if TYPE_CHECKING:
    from launcher.jobs.batch import BatchKind
    from launcher.jobs.jupyter import JupyterKind
    from launcher.pipeline.run import PipelineKind
    from launcher.session.kinds import ClusterOnlyKind, Driver, JobKind
    from launcher.sites.remote import RemoteSite

    def _every_kind_is_a_job_kind(site: RemoteSite) -> list[JobKind]:
        """For mypy only: each kind class takes every JobKind call as the protocol says."""
        return [JupyterKind(site), BatchKind(site), PipelineKind(site), ClusterOnlyKind("", "")]

    def _the_lifecycle_is_a_driver(lc: Lifecycle) -> Driver:
        """For mypy only: the lifecycle offers the kinds every Driver call."""
        return lc
