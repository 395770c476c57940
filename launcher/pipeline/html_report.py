"""A pipeline run's report as one self-contained HTML page.

The page holds everything inline (styles and SVG drawings, no script) and its content security
policy forbids loading anything, so it opens offline and never makes a request: a summary, the
failures with their causes, a timeline of stage-in, every task attempt and stage-out, the
scenes' footprints on a map coloured by state (where the scenes are rasters with a CRS) and the
scene table. It is drawn from ``report.json`` (``ledger.report`` with the run's ``attempts``
and ``steps``).
"""

from __future__ import annotations

import html
import math
import time
from typing import Any

from eoshared.ledger import DONE, FAILED, RUNNING

#: Colours of the states, in the table, the timeline and the map.
COLOURS = {DONE: "#2e7d32", FAILED: "#c62828", RUNNING: "#ef6c00", "pending": "#9e9e9e"}
#: Rows of the timeline: beyond this many attempts the rest is in the table only.
MAX_TIMELINE_ROWS = 400
WIDTH = 960
ROW = 14
LABEL = 190

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #212121; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 24px 0 8px; }
table { border-collapse: collapse; } td, th { padding: 2px 8px; border-bottom: 1px solid #eee;
  text-align: left; vertical-align: top; } th { background: #fafafa; }
.state { font-weight: 600; } .ok { color: #2e7d32; } .bad { color: #c62828; }
.note { color: #616161; } svg text { font: 11px system-ui, sans-serif; fill: #424242; }
.err { font-family: monospace; white-space: pre-wrap; max-width: 60em; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(stamp)))


def _summary(rep: dict[str, Any]) -> str:
    verdict = (
        '<span class="ok">every scene done</span>'
        if rep.get("ok")
        else '<span class="bad">not every scene done</span>'
    )
    if rep.get("in_progress"):
        verdict = '<span class="note">in progress: the page shows the run as it is now</span>'

    counts = ", ".join(
        f'<span style="color:{COLOURS[s]}">{rep.get(s, 0)} {s}</span>'
        for s in (DONE, FAILED, RUNNING, "pending")
    )
    jobs = ", ".join(
        f"{_e(step)} job {_e(j.get('job_id'))} {_e(j.get('state'))}"
        for step, j in (rep.get("jobs") or {}).items()
    )
    parts = [
        f"<h1>Pipeline {_e(rep.get('pipeline', ''))}: run {_e(rep.get('run', ''))}</h1>",
        f"<p>site {_e(rep.get('site', ''))}: {rep.get('total', 0)} scenes, {counts}: "
        f"{verdict}.</p>",
    ]
    if jobs:
        parts.append(f'<p class="note">{jobs}</p>')
    return "\n".join(parts)


def _failures(rep: dict[str, Any]) -> str:
    failed = [r for r in rep.get("scenes", []) if r.get("state") == FAILED]
    rows = [
        f"<tr><td>{_e(r['scene'])}</td><td>{r.get('attempts', 0)}</td>"
        f'<td class="err">{_e(r.get("error", ""))}</td></tr>'
        for r in failed
    ]
    body = ""
    if rep.get("error"):
        body += f'<p class="err bad">{_e(rep["error"])}</p>'
    if rows:
        body += (
            "<table><tr><th>scene</th><th>attempts</th><th>cause</th></tr>"
            + "".join(rows)
            + "</table>"
        )
    if not body:
        body = '<p class="ok">none</p>'
    return f'<section id="failures"><h2>Failures</h2>{body}</section>'


def _step_spans(rep: dict[str, Any]) -> list[dict[str, Any]]:
    """Stage-in and stage-out runs from the steps' start and end events."""
    spans: dict[tuple[str, str], dict[str, Any]] = {}
    for event in rep.get("steps", []):
        step = str(event.get("step", ""))
        if step == "process":  # its attempts are drawn one by one
            continue
        key = (step, str(event.get("job", "")))
        span = spans.setdefault(
            key, {"label": step.replace("_", "-"), "start": None, "end": None, "state": RUNNING}
        )
        if event.get("event") == "start":
            span["start"] = event.get("time")
        elif event.get("event") == "end":
            span["end"] = event.get("time")
            span["state"] = DONE if event.get("status") == 0 else FAILED
    order = {"stage-in": 0, "stage-out": 2}
    return sorted(
        (s for s in spans.values() if s["start"] is not None),
        key=lambda s: (order.get(s["label"], 1), s["start"]),
    )


def _timeline(rep: dict[str, Any]) -> str:
    steps = _step_spans(rep)
    attempts = [
        {
            "label": f"{a['scene']} #{a.get('attempt', 1)}",
            "start": a.get("start"),
            "end": a.get("end"),
            "state": a.get("state", RUNNING),
            "task": a.get("task", ""),
        }
        for a in rep.get("attempts", [])
        if a.get("start") is not None
    ]
    shown = attempts[:MAX_TIMELINE_ROWS]
    rows = [s for s in steps if s["label"] == "stage-in"] + shown
    rows += [s for s in steps if s["label"] != "stage-in"]
    if not rows:
        empty = '<p class="note">no times recorded</p>'
        return f'<section id="timeline"><h2>Timeline</h2>{empty}</section>'
    times = [float(r["start"]) for r in rows] + [float(r["end"]) for r in rows if r["end"]]
    t0, t1 = min(times), max(times)
    span = max(t1 - t0, 1e-3)
    plot = WIDTH - LABEL - 30  # room for the last tick's label
    height = ROW * len(rows) + 30
    out = [
        f'<svg id="timeline-svg" width="{WIDTH}" height="{height}" role="img" '
        f'aria-label="timeline">'
    ]
    for k in range(6):  # the time axis
        x = LABEL + plot * k / 5
        out.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height - 18}" stroke="#eee"/>')
        out.append(
            f'<text x="{x:.1f}" y="{height - 4}" text-anchor="middle">{span * k / 5:.1f} s</text>'
        )
    for i, r in enumerate(rows):
        y = i * ROW
        start = float(r["start"])
        end = float(r["end"]) if r["end"] else t1
        x0 = LABEL + plot * (start - t0) / span
        w = max(plot * (end - start) / span, 1.5)
        colour = COLOURS.get(r["state"], "#9e9e9e")
        tip = f"{r['label']}: {r['state']}, {end - start:.1f} s" + (
            f" on {r['task']}" if r.get("task") else ""
        )
        out.append(f'<text x="{LABEL - 6}" y="{y + 11}" text-anchor="end">{_e(r["label"])}</text>')
        out.append(
            f'<rect class="bar {_e(r["state"])}" x="{x0:.1f}" y="{y + 2}" width="{w:.1f}" '
            f'height="{ROW - 4}" fill="{colour}"><title>{_e(tip)}</title></rect>'
        )
    out.append("</svg>")
    note = ""
    if len(attempts) > len(shown):
        note = (
            f'<p class="note">the first {len(shown)} of {len(attempts)} attempts are drawn; '
            "the table has every scene</p>"
        )
    return f'<section id="timeline"><h2>Timeline</h2>{"".join(out)}{note}</section>'


def _boxes(rep: dict[str, Any]) -> list[tuple[str, str, list[float]]]:
    """(scene, state, box) for every scene with a footprint; a box across the antimeridian
    (west > east) as its two halves."""
    out = []
    for r in rep.get("scenes", []):
        box = r.get("footprint")
        if not box:
            continue
        w, s, e, n = box
        if w > e:
            out += [
                (r["scene"], r["state"], [w, s, 180.0, n]),
                (r["scene"], r["state"], [-180.0, s, e, n]),
            ]
        else:
            out.append((r["scene"], r["state"], [w, s, e, n]))
    return out


def _step(extent: float) -> float:
    """A round graticule spacing giving a few lines over ``extent`` degrees."""
    raw = max(extent, 1e-6) / 4
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _ticks(low: float, high: float, step: float) -> list[float]:
    """The multiples of ``step`` from ``low`` to ``high``."""
    first = math.ceil(low / step)
    return [k * step for k in range(first, math.floor(high / step) + 1)]


def _map(rep: dict[str, Any]) -> str:
    boxes = _boxes(rep)
    if not boxes:
        return ""
    west = min(b[0] for _, _, b in boxes)
    south = min(b[1] for _, _, b in boxes)
    east = max(b[2] for _, _, b in boxes)
    north = max(b[3] for _, _, b in boxes)
    pad = 0.08 * max(east - west, north - south, 1e-4)
    west, east, south, north = west - pad, east + pad, south - pad, north + pad
    # an equirectangular view, x shrunk by the cosine of the middle latitude
    aspect = (east - west) * math.cos(math.radians((south + north) / 2)) / (north - south)
    width = WIDTH - 20
    height = max(min(width / max(aspect, 1e-3), 560), 160)
    sx, sy = width / (east - west), height / (north - south)
    out = [f'<svg id="map-svg" width="{width}" height="{height:.0f}" role="img" aria-label="map">']
    out.append(f'<rect width="{width}" height="{height:.0f}" fill="#f5f9fc" stroke="#ccc"/>')
    step = _step(max(east - west, north - south))
    for lon in _ticks(west, east, step):
        x = (lon - west) * sx
        out.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height:.0f}" stroke="#dde"/>')
        out.append(f'<text x="{x + 2:.1f}" y="{height - 4:.0f}">{lon:g}°</text>')
    for lat in _ticks(south, north, step):
        y = (north - lat) * sy
        out.append(f'<line x1="0" y1="{y:.1f}" x2="{width}" y2="{y:.1f}" stroke="#dde"/>')
        out.append(f'<text x="2" y="{y - 2 if y > 14 else y + 12:.1f}">{lat:g}°</text>')
    for scene, state, (w, s, e, n) in boxes:
        colour = COLOURS.get(state, "#9e9e9e")
        out.append(
            f'<rect class="footprint {_e(state)}" x="{(w - west) * sx:.1f}" '
            f'y="{(north - n) * sy:.1f}" width="{max((e - w) * sx, 1):.1f}" '
            f'height="{max((n - s) * sy, 1):.1f}" fill="{colour}" fill-opacity="0.45" '
            f'stroke="{colour}"><title>{_e(scene)}: {_e(state)}</title></rect>'
        )
    out.append("</svg>")
    legend = " ".join(
        f'<span style="color:{c}">&#9632; {s}</span>' for s, c in COLOURS.items() if s != "pending"
    )
    return (
        f'<section id="map"><h2>Footprints</h2>{"".join(out)}'
        f'<p class="note">{legend} (longitude/latitude)</p></section>'
    )


