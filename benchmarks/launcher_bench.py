"""Launcher: ``run_jupyter.py --uid sandbox --mode run --no-browser --detach`` until JupyterLab
answers ``/api/status`` through the tunnel, split into phases, then ``--mode stop``.

Phases (all clocks are this machine's; the rig's namespaces share it):

- ``ssh_connect``: a fabric connection to the login node (measured separately);
- ``to_submitted``: command start to SLURM's SubmitTime-equivalent (the "submitted job" line);
- ``pending``: submission to job start (birth time of the job's output file);
- ``jupyter_start``: job start to ``connection.json`` (the job's wrapper saw /api/status 200);
- ``to_ready``: ``connection.json`` to the launcher printing the URL (poll, tunnel, API check);
- ``overhead`` = total - pending - jupyter_start: what the launcher itself adds.
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ._cluster import Skip, cluster, connection, sh
from .measure import ROOT

SITE = "sandbox"
JUPYTER_LOG = re.compile(r"\[\w (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) ")


def _stamped(cmd: list[str], env: dict[str, str], timeout: float) -> tuple[int, list]:
    """Run ``cmd``; return its exit code and (time.time(), stream, line) for every line."""
    lines: list[tuple[float, str, str]] = []
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )

    def pump(stream: Any, name: str) -> None:
        for line in stream:
            lines.append((time.time(), name, line.rstrip()))

    threads = [
        threading.Thread(target=pump, args=(proc.stdout, "out"), daemon=True),
        threading.Thread(target=pump, args=(proc.stderr, "err"), daemon=True),
    ]
    for t in threads:
        t.start()
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        code = proc.wait()
    for t in threads:
        t.join(5)
    return code, lines


def _first(lines: list, pattern: str) -> float | None:
    rx = re.compile(pattern)
    return next((t for t, _, line in lines if rx.search(line)), None)


def _remote_times(info: Any, state: dict[str, Any]) -> dict[str, Any]:
    """Job start, connection.json time and Jupyter's own log span, read on the login node."""
    out = f"{state['run_dir']}/job-{state['job_id']}.out"
    conn_file = f"{state['run_dir']}/connection.json"
    with connection(info) as conn:
        # %.9W: the birth time to the nanosecond (%W alone truncates it to the second)
        stat = sh(conn, f"stat -c '%.9W %.9Y' {out} {conn_file}", warn=True).stdout.split()
        log = sh(conn, f"cat {out}", warn=True).stdout
    times: dict[str, Any] = {}
    if len(stat) >= 4:
        times["job_start"] = float(stat[0]) or None  # 0: the file system keeps no birth time
        times["connection_file"] = float(stat[3])
    stamps = []
    for line in log.splitlines():
        m = JUPYTER_LOG.search(line)
        if m:
            day, frac = m.group(1)[:19], m.group(1)[19:]
            t = time.mktime(time.strptime(day, "%Y-%m-%d %H:%M:%S")) + float("0" + frac)
            stamps.append((t, line))
    if stamps:
        times["jupyter_first_log"] = stamps[0][0]
        running = [t for t, line in stamps if "is running at" in line or "http://" in line]
        times["jupyter_running_log"] = running[0] if running else None
    return times


def _ssh_connect(info: Any) -> float:
    t = time.perf_counter()
    with connection(info) as conn:
        conn.open()
        elapsed = time.perf_counter() - t
        sh(conn, "true")
    return elapsed


