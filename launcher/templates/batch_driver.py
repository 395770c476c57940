"""Run a script with a Dask cluster of N workers that are SLURM jobs, then close the cluster.

Runs inside the eo-hpc batch job (needs dask-jobqueue and cryptography). It creates TLS
credentials for this run in <run dir>/tls (mode 0600), starts a scheduler here with a
dask_jobqueue.SLURMCluster configured by the site's Dask config (DASK_CONFIG), keeps it at N
workers (adaptive with minimum = maximum, so a lost or retired worker job is replaced), waits for
them, and runs `python SCRIPT ARGS...` in the run directory with DASK_SCHEDULER_ADDRESS and the
TLS settings exported, so that `distributed.Client()` without arguments connects to it.

However the script ends, and also on SIGTERM (scancel, time limit), SIGINT or SIGHUP, the worker
jobs are cancelled (`scancel --name`) and the cluster is closed. The script's exit status is
written to <run dir>/exit_status and is this process's exit status.
"""

import argparse
import math
import os
import pwd
import signal
import socket
import subprocess
import sys

import dask
import dask_jobqueue
from distributed import Client, Security

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Stopped(Exception):
    """The job received a stop signal."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def on_signal(signum, _frame):
    raise Stopped(signum)


def write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def run_security(run_dir):
    """Self-signed TLS credentials of this run, as files the worker jobs can read."""
    temporary = Security.temporary()
    tls_dir = os.path.join(run_dir, "tls")
    os.makedirs(tls_dir, mode=0o700, exist_ok=True)
    files = {
        "ca_file": os.path.join(tls_dir, "ca.pem"),
        "cert": os.path.join(tls_dir, "cert.pem"),
        "key": os.path.join(tls_dir, "key.pem"),
    }
    write_private(files["ca_file"], temporary.tls_ca_file)
    write_private(files["cert"], temporary.tls_client_cert)
    write_private(files["key"], temporary.tls_client_key)
    security = Security(
        tls_ca_file=files["ca_file"],
        tls_client_cert=files["cert"],
        tls_client_key=files["key"],
        tls_scheduler_cert=files["cert"],
        tls_scheduler_key=files["key"],
        tls_worker_cert=files["cert"],
        tls_worker_key=files["key"],
        require_encryption=True,
    )
    return security, files


def scheduler_options():
    """The configured scheduler options; the dashboard on loopback, the host name by default."""
    options = dict(dask.config.get("jobqueue.slurm.scheduler-options", {}) or {})
    options.setdefault("dashboard_address", "127.0.0.1:0")
    configured = dask.config.get("jobqueue.slurm.interface", None)
    if "host" not in options and "interface" not in options and not configured:
        options["host"] = socket.gethostname()
    return options


def script_env(address, files, run_dir):
    """The script's environment: where the scheduler is and the TLS files to reach it."""
    env = dict(os.environ)
    env.update(
        {
            "DASK_SCHEDULER_ADDRESS": address,
            "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True",
            "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": files["ca_file"],
            "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": files["cert"],
            "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": files["key"],
            "EOHPC_RUN_DIR": run_dir,
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def cancel_jobs(job_name):
    user = pwd.getpwuid(os.getuid()).pw_name
    subprocess.run(["scancel", f"--name={job_name}", f"--user={user}"], check=False, timeout=30)


def stop_child(child):
    if child is None or child.poll() is not None:
        return
    child.terminate()
    try:
        child.wait(timeout=10)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    for signum in STOP_SIGNALS:
        signal.signal(signum, on_signal)

    job_name = f"eohpc-batch-{os.environ.get('SLURM_JOB_ID', os.getpid())}-workers"
    code = 1
    cluster = child = None
    try:
        security, files = run_security(args.run_dir)
        cluster = dask_jobqueue.SLURMCluster(
            job_name=job_name,
            security=security,
            protocol="tls://",
            scheduler_options=scheduler_options(),
        )
        processes = int(getattr(cluster._dummy_job, "worker_processes", 1) or 1)
        jobs = math.ceil(args.workers / processes)
        print(
            f"eo-hpc: scheduler at {cluster.scheduler_address}; waiting for {args.workers} "
            f"workers in {jobs} SLURM jobs named {job_name}",
            flush=True,
        )
        cluster.adapt(minimum_jobs=jobs, maximum_jobs=jobs)
        with Client(cluster, timeout=60) as client:
            client.wait_for_workers(args.workers, timeout=args.timeout)
        print(f"eo-hpc: {args.workers} workers ready; running {' '.join(command)}", flush=True)
        env = script_env(cluster.scheduler_address, files, args.run_dir)
        child = subprocess.Popen([sys.executable, *command], cwd=args.run_dir, env=env)
        code = child.wait()
        write_private(os.path.join(args.run_dir, "exit_status"), f"{code}\n")
        print(f"eo-hpc: script exited with status {code}", flush=True)
    except Stopped as stop:
        print(f"eo-hpc: {stop}: stopping the script and the workers", flush=True)
        code = 128 + stop.signum
    except Exception as exc:  # reported in the job output; the finally block cleans up
        print(f"eo-hpc: {type(exc).__name__}: {exc}", flush=True)
    finally:
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        cancel_jobs(job_name)
        stop_child(child)
        if cluster is not None:
            cluster.close(timeout=20)
        print("eo-hpc: workers cancelled, cluster closed", flush=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
