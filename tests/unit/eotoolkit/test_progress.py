"""eotoolkit.progress(): a bar over local computations, the dashboard's link on a cluster."""

from __future__ import annotations

import io

import dask.array as da
import numpy as np
from rich.console import Console

import eotoolkit


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=100, force_terminal=False), out


def test_a_bar_over_local_tasks() -> None:
    console, out = _console()
    data = da.ones((40, 40), chunks=10)
    with eotoolkit.progress(console):
        total = float((data * 2).sum().compute())
    assert total == 3200.0
    text = out.getvalue()
    assert "tasks" in text and "100%" in text, text


def test_the_dashboard_link_on_a_distributed_client() -> None:
    from distributed import Client, LocalCluster

    console, out = _console()
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address="127.0.0.1:0"
        ) as cluster,
        Client(cluster) as client,
    ):
        with eotoolkit.progress(console):
            assert int(da.from_array(np.arange(10), chunks=5).sum().compute()) == 45
        text = out.getvalue()
        assert f"computing on {client.scheduler.address}" in text
        assert f"progress: {client.dashboard_link}" in text and "tasks" not in text
