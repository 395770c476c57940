"""``eotoolkit`` console command: ``eotoolkit run recipe.yaml [--scheduler ADDRESS]``.

The recipe computes on a Dask scheduler when one is named (``--scheduler``, Dask's
``scheduler-address`` config or ``DASK_SCHEDULER_ADDRESS``, or the session scheduler file of
:mod:`eotoolkit.cluster` when its scheduler answers), connected by
:func:`eotoolkit.cluster.get_client`; otherwise on local threads with a progress bar.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

import dask
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress

from .errors import EOToolkitError
from .progress_bars import COLUMNS, BatchProgress, RichProgress, batch_lines

DESCRIPTION = """\
Run YAML recipes (load, mask, index, composite, Zarr). A recipe computes on a Dask scheduler
when one is named (--scheduler, Dask's scheduler-address config or DASK_SCHEDULER_ADDRESS, or
the session scheduler file when its scheduler answers); otherwise on local threads with a
progress bar."""


def _scheduler_named(address: str | None, console: Console) -> bool:
    """Whether a scheduler to compute on is named: ``address``, Dask's ``scheduler-address``
    config (``DASK_SCHEDULER_ADDRESS``) or a session scheduler file whose scheduler answers,
    the first three choices of :func:`eotoolkit.cluster.get_client`."""
    from eoshared.scheduler.serve import answers

    from .cluster import read_scheduler_file, scheduler_file_path

    if address or dask.config.get("scheduler-address", None):
        return True
    if os.environ.get("DASK_SCHEDULER_ADDRESS"):
        return True
    path = scheduler_file_path()
    if not path.exists():
        return False
    try:
        info = read_scheduler_file(path)
    except (OSError, ValueError) as exc:
        reason = str(exc)
    else:
        if answers(info.address):
            return True
        reason = f"nothing answers at {info.address}"
    console.print(escape(f"Ignoring the session scheduler file {path}: {reason}; local threads"))
    return False


def _check_scheduler(address: str) -> None:
    """Refuse a scheduler address nothing answers at."""
    from eoshared.scheduler.serve import answers

    from .errors import InvalidParameterError

    if not answers(address):
        raise InvalidParameterError(
            f"--scheduler {address} is not valid: nothing answers at that address. Start the "
            "scheduler (or the session) first, check the address, or leave --scheduler out to "
            "compute on local threads."
        )


def _run(args: argparse.Namespace, console: Console) -> int:
    from .recipe import build, read_recipe, write_options
    from .stores.zarr_store import to_zarr

    recipe = read_recipe(args.recipe)
    if recipe.scenes is not None:
        return _run_scenes(args, recipe, console)
    client = None
    if args.scheduler:
        _check_scheduler(args.scheduler)
    if _scheduler_named(args.scheduler, console):
        from .cluster import get_client

        client = get_client(args.scheduler)
    try:
        if client is not None:
            address = client.scheduler_info()["address"]
            console.print(f"Dask scheduler {address}, dashboard {client.dashboard_link}")
        ds = build(recipe)
        console.print(f"Writing {list(ds.data_vars)} {dict(ds.sizes)} to {recipe.output['zarr']}")
        kwargs = write_options(recipe)
        if client is None:
            with Progress(*COLUMNS, console=console) as progress, RichProgress(progress):
                batches = BatchProgress(progress)
                to_zarr(ds, recipe.output["zarr"], **kwargs, on_batch=batches)
        else:
            with console.status("computing on the cluster (see the dashboard for progress)"):
                to_zarr(ds, recipe.output["zarr"], **kwargs, on_batch=batch_lines(console))
    finally:
        if client is not None:
            client.close()
    console.print(f"[green]Done:[/green] {recipe.output['zarr']}")
    return 0


def _write(recipe: Any) -> None:
    """Compute one recipe into its Zarr store on local threads (no progress bar)."""
    from .recipe import build, write_options
    from .stores.zarr_store import to_zarr

    ds = build(recipe)
    to_zarr(ds, recipe.output["zarr"], **write_options(recipe, mode="w"))


def _run_scenes(args: argparse.Namespace, recipe: Any, console: Console) -> int:
    """``per: scene``: each scene not done yet in the ledger, up to 1 + retries attempts each;
    a failure is recorded and the run goes on. Prints the report; 0 only when all are done."""
    import json

    from eoshared import ledger

    from .recipe import for_scene

    book = ledger.Ledger(recipe.ledger)
    todo = book.todo(recipe.scenes)
    console.print(
        escape(
            f"{len(recipe.scenes)} scenes, {len(recipe.scenes) - len(todo)} done already "
            f"(ledger {recipe.ledger}), {len(todo)} to process"
        )
    )
    client = None
    if _scheduler_named(args.scheduler, console):
        from .cluster import get_client

        client = get_client(args.scheduler)
    try:
        for scene in todo:
            one = for_scene(recipe, scene)
            for _ in range(1 + recipe.retries):
                book.start(scene, run="eotoolkit")
                try:
                    _write(one)
                except Exception as exc:  # a scene's failure is recorded, the run goes on
                    book.finish(scene, False, run="eotoolkit", error=f"{type(exc).__name__}: {exc}")
                    console.print(escape(f"scene {scene} failed: {exc}"))
                    continue
                book.finish(scene, True, run="eotoolkit", output=one.output["zarr"])
                console.print(escape(f"scene {scene} done: {one.output['zarr']}"))
                break
    finally:
        if client is not None:
            client.close()
    rep = ledger.report(book.records(), recipe.scenes, ledger=recipe.ledger)
    console.print(escape(ledger.table(rep)), soft_wrap=True)
    if args.report:
        with open(args.report, "w", encoding="utf-8") as handle:
            json.dump(rep, handle, indent=2)
    return 0 if rep["ok"] else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``eotoolkit`` command."""
    from eotoolkit import __version__

    parser = argparse.ArgumentParser(prog="eotoolkit", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a YAML recipe (load, mask, index, composite, Zarr)")
    run.add_argument("recipe", help="path of the recipe YAML file")
    run.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="address of a Dask scheduler (default: the one Dask's config or "
        "DASK_SCHEDULER_ADDRESS names, else the session scheduler if it answers, else local "
        "threads)",
    )
    run.add_argument(
        "--report",
        metavar="PATH",
        help="per-scene recipes: also write the report (done, failed and why) as JSON here",
    )
    run.add_argument("-v", "--verbose", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    try:
        return _run(args, console)
    except EOToolkitError as exc:
        if args.verbose:
            console.print_exception()
        console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        console.print("[red]interrupted[/red]")
        return 130
    except Exception as exc:
        if args.verbose:
            console.print_exception()
        console.print(
            f"[red]error:[/red] {escape(type(exc).__name__)}: {escape(str(exc))} "
            "(run with -v for the traceback)",
            soft_wrap=True,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
