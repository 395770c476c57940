"""Install what the STAC API test server needs: PostgreSQL + PostGIS (apt) and pgstac (pip)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

PG_MAJOR = "15"
APT_PACKAGES = (f"postgresql-{PG_MAJOR}", f"postgresql-{PG_MAJOR}-postgis-3")
PIP_PACKAGES = {
    "stac_fastapi.pgstac": "stac-fastapi-pgstac>=5.0",
    "pypgstac": "pypgstac[psycopg]>=0.9",
    "psycopg": "pypgstac[psycopg]>=0.9",
    "uvicorn": "uvicorn>=0.30",
}
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")


class InstallError(RuntimeError):
    """Raised when a dependency of the STAC API server cannot be installed."""


def is_root() -> bool:
    """Return True when running as root."""
    return os.geteuid() == 0


def pg_bindir() -> Path | None:
    """Return the PostgreSQL server binary directory, or None when not installed."""
    path = Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin")
    return path if (path / "postgres").is_file() and (path / "initdb").is_file() else None


def postgis_installed() -> bool:
    """Return True when the PostGIS extension is available to PostgreSQL."""
    return Path(f"/usr/share/postgresql/{PG_MAJOR}/extension/postgis.control").is_file()


def system_packages_missing() -> list[str]:
    """Return the apt packages that still need installing."""
    missing = []
    if pg_bindir() is None:
        missing.append(APT_PACKAGES[0])
    if not postgis_installed():
        missing.append(APT_PACKAGES[1])
    return missing


def _apt_install(packages: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)


def ensure_system_packages() -> None:
    """Install PostgreSQL and PostGIS with apt-get when missing (no-op when present).

    Package scripts are kept from starting a system-wide cluster by a temporary
    ``policy-rc.d`` when the machine has none.
    """
    missing = system_packages_missing()
    if not missing:
        return
    if not is_root():
        raise InstallError(
            f"apt packages {', '.join(missing)} are missing and installing them needs root; "
            f"run: sudo apt-get install -y {' '.join(APT_PACKAGES)}"
        )
    added_policy = False
    if not POLICY_RC_D.exists():
        POLICY_RC_D.write_text("#!/bin/sh\nexit 101\n")
        POLICY_RC_D.chmod(0o755)
        added_policy = True
    try:
        result = _apt_install(missing)
        if result.returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, check=False)
            result = _apt_install(missing)
    finally:
        if added_policy:
            POLICY_RC_D.unlink(missing_ok=True)
    if result.returncode != 0 or system_packages_missing():
        raise InstallError(
            f"apt-get install {' '.join(missing)} failed (exit {result.returncode}):\n"
            f"{result.stderr[-2000:]}"
        )


def python_packages_missing() -> list[str]:
    """Return the pip requirements whose modules cannot be imported."""
    missing: list[str] = []
    for module, requirement in PIP_PACKAGES.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found and requirement not in missing:
            missing.append(requirement)
    return missing


def ensure_python_packages() -> None:
    """Install stac-fastapi-pgstac, pypgstac and uvicorn with pip when not importable."""
    missing = python_packages_missing()
    if not missing:
        return
    cmd = [sys.executable, "-m", "pip", "install", "-q", *missing]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    importlib.invalidate_caches()
    if result.returncode != 0 or python_packages_missing():
        raise InstallError(
            f"pip install {' '.join(missing)} failed (exit {result.returncode}):\n"
            f"{result.stderr[-2000:]}"
        )


def ensure_installed() -> None:
    """Install every dependency of the STAC API server that is missing."""
    ensure_system_packages()
    ensure_python_packages()
