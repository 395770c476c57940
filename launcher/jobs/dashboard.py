"""Where the Dask dashboard of a session shows up on this machine (through Jupyter's proxy)."""

from __future__ import annotations

from launcher.config import JOBQUEUE_SECTIONS, Profile

DEFAULT_DASHBOARD_ADDRESS = ":8787"
PANEL = "the Dask panel in JupyterLab's left sidebar lists each cluster's dashboard link"


def dashboard_port(profile: Profile) -> int | None:
    """The port the first Dask cluster's dashboard asks for, or None when it is chosen freely."""
    section = JOBQUEUE_SECTIONS.get(profile.batch_system, "slurm")
    workers = profile.dask.get("jobqueue", {}).get(section, {}) or {}
    options = workers.get("scheduler-options") or {}
    address = str(options.get("dashboard_address", DEFAULT_DASHBOARD_ADDRESS))
    port = address.rpartition(":")[2]
    return int(port) if port.isdigit() and int(port) > 0 else None


def dashboard_hint(profile: Profile, local_port: int) -> str:
    """One line telling the user where to open the Dask dashboard on this machine."""
    port = dashboard_port(profile)
    if port is None:
        return f"Dask dashboard: {PANEL} (open it at http://127.0.0.1:{local_port}/proxy/<port>/status)."
    return (
        f"Dask dashboard, once a cluster runs: http://127.0.0.1:{local_port}/proxy/{port}/status "
        f"(a cluster that finds port {port} taken uses another: {PANEL})."
    )
