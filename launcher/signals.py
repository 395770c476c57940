"""Terminal signals: SIGTERM and SIGHUP end a foreground command as Ctrl-C does.

Closing the terminal of a foreground ``run`` (SIGHUP) or ending it from a process manager
(SIGTERM) raises KeyboardInterrupt in the main thread, so the same code that handles Ctrl-C
runs: a ``run`` cancels its job without asking (nobody is left to answer), an ``attach``
detaches and leaves the job running. Further SIGTERM/SIGHUP are ignored while that cleanup
runs, so a second signal cannot leave a job half cancelled.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

#: The signals that end a foreground command like Ctrl-C.
ENDING = (signal.SIGTERM, signal.SIGHUP)
#: The signal that ended this command, if one did (None: Ctrl-C or still running).
received: signal.Signals | None = None


def end_like_ctrl_c() -> None:
    """Make SIGTERM and SIGHUP raise KeyboardInterrupt (in the main thread only)."""
    if threading.current_thread() is threading.main_thread():
        for sig in ENDING:
            signal.signal(sig, _interrupt)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    global received
    received = signal.Signals(signum)
    for sig in ENDING:
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt
