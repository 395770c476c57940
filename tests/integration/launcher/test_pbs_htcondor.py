"""run / stop and batch on the real PBS and HTCondor test clusters, as for SLURM.

Each rig is a batch system in a Debian root of its own reached through sshd on its login
address (tests/cluster/pbs_rig.py, tests/cluster/htcondor_rig.py); the launcher runs here and
the cluster side uses the venv built inside the root.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from launcher.connection.readiness import api_status
from tests.support.process_output import follow_until, read_url, url_of
from tests.support.rig_sites import SYSTEMS, OtherLauncher, launcher_on
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(900)]

TWO_WORKERS = """
import sys

import dask.array as da
from distributed import Client

client = Client()
workers = client.scheduler_info()["workers"]
assert len(workers) == 2, workers
total = da.ones((2000, 1000), chunks=(250, 250)).sum().compute()
print("SUM", int(total), "ARGS", sys.argv[1:], flush=True)
"""

EXIT_3 = """
print("failing on purpose", flush=True)
raise SystemExit(3)
"""


@pytest.fixture(params=SYSTEMS)
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OtherLauncher]:
    yield from launcher_on(request, request.param, tmp_path)


def test_run_detach_reaches_jupyter_and_stop_leaves_no_job(site: OtherLauncher) -> None:
    # --detach returns once Jupyter answered /api/status with the token through the tunnel.
    result = site.run("--uid", "sandbox", "--mode", "run", "--no-browser", "--detach", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    _, _, token = url_of(result.stdout)
    proc = site.start("--uid", "sandbox", "--mode", "attach", "--no-browser")
    try:
        _, port, token2 = read_url(proc)
        assert token2 == token
        assert api_status(port, token) == 200
        assert api_status(port, "wrong-token") == 403
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    status = site.run("--uid", "sandbox", "--mode", "status", "--json")
    record = json.loads(status.stdout)
    # the batch system's own name of the state: R (PBS), RUNNING (HTCondor)
    assert record["state"] in ("R", "RUNNING") and record["node"] == site.info.compute_hostname
    assert site.queue() != ""
    assert record["job_id"] and record["url"] and token in str(record["url"])
    logs = site.run("--uid", "sandbox", "--mode", "logs", "-n", "200")
    assert logs.returncode == 0 and "Jupyter is ready on" in logs.stdout, logs
    # The token is nowhere the batch system or other users can read it.
    details = site.rig_module.job_details()  # type: ignore[attr-defined]
    assert "eohpc-jupyter" in details and token not in details
    assert token not in site.rig_module.RIG.sh("ps -eww -o args", check=False).stdout  # type: ignore[attr-defined]
    stopped = site.run("--uid", "sandbox", "--mode", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert wait_until(lambda: site.queue() == "", 60), site.queue()


def test_batch_two_worker_jobs_exit_0(site: OtherLauncher, tmp_path: Path) -> None:
    script = tmp_path / "analysis.py"
    script.write_text(TWO_WORKERS)
    result = site.run(
        "--uid", "sandbox", "--mode", "batch", "--script", str(script), "--workers", "2",
        "--", "one", "two words", timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUM 2000000 ARGS ['one', 'two words']" in result.stdout
    assert "eo-hpc: 2 workers ready" in result.stdout


def test_batch_exit_status_is_the_launchers(site: OtherLauncher, tmp_path: Path) -> None:
    script = tmp_path / "fails.py"
    script.write_text(EXIT_3)
    start = time.monotonic()
    result = site.run(
        "--uid", "sandbox", "--mode", "batch", "--script", str(script), "--workers", "1",
        timeout=600,
    )  # fmt: skip
    seconds = time.monotonic() - start
    assert result.returncode == 3, result.stdout + result.stderr
    assert seconds < 60, seconds
    assert "failing on purpose" in result.stdout
    assert "eo-hpc: script exited with status 3" in result.stdout
    assert "script exit status 3" in result.stderr


NOTEBOOK_CELLS = """
import json, sys

import dask.array as da
import dask_jobqueue
from distributed import Client

