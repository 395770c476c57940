"""What the command line says about one command of a site: ports, waits, and what batch and
pipeline modes run (read by the lifecycle and the kinds of job)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

#: How long a lost connection to the login node is retried before the launcher gives up (the
#: job keeps running; --reconnect-for).
RECONNECT_SECONDS = 120.0


@dataclass
class Options:
    """What the command line says about a session."""

    local_port: int | None = None
    timeout: float = 300.0
    no_browser: bool = False
    detach: bool = False
    new: bool = False
    scheduler_max_jobs: int | None = None
    #: Minutes before the Jupyter job's walltime ends at which the terminal warns (0: never).
    walltime_warning: float = 10.0
    #: Seconds a lost connection to the login node is retried before giving up.
    reconnect_for: float = RECONNECT_SECONDS
    #: Batch mode: the script, its arguments and how many Dask workers it gets.
    script: Path | None = None
    script_args: list[str] = field(default_factory=list)
    workers: int | None = None
    #: Batch mode as one allocation of this many nodes (None: the site's batch_nodes).
    nodes: int | None = None
    #: Pipeline mode: the pipeline file; the report also as JSON on standard output.
    file: Path | None = None
    as_json: bool = False
    #: Where a batch job's output is streamed.
    out: TextIO = field(default_factory=lambda: sys.stdout)
