"""A real HTCondor test cluster: a personal pool and sshd in a Debian 13 root.

``condor`` is packaged for Debian 13 (trixie) only, so the pool runs in a trixie root made with
``mmdebstrap`` once per machine (cached under ``/var/lib/eo-rig/htcondor/root``), in a private
mount namespace and the network namespace ``eorig-condor``: the pool's daemons talk over the
namespace's loopback, jobs and the Dask scheduler use the veth address :data:`LOGIN_ADDR` (the
host name ``eocondor``), and the test process reaches the pool through sshd on that address as
the cluster user, with the rig's generated key. See :mod:`tests.cluster.chroot`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from tests.cluster.chroot import ChrootRig
from tests.cluster.rig import (
    CLUSTER_USER,
    ClusterInfo,
    RigError,
    pid_alive,
    wait_for,
)

LOGIN_ADDR = "10.232.1.2"
LOCAL_DIR = "/srv/condor"
MASTER_PID = f"{LOCAL_DIR}/run/condor_master.pid"

RIG = ChrootRig(
    name="htcondor",
    suite="trixie",
    packages=(
        "condor",
        "python3-venv",
        "openssh-server",
        "procps",
        "ca-certificates",
        "iproute2",
        "rclone",
    ),
    netns="eorig-condor",
    host_if="eorig-cdr-h",
    inner_if="eorig-cdr-n",
    host_addr="10.232.1.1",
    login_addr=LOGIN_ADDR,
    hostname="eocondor",
)


def condor_ids(root: Path) -> str:
    match = re.search(r"(?m)^condor:[^:]*:(\d+):(\d+):", (root / "etc/passwd").read_text())
    if match is None:
        raise RigError("the root has no condor user (is the condor package installed?)")
    return f"{match.group(1)}.{match.group(2)}"


def condor_config(root: Path) -> str:
    """The personal pool (see shared/rig-notes/htcondor/condor_config, where it was measured)."""
    return f"""\
## personal single-machine HTCondor pool of the eo-hpc test rig (no systemd)
CONDOR_HOST = 127.0.0.1
NETWORK_INTERFACE = 127.0.0.1
RELEASE_DIR = /usr
BIN = /usr/bin
SBIN = /usr/sbin
LIB = /usr/lib/condor
LIBEXEC = /usr/libexec/condor
SHARE = /usr/share/condor
LOCAL_DIR = {LOCAL_DIR}
LOG = $(LOCAL_DIR)/log
SPOOL = $(LOCAL_DIR)/spool
EXECUTE = $(LOCAL_DIR)/execute
LOCK = $(LOCAL_DIR)/lock
RUN = $(LOCAL_DIR)/run
CRED_STORE_DIR = $(LOCAL_DIR)/cred_dir
SEC_TOKEN_SYSTEM_DIRECTORY = $(LOCAL_DIR)/tokens.d
SEC_PASSWORD_DIRECTORY = $(LOCAL_DIR)/passwords.d
CONDOR_IDS = {condor_ids(root)}
UID_DOMAIN = eorig
FILESYSTEM_DOMAIN = eorig
DAEMON_LIST = MASTER, COLLECTOR, NEGOTIATOR, SCHEDD, STARTD
# a local-only test pool: trust everything that reaches its loopback
SEC_DEFAULT_AUTHENTICATION_METHODS = FS, IDTOKENS, CLAIMTOBE
ALLOW_READ = *
ALLOW_WRITE = *
ALLOW_ADMINISTRATOR = *
ALLOW_NEGOTIATOR = *
ALLOW_DAEMON = *
ALLOW_CONFIG = *
# one partitionable slot larger than the machine, so a session and its workers fit
NUM_CPUS = 8
MEMORY = 16384
NUM_SLOTS_TYPE_1 = 1
SLOT_TYPE_1 = 100%
SLOT_TYPE_1_PARTITIONABLE = True
# execute point policy: always run, never preempt
START = TRUE
SUSPEND = FALSE
PREEMPT = FALSE
KILL = FALSE
WANT_SUSPEND = FALSE
WANT_VACATE = FALSE
CONTINUE = TRUE
# inside a chroot the starter cannot unshare(CLONE_NEWNS) (errno 22)
MOUNT_UNDER_SCRATCH =
MOUNT_PRIVATE_DEV_SHM = False
# test speed (defaults: negotiator cycles 20-60 s apart)
NEGOTIATOR_INTERVAL = 2
NEGOTIATOR_MIN_INTERVAL = 1
NEGOTIATOR_CYCLE_DELAY = 1
SCHEDD_INTERVAL = 2
UPDATE_INTERVAL = 2
STARTER_UPDATE_INTERVAL = 2
SHADOW_QUEUE_UPDATE_INTERVAL = 2
# lower than HTCondor's default (20000), as some pools set it: pipelines of more scenes than
# one submission holds are tested against it
MAX_JOBS_PER_SUBMISSION = 100
# finished jobs stay in condor_history; removed ones leave the queue at once
SYSTEM_PERIODIC_REMOVE = false
# condor_master would run linux_kernel_tuning as root: it widens the namespace's port range
# and raises machine-wide limits (pid_max, file-max, rmem_max) of the host running the tests
ENABLE_KERNEL_TUNING = FALSE
"""


def customize(root: Path) -> None:
    (root / "etc/condor/condor_config").write_text(condor_config(root))
    RIG.ensure_venv(root)


def is_up() -> bool:
    return RIG.running(RIG.host_path(MASTER_PID))


def up() -> ClusterInfo:
    """Bring the HTCondor rig up (idempotent) and return how to reach it."""
    return RIG.up(
        is_up=is_up,
        customize=customize,
        prepare=prepare,
        start_batch_system=start_pool,
        partition="",
    )


def prepare() -> None:
    """The pool's configuration and directories in the root."""
    # written on every start, so a cached root gets the current configuration
    (RIG.root / "etc/condor/condor_config").write_text(condor_config(RIG.root))
    ids = condor_ids(RIG.root)
    uid, gid = (int(x) for x in ids.split("."))
    for sub in (
        "",
        "log",
        "spool",
        "execute",
        "lock",
        "run",
        "cred_dir",
        "tokens.d",
        "passwords.d",
    ):
        d = RIG.host_path(f"{LOCAL_DIR}/{sub}")
        d.mkdir(parents=True, exist_ok=True)
        os.chown(d, uid if sub not in ("cred_dir", "tokens.d", "passwords.d") else 0, gid)
        d.chmod(0o700 if sub in ("cred_dir", "tokens.d", "passwords.d") else 0o755)
    RIG.host_path(f"{LOCAL_DIR}/execute").chmod(0o755)


