"""A real OpenPBS test cluster: server, scheduler, comm, MOM and sshd in a Debian 12 root.

OpenPBS is built from the vendored source (``shared/vendor/openpbs-*.tar.gz`` next to the
repository) in a root made with ``mmdebstrap``, once per machine (cached under
``/var/lib/eo-rig/pbs/root``). It runs in the network namespace ``eorig-pbs`` whose veth address
:data:`LOGIN_ADDR` is the login node and the single execution host (PBS refuses hosts known only
by a loopback address). The test process reaches it through sshd on that address as the cluster
user, with the rig's generated key. See :mod:`tests.cluster.chroot`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.cluster.chroot import ROOT_PATH, ChrootRig
from tests.cluster.rig import (
    CLUSTER_USER,
    REPO_ROOT,
    ClusterInfo,
    RigError,
    pid_alive,
    run,
    wait_for,
)

SHARED = Path(os.environ.get("EO_RIG_SHARED", REPO_ROOT.parent / "shared"))
QUEUE = "workq"
PBS_HOME = "/var/spool/pbs"
BUILD_PACKAGES = (
    "gcc", "g++", "make", "libtool", "autoconf", "automake", "libhwloc-dev", "libx11-dev",
    "libxt-dev", "libedit-dev", "libical-dev", "libncurses-dev", "perl",
    "postgresql-server-dev-all", "postgresql-contrib", "python3-dev", "tcl-dev", "tk-dev",
    "swig", "libexpat1-dev", "libssl-dev", "libxext-dev", "libxft-dev", "libcjson-dev", "expat",
    "libedit2", "postgresql", "python3", "sudo", "tcl", "tk", "libical3", "libcjson1", "procps",
    "python3-venv", "ca-certificates", "hostname", "openssh-server", "iproute2", "rclone",
    "openmpi-bin",  # a pipeline's MPI ranks (tests/integration/launcher/test_pipeline_mpi.py)
)  # fmt: skip
LOGIN_ADDR = "10.232.0.2"

RIG = ChrootRig(
    name="pbs",
    suite="bookworm",
    packages=BUILD_PACKAGES,
    netns="eorig-pbs",
    host_if="eorig-pbs-h",
    inner_if="eorig-pbs-n",
    host_addr="10.232.0.1",
    login_addr=LOGIN_ADDR,
    hostname="eopbs",
    # pbs_habitat finds PostgreSQL's initdb on the PATH.
    path=f"/opt/pbs/bin:/opt/pbs/sbin:/usr/lib/postgresql/15/bin:{ROOT_PATH}",
)

#: PBS's own lock files (each holds its daemon's pid), as paths inside the root.
LOCK_FILES = {
    "pbs_comm": f"{PBS_HOME}/server_priv/comm.lock",
    "pbs_mom": f"{PBS_HOME}/mom_priv/mom.lock",
    "pbs_sched": f"{PBS_HOME}/sched_priv/sched.lock",
    "pbs_server": f"{PBS_HOME}/server_priv/server.lock",
    "postgres": f"{PBS_HOME}/datastore/postmaster.pid",
}


def source_tarball() -> Path:
    found = sorted((SHARED / "vendor").glob("openpbs-*.tar.gz"))
    if not found:
        raise RigError(f"no OpenPBS source in {SHARED / 'vendor'} (openpbs-*.tar.gz)")
    return found[-1]


def pbs_conf() -> str:
    return f"""\