def _scenes(rep: dict[str, Any]) -> str:
    rows = []
    for r in rep.get("scenes", []):
        state = r.get("state", "pending")
        detail = r.get("output", "") if state == DONE else r.get("error", "")
        seconds = "-" if r.get("seconds") is None else f"{float(r['seconds']):.1f}"
        rows.append(
            f'<tr><td>{_e(r["scene"])}</td><td class="state" style="color:'
            f'{COLOURS.get(state, "#9e9e9e")}">{_e(state)}</td><td>{r.get("attempts", 0)}</td>'
            f"<td>{_when(r.get('started'))}</td><td>{seconds}</td>"
            f'<td class="err">{_e(detail)}</td></tr>'
        )
    return (
        '<section id="scenes"><h2>Scenes</h2><table><tr><th>scene</th><th>state</th>'
        "<th>attempts</th><th>started</th><th>seconds</th><th>output / error</th></tr>"
        + "".join(rows)
        + "</table></section>"
    )


def render(rep: dict[str, Any]) -> str:
    """The report ``rep`` (as saved in report.json) as a self-contained HTML page."""
    title = f"{rep.get('pipeline', 'pipeline')} {rep.get('run', '')}".strip()
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
            "style-src 'unsafe-inline'\">",
            f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>",
            _summary(rep),
            _failures(rep),
            _timeline(rep),
            _map(rep),
            _scenes(rep),
            "</body></html>",
        ]
    )