cls = getattr(dask_jobqueue, sys.argv[1])
cluster = cls()  # no arguments: the profile's Dask config in ~/.config/dask
script = cluster.job_script()
cluster.scale(1)
client = Client(cluster)
client.wait_for_workers(1, timeout=120)
total = int(da.ones((2000, 1000), chunks=(500, 500)).sum().compute())
jobs = sorted(str(job.job_id) for job in cluster.workers.values())
client.close()
cluster.close()
print("RESULT " + json.dumps({"total": total, "script": script, "jobs": jobs}))
"""


def test_jobqueue_cluster_without_arguments_from_the_installed_config(
    site: OtherLauncher,
) -> None:
    """What a notebook does: the system's dask-jobqueue cluster with no arguments, configured by
    the Dask file `--mode install` writes; after close() no worker job is left."""
    from eoshared.batchsystem import batch_system_class
    from launcher.config import load_site
    from launcher.sites.jobscript import dask_yaml

    info = site.info
    assert info is not None
    loaded = load_site("sandbox", site.ini)
    system = batch_system_class(loaded.profile.batch_system)
    home = f"/home/{info.user}"
    config = f"{home}/.config/dask/eohpc-{loaded.platform}.yaml"
    with info.connection() as conn:
        conn.run("mkdir -p ~/.config/dask ~/.eo-tests", hide=True, in_stream=False)
        conn.run(f"umask 077 && cat > {config}", hide=True, in_stream=io.StringIO(
            dask_yaml(loaded.profile, home)))  # fmt: skip
        conn.run("cat > ~/.eo-tests/notebook.py", hide=True, in_stream=io.StringIO(NOTEBOOK_CELLS))
        try:
            start = time.monotonic()
            ran = conn.run(
                f"cd ~/.eo-tests && {info.venv}/bin/python notebook.py {system.jobqueue_class}",
                hide=True, in_stream=False, warn=True, timeout=300,
            )  # fmt: skip
            seconds = time.monotonic() - start
        finally:
            conn.run(f"rm -rf {config} ~/.eo-tests", hide=True, in_stream=False)
    assert ran.return_code == 0, ran.stdout + ran.stderr
    result = json.loads(ran.stdout.split("RESULT ", 1)[1])
    assert result["total"] == 2000 * 1000 and len(result["jobs"]) == 1
    # the worker job's resources come from the profile's jobqueue section
    assert ("#PBS -l select=1:ncpus=1:mem=1024MB" in result["script"]) or (
        "RequestMemory = floor(MY.DaskWorkerMemory / 1048576)" in result["script"]
        and "MY.DaskWorkerMemory = 1073741824" in result["script"]
    ), result["script"]
    assert wait_until(lambda: site.queue() == "", 30), site.queue()
    print(f"notebook-style cluster on {system.name}: {seconds:.1f} s")


LAPTOP_CLIENT = """
import json, socket

import dask.array as da
from eotoolkit.cluster import get_client

with get_client() as client:
    total = da.ones((2000, 1000), chunks=(500, 500)).sum().compute()
    hosts = sorted(set(client.run(socket.gethostname).values()))
    print("RESULT " + json.dumps({"total": int(total), "address": client.scheduler.address,
                                  "hosts": hosts}))