PBS_SERVER={RIG.hostname}
PBS_START_SERVER=1
PBS_START_SCHED=1
PBS_START_COMM=1
PBS_START_MOM=1
PBS_EXEC=/opt/pbs
PBS_HOME={PBS_HOME}
PBS_CORE_LIMIT=unlimited
PBS_SCP=/usr/bin/scp
"""


def customize(root: Path) -> None:
    """Build and install OpenPBS in the root, and the cluster-side venv."""
    stage = root / ".eo-rig-stage-openpbs"
    if not stage.exists():
        src = root / "usr/src/openpbs"
        if src.exists():
            shutil.rmtree(src)
        src.mkdir(parents=True)
        run(["tar", "-xzf", str(source_tarball()), "--strip-components=1", "-C", str(src)])
        jobs = os.cpu_count() or 2
        build = (
            "set -e; cd /usr/src/openpbs; ./autogen.sh > /var/log/pbs-autogen.log 2>&1; "
            "./configure --prefix=/opt/pbs > /var/log/pbs-configure.log 2>&1; "
            f"make -j{jobs} > /var/log/pbs-make.log 2>&1; "
            "make install > /var/log/pbs-install.log 2>&1"
        )
        proc = run(RIG.build_command(root, build), check=False, timeout=3600)
        if proc.returncode != 0:
            logs = sorted((root / "var/log").glob("pbs-*.log"), key=lambda p: p.stat().st_mtime)
            tail = logs[-1].read_text()[-3000:] if logs else proc.stderr
            raise RigError(f"building OpenPBS failed:\n{tail}")
        stage.touch()
    stage = root / ".eo-rig-stage-setup"
    if not stage.exists():
        setup = (
            "set -e; /opt/pbs/libexec/pbs_postinstall server 23.06.06 /opt/pbs "
            f"{PBS_HOME} postgres > /var/log/pbs-postinstall.log 2>&1; "
            "chmod 4755 /opt/pbs/sbin/pbs_iff /opt/pbs/sbin/pbs_rcp; "
            'for f in /opt/pbs/bin/*; do ln -sf "$f" /usr/local/bin/; done'
        )
        run(RIG.build_command(root, setup), timeout=600)
        (root / "etc/pbs.conf").write_text(pbs_conf())
        stage.touch()
    RIG.ensure_venv(root)


def mom_config() -> str:
    return f"$clienthost {RIG.hostname}\n$restrict_user_maxsysid 999\n$usecp *:/ /\n"


QMGR_SETUP = f"""\
set node {RIG.hostname} resources_available.ncpus = 8
set node {RIG.hostname} resources_available.mem = 16gb
set server flatuid = true
set server job_history_enable = true
set server job_history_duration = 01:00:00
set server scheduler_iteration = 2
set server default_queue = {QUEUE}
set server resources_default.ncpus = 1
"""


def is_up() -> bool:
    return RIG.running(*(RIG.host_path(p) for p in LOCK_FILES.values()))


def up() -> ClusterInfo:
    """Bring the PBS rig up (idempotent) and return how to reach it."""
    return RIG.up(
        is_up=is_up,
        customize=customize,
        prepare=prepare,
        start_batch_system=start_pbs,
        partition=QUEUE,
    )


def prepare() -> None:
    (RIG.root / PBS_HOME.lstrip("/") / "mom_priv/config").write_text(mom_config())


def start_pbs() -> None:
    """PostgreSQL and PBS's daemons, the node with its size, the server's settings."""
    # PostgreSQL's socket directory (systemd's tmpfiles make it elsewhere).
    RIG.sh("install -d -o postgres -g postgres -m 2775 /run/postgresql")
    out = RIG.sh("/opt/pbs/libexec/pbs_init.d start 2>&1", check=False, timeout=600)
    for name, lock in LOCK_FILES.items():
        if pid_alive(RIG.host_path(lock)) is None:
            wait_for(
                lambda lock=lock: pid_alive(RIG.host_path(lock)) is not None,
                30,
                f"{name} ({out.stdout[-2000:]})",
            )
    wait_for(lambda: RIG.sh("qstat -B", check=False).returncode == 0, 60, "pbs_server")
    if RIG.sh(f"pbsnodes {RIG.hostname}", check=False).returncode != 0:
        RIG.sh(f"qmgr -c 'create node {RIG.hostname}'")
    RIG.sh(f"qmgr <<'EOF'\n{QMGR_SETUP}EOF")
    wait_node_free()


def wait_node_free(timeout: float = 60) -> None:
    def free() -> bool:
        proc = RIG.sh(f"pbsnodes {RIG.hostname}", check=False)
        return proc.returncode == 0 and "state = free" in proc.stdout

    wait_for(free, timeout, "the PBS node to be free", 0.5)


def queue(user: str = CLUSTER_USER) -> str:
    """The ids of the user's unfinished jobs, one per line."""
    return RIG.sh(f"qselect -u {user}", check=False).stdout.strip()


def job_details(user: str = CLUSTER_USER) -> str:
    """Everything ``qstat -f`` tells about the user's unfinished jobs."""
    return RIG.sh(f"qselect -u {user} | xargs -r qstat -f", check=False).stdout


def job_names(user: str = CLUSTER_USER) -> dict[str, tuple[str, str]]:
    """The user's unfinished jobs: id -> (name, state). One ``qstat -F json`` per job: given
    several ids, OpenPBS prints only the first job's JSON."""
    from eoshared.batchsystem.pbs import json_documents

    out = RIG.sh(
        f'for id in $(qselect -u {user}); do qstat -f -F json "$id"; done', check=False
    ).stdout
    jobs: dict[str, tuple[str, str]] = {}
    for document in json_documents(out):
        for i, j in (document.get("Jobs") or {}).items():
            jobs[i] = (str(j.get("Job_Name", "")), str(j.get("job_state", "")))
    return jobs


def remove_job(job_id: str, user: str = CLUSTER_USER) -> None:
    """qdel a job, as its user would."""
    RIG.sh(f"qdel {job_id}", user=user)


def cancel_all_jobs(timeout: float = 30) -> None:
    RIG.sh(f"qselect -u {CLUSTER_USER} | xargs -r qdel -W force", check=False)
    wait_for(lambda: not RIG.sh(f"qselect -u {CLUSTER_USER}", check=False).stdout.strip(),
             timeout, "the PBS jobs to end", 0.5)  # fmt: skip


def down() -> None:
    def stop_pbs() -> None:
        if pid_alive(RIG.holder_pid) is not None:
            RIG.sh("/opt/pbs/libexec/pbs_init.d stop", check=False, timeout=120)

    pid_files = tuple(RIG.host_path(p) for p in LOCK_FILES.values() if p.endswith(".pid"))
    RIG.down(stop_pbs, pid_files)