def one_run(info: Any, config: Path, env: dict[str, str], timeout: float) -> dict[str, Any]:
    """One launch, its phases, and the stop."""
    base = [sys.executable, "run_jupyter.py", "--uid", SITE, "--config", str(config)]
    r: dict[str, Any] = {"ssh_connect": _ssh_connect(info)}
    t0 = time.time()
    code, lines = _stamped([*base, "--mode", "run", "--no-browser", "--detach"], env, timeout)
    t_exit = time.time()
    r["returncode"] = code
    state_file = Path(env["EOHPC_STATE_DIR"]) / f"{SITE}.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else None
    t_submitted = _first(lines, r"submitted job")
    t_ready = _first(lines, r"http://127\.0\.0\.1:\d+/lab")
    if code != 0 or state is None or t_ready is None:
        r["error"] = "\n".join(line for _, _, line in lines[-15:])
    else:
        remote = _remote_times(info, state)
        r.update(
            total=t_ready - t0,
            process_exit=t_exit - t0,
            to_submitted=(t_submitted or t0) - t0,
        )
        start, ready_file = remote.get("job_start"), remote.get("connection_file")
        if start and t_submitted:
            # the job may start before the launcher prints its id: clamp at 0
            r["pending"] = max(0.0, start - t_submitted)
        if start and remote.get("jupyter_first_log"):
            r["job_start_to_jupyter_log"] = remote["jupyter_first_log"] - start
        if start and ready_file:
            r["jupyter_start"] = ready_file - start
            r["to_ready"] = t_ready - ready_file
        if remote.get("jupyter_first_log") and remote.get("jupyter_running_log"):
            r["jupyter_log_span"] = remote["jupyter_running_log"] - remote["jupyter_first_log"]
        if "pending" in r and "jupyter_start" in r:
            r["overhead"] = r["total"] - r["pending"] - r["jupyter_start"]
    t = time.perf_counter()
    stop_code, stop_lines = _stamped([*base, "--mode", "stop"], env, 120)
    r["stop"] = time.perf_counter() - t
    r["stop_returncode"] = stop_code
    if stop_code != 0:
        r["stop_output"] = "\n".join(line for _, _, line in stop_lines[-5:])
    return r


def bench(args: argparse.Namespace) -> dict[str, Any]:
    """Launch, time and stop a sandbox session ``args.repeat`` times (skipped if impossible)."""
    if not (ROOT / "run_jupyter.py").exists():
        return {"skipped": "run_jupyter.py is missing"}
    try:
        info = cluster("netns")
    except Skip as exc:
        print(f"  skipped: {exc}", flush=True)
        return {"skipped": str(exc)}
    runs = []
    with tempfile.TemporaryDirectory(prefix="eo-bench-launcher-") as tmp:
        config = Path(tmp) / "platforms.ini"
        ini = configparser.ConfigParser()
        ini[SITE] = info.ini_section()
        with config.open("w") as fh:
            ini.write(fh)
        env = {**os.environ, "EOHPC_STATE_DIR": str(Path(tmp) / "state")}
        for i in range(max(1, args.repeat)):
            r = one_run(info, config, env, timeout=600)
            runs.append(r)
            if "error" in r:
                print(f"  run {i}: launcher failed ({r['returncode']}):\n{r['error']}", flush=True)
                if i == 0:
                    return {"skipped": "the launcher could not start a session", "runs": runs}
                continue
            print(
                "  run {}: total {:.2f} s = to_submitted {:.2f} + pending {:.2f} + jupyter "
                "{:.2f} + to_ready {:.2f}; overhead {:.2f} s; stop {:.2f} s".format(
                    i,
                    r["total"],
                    r["to_submitted"],
                    r.get("pending", float("nan")),
                    r.get("jupyter_start", float("nan")),
                    r.get("to_ready", float("nan")),
                    r.get("overhead", float("nan")),
                    r["stop"],
                ),
                flush=True,
            )
    ok = [r for r in runs if "error" not in r]
    keys = ("ssh_connect", "to_submitted", "pending", "jupyter_start", "job_start_to_jupyter_log",
            "jupyter_log_span",
            "to_ready", "total", "overhead", "stop")  # fmt: skip
    summary = {
        k: statistics.median(r[k] for r in ok if k in r) for k in keys if any(k in r for r in ok)
    }
    return {"topology": "netns", "summary": summary, "runs": runs}
