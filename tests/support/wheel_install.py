"""The launcher installed from its wheel in a venv outside the checkout."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


def pip_install(venv: Path) -> list[str]:
    """pip install into `venv` without dependencies (they come from this machine)."""
    python = str(venv / "bin" / "python")
    options = ["-q", "--no-deps", "--ignore-installed", "--disable-pip-version-check"]
    return [python, "-m", "pip", "install", *options]


NOTEBOOK = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


@dataclass
class Installed:
    venv: Path
    wheel: Path
    workdir: Path
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.venv / "bin" / "run-jupyter"), *args],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def python(self, code: str) -> str:
        result = subprocess.run(
            [str(self.venv / "bin" / "python"), "-c", code],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout.strip()
