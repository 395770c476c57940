"""Check that JupyterLab answers `/api/status` with the token."""

from __future__ import annotations

import secrets
import time
import urllib.error
import urllib.request

from eoshared.errors import JupyterTimeoutError

TOKEN_BYTES = 32


def new_token() -> str:
    """Return a random Jupyter token of TOKEN_BYTES bytes (URL-safe text)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def api_status(port: int, token: str | None, timeout: float = 5.0) -> int:
    """Return the HTTP status of GET /api/status on 127.0.0.1:port (0 if nothing answers)."""
    headers = {"Authorization": f"token {token}"} if token else {}
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/status", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return 0


def wait_for_api(port: int, token: str, timeout: float) -> None:
    """Wait until /api/status answers 200 with the token."""
    deadline = time.monotonic() + timeout
    code = 0
    while time.monotonic() < deadline:
        code = api_status(port, token)
        if code == 200:
            return
        time.sleep(0.3)
    raise JupyterTimeoutError(
        f"Jupyter did not answer on 127.0.0.1:{port} within {timeout:.0f}s (last HTTP status "
        f"{code or 'none'}). Check the job output with --mode logs."
    )
