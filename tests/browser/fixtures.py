"""Headless Chromium from Debian, driven by Playwright (its own browser download is not used)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
DEFAULT_ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
ARTIFACTS = Path(os.environ.get("EO_TEST_ARTIFACTS", DEFAULT_ARTIFACTS))

# Chromium on a machine without outside network: no background services, no sandbox as root.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def ensure_chromium() -> str:
    """Debian's chromium, installed with apt-get when missing."""
    if not Path(CHROMIUM).exists():
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"]
        if subprocess.run(cmd, capture_output=True, env=env).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, env=env, check=True)
            subprocess.run(cmd, capture_output=True, env=env, check=True)
    return CHROMIUM


@pytest.fixture(scope="session")
def browser_context() -> Iterator[object]:
    """A headless Chromium (a Playwright ``BrowserContext``), closed after the session."""
    if os.geteuid() != 0 and not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing and cannot be installed without root")
        pytest.skip("Chromium is not installed (apt-get install chromium needs root)")
    from playwright.sync_api import sync_playwright

    executable = ensure_chromium()
    with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield context
        finally:
            context.close()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where browser tests save screenshots (kept after the run)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
