"""Start JupyterLab, wait until it answers, then write connection.json next to this file.

Runs inside the batch job (or as a local subprocess) with only the standard library, so that
a plain Jupyter session needs nothing of eo-hpc in the cluster's environment: it is uploaded
into the run directory rather than imported. The token is read from the 0600 Jupyter config
file in the run directory; it never appears on a command line or in the environment the batch
system records.

With --scheduler-max-jobs M it first starts the session's Dask scheduler,
`python -m eoshared.scheduler.serve`, adaptive from 0 to M worker jobs; it publishes itself
where the job script's exports say (EOHPC_SCHEDULER_FILE, which Jupyter inherits, so that
notebooks' `eotoolkit.cluster.get_client()` find it). Signals reach both processes, and the
scheduler is stopped (it cancels its worker jobs) when Jupyter ends.
"""

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request


def free_port(ip):
    with socket.socket() as sock:
        sock.bind((ip, 0))
        return sock.getsockname()[1]


def answers(port, token):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/status", headers={"Authorization": f"token {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start_scheduler(max_jobs):
    """Start the session scheduler in the background."""
    command = [
        sys.executable,
        "-m",
        "eoshared.scheduler.serve",
        "--adapt-min",
        "0",
        "--adapt-max",
        str(max_jobs),
    ]
    print("eo-hpc: starting", " ".join(command), flush=True)
    return subprocess.Popen(command)


def stop_scheduler(scheduler):
    """SIGTERM the scheduler (it cancels its worker jobs) and wait for it."""
    if scheduler is None or scheduler.poll() is not None:
        return
    scheduler.terminate()
    try:
        scheduler.wait(timeout=30)
    except subprocess.TimeoutExpired:
        scheduler.kill()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--ip", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--scheduler-max-jobs", type=int, default=None)
    parser.add_argument("jupyter_args", nargs="*")
    args = parser.parse_args()
    config_file = os.path.join(args.run_dir, "jupyter_server_config.json")
    with open(config_file, encoding="utf-8") as handle:
        token = json.load(handle)["IdentityProvider"]["token"]
    # A run of a requeued job starts with none of the previous run's files: the launcher waits
    # for this run's own.
    stale = [os.path.join(args.run_dir, "connection.json")]
    if args.scheduler_max_jobs is not None:
        stale.append(os.environ.get("EOHPC_SCHEDULER_FILE", ""))
    for path in filter(None, stale):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
    port = args.port or free_port(args.ip)
    command = [
        sys.executable,
        "-m",
        "jupyter",
        *args.jupyter_args,
        f"--config={config_file}",
        f"--ip={args.ip}",
        f"--port={port}",
    ]
    scheduler = None
    if args.scheduler_max_jobs is not None:
        scheduler = start_scheduler(args.scheduler_max_jobs)
    print("eo-hpc: starting", " ".join(command), flush=True)
    child = subprocess.Popen(command)

    def forward(signum, _frame):
        for process in (child, scheduler):
            if process is not None and process.poll() is None:
                process.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    while child.poll() is None and not answers(port, token):
        time.sleep(0.1)
    if child.poll() is None:
        info = {"host": socket.gethostname(), "port": port, "pid": child.pid}
        path = os.path.join(args.run_dir, "connection.json")
        with open(path + ".tmp", "w", encoding="utf-8") as handle:
            json.dump(info, handle)
        os.replace(path + ".tmp", path)
        print(f"eo-hpc: Jupyter is ready on {info['host']}:{port}", flush=True)
    code = child.wait()
    stop_scheduler(scheduler)
    sys.exit(code)


if __name__ == "__main__":
    main()
