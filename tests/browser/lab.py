"""JupyterLab and its Dask panel (dask-labextension 7), driven through Playwright's sync API."""

from __future__ import annotations

import contextlib
import time
from typing import Any

# Bounded waits, generous for a loaded machine.
LOAD_MS = 180_000
ACTION_MS = 120_000

DASK_TAB = '.jp-SideBar [data-id="dask-dashboard-launcher"]'
DASK_PANEL = "#dask-dashboard-launcher"
CLUSTER = ".dask-ClusterListingItem"
CLUSTER_TITLE = ".dask-ClusterListingItem-title"
DASHBOARD_LINK = ".dask-ClusterListingItem-link a"


def open_lab(page: Any, url: str) -> None:
    """Load JupyterLab and wait until its shell and the Dask sidebar tab are there."""
    page.goto(url, timeout=LOAD_MS, wait_until="domcontentloaded")
    page.wait_for_selector("#jp-main-dock-panel", timeout=LOAD_MS)
    page.wait_for_selector(DASK_TAB, timeout=LOAD_MS)
    dismiss_dialogs(page)


def dismiss_dialogs(page: Any) -> None:
    """Close JupyterLab's start-up dialogs (e.g. "build recommended") and the news toast."""
    for _ in range(3):
        dialog = page.locator(".jp-Dialog")
        if dialog.count() == 0:
            break
        reject = dialog.locator("button.jp-mod-reject")
        if reject.count():
            reject.first.click()
        else:
            page.keyboard.press("Escape")
        time.sleep(0.5)
    if page.get_by_text("official Jupyter news").count():
        with contextlib.suppress(Exception):
            page.get_by_role("button", name="No", exact=True).click(timeout=5_000)


def open_dask_panel(page: Any) -> Any:
    """Open the Dask panel from the left sidebar (unless the saved layout shows it already)."""
    panel = page.locator(DASK_PANEL)
    deadline = time.monotonic() + ACTION_MS / 1000
    # The tab toggles the panel, and the saved layout may open it late: click until it shows.
    while not panel.is_visible() and time.monotonic() < deadline:
        page.locator(DASK_TAB).click()
        with contextlib.suppress(Exception):
            panel.wait_for(state="visible", timeout=10_000)
    assert panel.is_visible(), "the Dask panel did not open"
    return panel


def new_cluster(page: Any, panel: Any) -> Any:
    """Press "+ NEW" in the panel's Clusters section; return the new cluster's card."""
    before = panel.locator(CLUSTER).count()
    button = panel.locator(".jp-Toolbar").get_by_text("NEW", exact=True)
    button.wait_for(state="visible", timeout=ACTION_MS)
    _wait_enabled(page, panel, ACTION_MS)
    button.click()
    card = panel.locator(CLUSTER).nth(before)
    card.wait_for(state="visible", timeout=LOAD_MS)
    return card


def _wait_enabled(page: Any, panel: Any, timeout_ms: int) -> None:
    """The NEW button is disabled until the cluster manager has talked to the server."""
    deadline = time.monotonic() + timeout_ms / 1000
    button = panel.locator(".jp-Toolbar .jp-ToolbarButtonComponent").filter(has_text="NEW")
    while time.monotonic() < deadline:
        if button.count() and not button.first.is_disabled():
            return
        page.wait_for_timeout(500)
    raise AssertionError("the Dask panel's NEW button stayed disabled")


def scale_cluster(page: Any, card: Any, workers: int) -> None:
    """Scale a cluster with the card's SCALE dialog (manual scaling)."""
    card.locator("button.dask-ClusterListingItem-scale").click()
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(state="visible", timeout=ACTION_MS)
    dialog.locator("input.dask-ScalingInput").first.fill(str(workers))
    dialog.locator("button.jp-mod-accept").click()
    dialog.wait_for(state="detached", timeout=ACTION_MS)


def wait_for_workers(card: Any, workers: int, timeout_ms: int = LOAD_MS) -> None:
    """Wait until the card reports `workers` connected workers."""
    stats = card.locator(".dask-ClusterListingItem-stats").filter(has_text="Number of Workers")
    stats.filter(has_text=f"Number of Workers: {workers}").wait_for(timeout=timeout_ms)


def shutdown_cluster(panel: Any, card: Any) -> None:
    """Press the card's SHUTDOWN button and wait until the card is gone."""
    count = panel.locator(CLUSTER).count()
    card.locator("button.dask-ClusterListingItem-stop").click()
    deadline = time.monotonic() + ACTION_MS / 1000
    while panel.locator(CLUSTER).count() >= count and time.monotonic() < deadline:
        time.sleep(0.5)
    assert panel.locator(CLUSTER).count() < count, "the cluster card stayed after SHUTDOWN"
