"""Every launcher unit test gets an empty user config directory of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from launcher.config import CONFIG_DIR_ENV


@pytest.fixture(autouse=True)
def user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$EOHPC_CONFIG_DIR: the user's platforms.ini and profiles (not created)."""
    path = tmp_path / "user-config"
    monkeypatch.setenv(CONFIG_DIR_ENV, str(path))
    return path
