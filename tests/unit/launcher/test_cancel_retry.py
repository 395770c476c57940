"""A cancel whose SSH connection breaks is sent again: no job is left behind."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from eoshared.errors import SSHError
from launcher.config import load_site
from launcher.session.state import SessionState
from launcher.sites import remote
from launcher.sites.remote import RemoteSite


class BrokenOnce:
    """A link whose first command fails as a transport broken by Ctrl-C does."""

    def __init__(self) -> None:
        self.commands: list[str] = []

    def run(self, command: str, stdin: object = None) -> tuple[int, str, str]:
        self.commands.append(command)
        if len(self.commands) == 1:
            raise SSHError(
                "the SSH connection to h failed during `scancel` ([Errno 32] Broken pipe)"
            )
        return 0, "", ""


def test_a_cancel_on_a_broken_connection_is_sent_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(remote, "RECONNECT_RETRY_SECONDS", 0.01)
    link = BrokenOnce()
    config = load_site("sandbox")
    site = RemoteSite.__new__(RemoteSite)
    site.config, site.link, site.reconnect_for = config, link, 5.0  # type: ignore[assignment]
    site.batch = SimpleNamespace(cancel=lambda job: link.run(f"scancel {job}"))  # type: ignore[assignment]
    state = SessionState("sandbox", "sandbox", "42", "/runs/r", "", 0)
    site.cancel(state)
    assert link.commands[:2] == ["scancel 42", "scancel 42"]
    assert link.commands[2].startswith("rm -f /runs/r/")
