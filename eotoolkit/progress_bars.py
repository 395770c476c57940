"""Progress of long computations: ``eotoolkit.progress()`` for the Python API, and the bars
and lines ``eotoolkit run`` shows.

On local threads or processes a bar counts the Dask tasks of each computation run inside the
block (a write in batches shows one computation after the other); on a distributed client,
whose dashboard shows the progress, the block prints the dashboard's link once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dask.callbacks import Callback
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

#: The columns of every bar: what is counted, the bar, the share done, the time taken.
COLUMNS = (
    TextColumn("[bold]{task.description}"),
    BarColumn(),
    TaskProgressColumn(),
    TimeElapsedColumn(),
)


@contextmanager
def progress(console: Console | None = None) -> Iterator[None]:
    """Show the progress of the Dask computations run in the ``with`` block::

        with eotoolkit.progress():
            eotoolkit.to_zarr(monthly, "ndvi.zarr")

    On local threads or processes: a bar over each computation's tasks (on ``console``,
    default standard error; in Jupyter, below the cell). On a distributed client: one line
    with its dashboard's link, where the tasks show as they run.
    """
    console = console or Console(stderr=True)
    client = _default_client()
    if client is not None:
        console.print(f"computing on {client.scheduler.address}; progress: {client.dashboard_link}")
        yield
        return
    with Progress(*COLUMNS, console=console) as bars, RichProgress(bars):
        yield


def _default_client() -> Any:
    """The distributed client computations go to, if any (without importing distributed)."""
    import sys

    if "distributed" not in sys.modules:
        return None
    from distributed import default_client

    try:
        return default_client()
    except ValueError:
        return None


class RichProgress(Callback):
    """A rich progress bar over the tasks of local (threads/processes) dask computations."""

    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self._progress = progress
        self._task: Any = None

    def _start_state(self, dsk: Any, state: Any) -> None:
        total = sum(len(state[k]) for k in ("ready", "waiting", "running", "finished"))
        if self._task is None:
            self._task = self._progress.add_task("tasks", total=total)
        else:
            self._progress.update(self._task, total=total, completed=0)

    def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
        self._progress.advance(self._task)


class BatchProgress:
    """A rich progress bar over the batches of a write in batches (none for one graph): the
    ``on_batch`` of :func:`eotoolkit.to_zarr`."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._task: Any = None

    def __call__(self, finished: int, total: int) -> None:
        if total <= 1:
            return
        if self._task is None:
            self._task = self._progress.add_task("batches", total=total)
        self._progress.update(self._task, total=total, completed=finished)


def batch_lines(console: Console) -> Any:
    """An ``on_batch`` printing one line per batch written (for a write on a cluster)."""

    def report(finished: int, total: int) -> None:
        if total > 1:
            console.print(f"batch {finished}/{total} written" if finished else f"{total} batches")

    return report
