"""``--mode report [--job PIPELINE_ID]``: a pipeline run's report page, fetched from the cluster,
saved on this machine (0600, under the launcher's state directory) and opened in the browser.

The page is the run directory's ``report.html``; a run that ended before the page existed is
drawn from its ``report.json``, and one still running (or stopped before it reported) from its
ledger and steps as they are now. Without ``--job``, the site's newest run with a report.
"""

from __future__ import annotations

import json
import re
import shlex
import webbrowser
from collections.abc import Callable
from pathlib import Path

from eoshared.scheduler.files import make_private_dir, state_dir, write_private
from launcher.pipeline import html_report
from launcher.pipeline.run import REPORT_HTML, run_report
from launcher.pipeline.spec import Pipeline, PipelineError
from launcher.pipeline.task import PIPELINE_JSON, REPORT_JSON
from launcher.sites.remote import RUNS_DIR, RemoteSite

#: A pipeline id is the name of its run directory.
PIPELINE_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
REPORTS_DIR = "reports"


def _newest_run(site: RemoteSite, base: str) -> str:
    """The name of the site's newest run directory with a report."""
    code, out, _ = site.link.run(
        f"cd {shlex.quote(base)} 2>/dev/null && ls -1t -- */{REPORT_JSON} 2>/dev/null | head -n 1"
    )
    name = out.strip().split("/")[0] if code == 0 else ""
    if not name:
        raise PipelineError(
            f"no pipeline run on site '{site.config.uid}' has a report yet (none under "
            f"~/{RUNS_DIR}). Fix: run one with --mode pipeline --file pipeline.yaml, or pass "
            "--job PIPELINE_ID of a run that has ended."
        )
    return name


def page(site: RemoteSite, pipe_id: str | None) -> tuple[str, str]:
    """(pipeline id, the report page's HTML) of run ``pipe_id`` (default: the newest)."""
    base = f"{site.link.home()}/{RUNS_DIR}"
    if pipe_id is not None and not PIPELINE_ID.fullmatch(pipe_id):
        raise PipelineError(
            f"--job {pipe_id!r} is not a pipeline id (the name of a run directory, as "
            "--mode pipeline printed it, e.g. mysite-pipe-ndvi-20261207-101500-a1b2c3). "
            "Fix: pass the id as printed, or leave --job out for the newest run."
        )
    name = pipe_id or _newest_run(site, base)
    run_dir = f"{base}/{name}"
    data = site.link.read(f"{run_dir}/{REPORT_HTML}")
    if data:
        return name, data.decode("utf-8", errors="replace")
    stored = site.link.read(f"{run_dir}/{REPORT_JSON}")
    if stored:
        return name, html_report.render(json.loads(stored))
    stored = site.link.read(f"{run_dir}/{PIPELINE_JSON}")
    if stored:  # running, or stopped before it reported: the page of what is known now
        pipe = Pipeline.from_json(json.loads(stored))
        rep = run_report(site, run_dir, pipe, finished=False, site=site.config.uid)
        return name, html_report.render({**rep, "in_progress": True})
    raise PipelineError(
        f"no pipeline run {name} on site '{site.config.uid}' (~/{RUNS_DIR}/{name} holds no "
        "pipeline). Fix: pass the id --mode pipeline printed, or leave --job out for the "
        "newest run."
    )


def open_report(
    site: RemoteSite, pipe_id: str | None, no_browser: bool, say: Callable[[str], None]
) -> Path:
    """Fetch the run's report page, save it privately here and open it; return its path."""
    name, text = page(site, pipe_id)
    path = make_private_dir(state_dir() / REPORTS_DIR) / f"{site.config.uid}-{name}.html"
    write_private(path, text)
    say(f"report of pipeline {name}: {path}")
    if not no_browser:
        webbrowser.open(path.as_uri())
    return path