"""


def test_run_scheduler_serves_the_laptop(site: OtherLauncher, tmp_path: Path) -> None:
    """run --scheduler: the session scheduler's worker jobs are the batch system's jobs and
    get_client() on the laptop computes on them through the tunnel. (On the HTCondor rig,
    Python 3.13 with OpenSSL 3.5, this needs eoshared.scheduler.tls_errors: without it the
    joining worker's registration left a stale OpenSSL error that failed the scheduler's next
    reads, and the worker was removed again and again.)"""
    started = site.run(
        "--uid", "sandbox", "--mode", "run", "--no-browser", "--detach", "--scheduler",
        "--max-worker-jobs", "1", timeout=600,
    )  # fmt: skip
    assert started.returncode == 0, started.stdout + started.stderr
    attach = site.start("--uid", "sandbox", "--mode", "attach", "--no-browser")
    try:
        read_url(attach)
        assert attach.stdout is not None
        deadline = time.monotonic() + 60
        while "get_client()" not in attach.stdout.readline():
            assert time.monotonic() < deadline and attach.poll() is None
        env = {**site.env, "EOHPC_SESSION": "sandbox"}
        env.pop("DASK_SCHEDULER_ADDRESS", None)
        laptop = subprocess.run(
            [sys.executable, "-c", LAPTOP_CLIENT], env=env, cwd=tmp_path,
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert laptop.returncode == 0, laptop.stdout + laptop.stderr
        result = json.loads(laptop.stdout.split("RESULT ", 1)[1])
        assert result["total"] == 2000 * 1000
        assert result["address"].startswith("tls://127.0.0.1:")
        assert result["hosts"] == [site.info.compute_hostname]  # type: ignore[union-attr]
    finally:
        attach.send_signal(signal.SIGINT)
        attach.wait(timeout=60)
        stopped = site.run("--uid", "sandbox", "--mode", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert wait_until(lambda: site.queue() == "", 60), site.queue()


def job_number(job_id: object) -> str:
    """``12`` of PBS's ``12.eopbs`` and of HTCondor's ``12.0``."""
    return str(job_id).split(".")[0]


def queued_numbers(site: OtherLauncher) -> list[str]:
    return [job_number(line.split()[0]) for line in site.queue().splitlines() if line.strip()]


def test_attach_after_kill_9_reuses_the_job_and_logs_follow(site: OtherLauncher) -> None:
    """A foreground run killed with SIGKILL leaves its job; attach reaches the same Jupyter
    (no second job), and logs -f follows the job's output until Ctrl-C."""
    proc = site.start("--uid", "sandbox", "--mode", "run", "--no-browser")
    try:
        _, _, token = read_url(proc, timeout=400)
        record = json.loads(site.run("--uid", "sandbox", "--mode", "status", "--json").stdout)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    job_id = record["job_id"]
    assert queued_numbers(site) == [job_number(job_id)]
    attach = site.start("--uid", "sandbox", "--mode", "attach", "--no-browser")
    try:
        _, port, token2 = read_url(attach)
        assert token2 == token and api_status(port, token) == 200
    finally:
        attach.send_signal(signal.SIGINT)
        attach.wait(timeout=60)
    assert attach.returncode == 130
    assert queued_numbers(site) == [job_number(job_id)]
    follow = site.start("--uid", "sandbox", "--mode", "logs", "-f", "-n", "200")
    try:
        follow_until(follow, "Jupyter is ready on", 60)
    finally:
        follow.send_signal(signal.SIGINT)
        follow.wait(timeout=30)
    assert follow.returncode == 0, follow.returncode  # Ctrl-C ends following, not an error
    stopped = site.run("--uid", "sandbox", "--mode", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert wait_until(lambda: site.queue() == "", 60), site.queue()


SLOW_LINES = """
import time

for i in range(4):
    print("line", i, flush=True)
    time.sleep(2)
print("done", flush=True)
"""


def test_logs_follow_a_detached_batch_job_until_it_ends(
    site: OtherLauncher, tmp_path: Path
) -> None:
    script = tmp_path / "slow.py"
    script.write_text(SLOW_LINES)
    submitted = site.run(
        "--uid", "sandbox", "--mode", "batch", "--script", str(script), "--workers", "1",
        "--detach", timeout=300,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    job_id = submitted.stdout.strip().splitlines()[-1]
    start = time.monotonic()
    follow = site.run("--uid", "sandbox", "--mode", "logs", "-f", "--job", job_id, timeout=400)
    seconds = time.monotonic() - start
    assert follow.returncode == 0, follow.stdout + follow.stderr
    lines = follow.stdout
    assert all(f"line {i}" in lines for i in range(4)) and "done" in lines, lines
    assert "eo-hpc: script exited with status 0" in lines, lines
    assert lines.index("line 0") < lines.index("line 3") < lines.index("done")
    assert wait_until(lambda: site.queue() == "", 60), site.queue()
    print(f"logs -f of a batch job: {seconds:.1f} s")


EOTOOLKIT_CLUSTER = """
import json

import dask.array as da
from eotoolkit.cluster import detect_batch_system, get_client, jobqueue_cluster

found = detect_batch_system()
with jobqueue_cluster(jobs=1, timeout=180) as client:
    fixed = int(da.ones((2000, 1000), chunks=(500, 500)).sum().compute())
    fixed_class = type(client.cluster).__name__
    fixed_jobs = sorted(str(job.job_id) for job in client.cluster.workers.values())
client = get_client(max_jobs=1)
try:
    adaptive = int(da.ones((2000, 1000), chunks=(500, 500)).sum().compute())
    adaptive_class = type(client.cluster).__name__
finally:
    cluster = client.cluster
    client.close()
    cluster.close()
print("RESULT " + json.dumps({"found": found, "fixed": fixed, "fixed_class": fixed_class,
                              "fixed_jobs": fixed_jobs, "adaptive": adaptive,
                              "adaptive_class": adaptive_class}))
"""


def test_eotoolkit_cluster_finds_the_batch_system_from_the_installed_config(
    site: OtherLauncher,
) -> None:
    """On the login node, with the Dask config `--mode install` writes: detect_batch_system()
    names the rig's batch system, jobqueue_cluster(jobs=1) and get_client() compute on its
    worker jobs, and no job is left afterwards."""
    from eoshared.batchsystem import batch_system_class
    from launcher.config import load_site
    from launcher.sites.jobscript import dask_yaml

    info = site.info
    assert info is not None
    loaded = load_site("sandbox", site.ini)
    system = batch_system_class(loaded.profile.batch_system)
    home = f"/home/{info.user}"
    config = f"{home}/.config/dask/eohpc-{loaded.platform}.yaml"
    with info.connection() as conn:
        conn.run("mkdir -p ~/.config/dask ~/.eo-tests", hide=True, in_stream=False)
        conn.run(f"umask 077 && cat > {config}", hide=True, in_stream=io.StringIO(
            dask_yaml(loaded.profile, home)))  # fmt: skip
        conn.run("cat > ~/.eo-tests/clusters.py", hide=True,
                 in_stream=io.StringIO(EOTOOLKIT_CLUSTER))  # fmt: skip
        try:
            start = time.monotonic()
            ran = conn.run(
                f"cd ~/.eo-tests && env -u EOHPC_BATCH_SYSTEM {info.venv}/bin/python clusters.py",
                hide=True, in_stream=False, warn=True, timeout=400,
            )  # fmt: skip
            seconds = time.monotonic() - start
        finally:
            conn.run(f"rm -rf {config} ~/.eo-tests", hide=True, in_stream=False)
    assert ran.return_code == 0, ran.stdout + ran.stderr
    result = json.loads(ran.stdout.split("RESULT ", 1)[1])
    assert result["found"] == system.name
    assert result["fixed"] == result["adaptive"] == 2000 * 1000
    assert result["fixed_class"] == result["adaptive_class"] == system.jobqueue_class
    assert len(result["fixed_jobs"]) == 1
    assert wait_until(lambda: site.queue() == "", 60), site.queue()
    print(f"eotoolkit.cluster on {system.name}: {seconds:.1f} s")


def test_install_and_uninstall_the_environment(site: OtherLauncher) -> None:
    """--mode install makes a venv with this checkout's wheel, JupyterLab and dask-jobqueue and
    writes the Dask config (pip reaches the index through a proxy on this machine: the rig's
    namespace has no other way out); uninstall removes exactly that, a second one says so."""
    from launcher.config import load_site
    from tests.cluster.pip_proxy import connect_proxy

    info = site.info
    assert info is not None
    chroot = site.rig_module.RIG  # type: ignore[attr-defined]
    env_path = "~/eohpc-install-test/venv"
    site.write_site("fresh", **info.ini_section(), env_path=env_path)
    platform = load_site("fresh", site.ini).platform
    pip_dir = chroot.root / "home" / info.user / ".config" / "pip"
    pip_dir.mkdir(parents=True, exist_ok=True)
    bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    (pip_dir / "host-ca.crt").write_bytes(bundle.read_bytes())
    leftovers = (
        f"~/eohpc-install-test ~/.eohpc/installs/fresh.json ~/.config/dask/eohpc-{platform}.yaml "
        "~/.eohpc/dist/eo_hpc-*.whl ~/.config/pip"
    )
    try:
        with connect_proxy(chroot.host_addr) as port:
            (pip_dir / "pip.conf").write_text(
                f"[global]\nproxy = http://{chroot.host_addr}:{port}\n"
                f"cert = /home/{info.user}/.config/pip/host-ca.crt\n"
                "disable-pip-version-check = true\n"
            )
            chroot.sh(f"chown -R {info.user}: /home/{info.user}/.config/pip")
            start = time.monotonic()
            first = site.run("--uid", "fresh", "--mode", "install", timeout=1500)
            seconds = time.monotonic() - start
            assert first.returncode == 0, first.stdout + first.stderr
            with info.connection() as conn:
                check = conn.run(
                    f"{env_path}/bin/python -c 'import jupyterlab, dask_jobqueue, "
                    "dask_labextension, jupyter_server_proxy, launcher, eotoolkit' && "
                    f"ls ~/.config/dask/eohpc-{platform}.yaml ~/.eohpc/installs/fresh.json",
                    hide=True, in_stream=False, warn=True,
                )  # fmt: skip
            assert check.return_code == 0, check.stdout + check.stderr
            again = site.run("--uid", "fresh", "--mode", "install", timeout=900)  # idempotent
            assert again.returncode == 0, again.stdout + again.stderr
        gone = site.run("--uid", "fresh", "--mode", "uninstall")
        assert gone.returncode == 0, gone.stderr
        with info.connection() as conn:
            left = conn.run(
                f"ls -d {env_path} ~/.config/dask/eohpc-{platform}.yaml "
                "~/.eohpc/installs/fresh.json",
                hide=True, in_stream=False, warn=True,
            )  # fmt: skip
        assert left.return_code != 0 and not left.stdout.strip()
        twice = site.run("--uid", "fresh", "--mode", "uninstall")
        assert twice.returncode == 9 and "nothing to uninstall" in twice.stderr
        print(f"install on {platform}: {seconds:.0f} s")
    finally:
        with info.connection() as conn:
            conn.run(f"rm -rf {leftovers}", hide=True, in_stream=False, warn=True)