def start_pool() -> None:
    """condor_master (it starts the pool's other daemons), then until the slot is there."""
    if pid_alive(RIG.host_path(MASTER_PID)) is None:
        RIG.sh(f"condor_master -pidfile {MASTER_PID}")
        wait_for(lambda: pid_alive(RIG.host_path(MASTER_PID)) is not None, 20, "condor_master")
    wait_slots()


def wait_slots(timeout: float = 90) -> None:
    """Until the schedd answers and the startd's slot is in the collector."""

    def ready() -> bool:
        slots = RIG.sh("condor_status -af Name", check=False)
        schedd = RIG.sh("condor_q -totals", check=False, user=CLUSTER_USER)
        return slots.returncode == 0 and bool(slots.stdout.strip()) and schedd.returncode == 0

    wait_for(ready, timeout, "the HTCondor pool's slot and schedd", 0.5)


def queue(user: str = CLUSTER_USER) -> str:
    """The user's jobs in the queue, one "id status name" per line."""
    proc = RIG.sh(f"condor_q {user} -af:j JobStatus JobBatchName", check=False)
    return proc.stdout.strip()


def job_details(user: str = CLUSTER_USER) -> str:
    """Everything ``condor_q -long`` tells about the user's jobs."""
    return RIG.sh(f"condor_q {user} -long", check=False).stdout


def job_names(user: str = CLUSTER_USER) -> dict[str, tuple[str, str]]:
    """The user's queued jobs: id -> (batch name, state name)."""
    from eoshared.batchsystem.htcondor import JOB_STATUS

    jobs = {}
    for line in queue(user).splitlines():
        job_id, status, name = [*line.split(None, 2), "", ""][:3]
        jobs[job_id] = (name, JOB_STATUS.get(int(status), status) if status.isdigit() else status)
    return jobs


def remove_job(job_id: str, user: str = CLUSTER_USER) -> None:
    """condor_rm a job, as its user would."""
    RIG.sh(f"condor_rm {job_id}", user=user)


def cancel_all_jobs(timeout: float = 30) -> None:
    RIG.sh(f"condor_rm {CLUSTER_USER}", check=False)
    RIG.sh(f"condor_rm -forcex {CLUSTER_USER}", check=False)
    wait_for(lambda: not queue(), timeout, "the HTCondor jobs to leave the queue", 0.5)


def down() -> None:
    def stop_pool() -> None:
        if pid_alive(RIG.host_path(MASTER_PID)) is not None:
            RIG.sh("condor_off -master -fast", check=False, timeout=60)
            wait_for(
                lambda: pid_alive(RIG.host_path(MASTER_PID)) is None, 30, "condor_master to stop"
            )

    RIG.down(stop_pool, (RIG.host_path(MASTER_PID),))
