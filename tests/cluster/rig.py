"""A real SLURM + OpenSSH test cluster on this machine, started and stopped by the test suite.

Two topologies:

``single``
    One node: slurmctld, slurmd and sshd in the machine's own network namespace; sshd listens on
    a free loopback port.
``netns``
    A "login node" and a "compute node", each a network namespace with its own address and host
    name. slurmctld and sshd run on the login node, slurmd on the compute node. The test process
    (the "laptop") can reach only the login node, so anything running on the compute node must
    be reached through an SSH tunnel via the login node.

Both use Debian's slurm-wlm, munge and openssh-server, run as root, without systemd. Daemons are
tracked by pid files below :data:`RIG_ROOT` and every step is idempotent.

The single topology can also run a second sshd that asks for a TOTP code after the key
(:mod:`tests.cluster.twofactor`); ``down`` stops it too.

Command line (as root)::

    python -m tests.cluster.rig up [--topology single|netns] [--venv]
    python -m tests.cluster.rig status
    python -m tests.cluster.rig down [--topology single|netns]

PBS and HTCondor clusters, each in a Debian root and network namespace of its own
(:mod:`tests.cluster.pbs_rig`, :mod:`tests.cluster.htcondor_rig`)::

    python -m tests.cluster.rig up|down|status --batch-system pbs|htcondor
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fabric import Connection

RIG_ROOT = Path(os.environ.get("EO_RIG_ROOT", "/var/lib/eo-rig"))
VENV_ROOT = Path(os.environ.get("EO_RIG_VENV", "/opt/eo-rig/venv"))
REPO_ROOT = Path(__file__).resolve().parents[2]
CLUSTER_USER = os.environ.get("EO_RIG_USER", "eouser")
OTHER_USER = "eoother"
PARTITION = "work"
APT_PACKAGES = [
    "slurmctld",
    "slurmd",
    "slurm-client",
    "munge",
    "openssh-server",
    "iproute2",
    "python3-venv",
    "rclone",
    "libpam-google-authenticator",  # the second-factor sshd (tests/cluster/twofactor.py)
    "openmpi-bin",  # a pipeline's MPI ranks on the two compute nodes
]
REQUIRED_COMMANDS = [
    "slurmctld",
    "slurmd",
    "sbatch",
    "munged",
    "sshd",
    "ip",
    "nsenter",
    "unshare",
    "rclone",
    "google-authenticator",
    "mpiexec",
]
MUNGE_RUN = Path("/run/munge")
HOSTS_BEGIN = "# BEGIN eo-rig"
HOSTS_END = "# END eo-rig"

# Network plan of the two-namespace topology (addresses exist only inside namespaces made here).
NETNS_LOGIN = "eorig-login"
NETNS_COMPUTE = "eorig-compute"
#: A second compute node, on a link of its own to the login node (which routes between them).
NETNS_COMPUTE2 = "eorig-compute2"
RIG_NET = "10.231.0.0/16"
HOST_ADDR = "10.231.0.1"
LOGIN_PUBLIC_ADDR = "10.231.0.2"
LOGIN_PRIVATE_ADDR = "10.231.1.1"
COMPUTE_ADDR = "10.231.1.2"
LOGIN_PRIVATE2_ADDR = "10.231.2.1"
COMPUTE2_ADDR = "10.231.2.2"
#: The netns topology's partition of both compute nodes (multi-node jobs); PARTITION, the
#: default, holds the first one only, so every other test sees one node.
MULTI_PARTITION = "multi"


class RigError(RuntimeError):
    """The test cluster could not be brought up."""


@dataclass
class ClusterInfo:
    """How to reach a running test cluster, as a user's laptop would."""

    topology: str
    ssh_host: str
    ssh_port: int
    user: str
    key_path: str
    partition: str
    login_hostname: str
    compute_hostname: str
    slurm_conf: str
    python: str = "/usr/bin/python3"
    venv: str = str(VENV_ROOT)
    other_user: str = OTHER_USER
    other_key_path: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    #: The netns topology's partition of two compute nodes, and the second node's name.
    multi_partition: str = ""
    second_compute_hostname: str = ""

    def ini_section(self) -> dict[str, str]:
        """Keys of a ``platforms.ini`` section that points at this cluster."""
        section = {
            "platform": self.extra.get("platform", "sandbox"),
            "host": self.ssh_host,
            "port": str(self.ssh_port),
            "user": self.user,
            "keypath": self.key_path,
            "partition": self.partition,
        }
        return {k: v for k, v in section.items() if v}

    def connection(self, *, other: bool = False) -> Connection:
        """A fabric connection to the login node as the cluster user (or as the other user)."""
        from fabric import Connection

        return Connection(
            self.ssh_host,
            user=self.other_user if other else self.user,
            port=self.ssh_port,
            connect_kwargs={
                "key_filename": self.other_key_path if other else self.key_path,
                "look_for_keys": False,
                "allow_agent": False,
            },
            connect_timeout=10,
        )

    def ssh_command(
        self, *remote: str, key: str | None = None, user: str | None = None
    ) -> list[str]:
        """An ``ssh`` command line that runs ``remote`` on the login node."""
        return [
            "ssh",
            "-i",
            key or self.key_path,
            "-p",
            str(self.ssh_port),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            f"{user or self.user}@{self.ssh_host}",
            *remote,
        ]


# --------------------------------------------------------------------------------------------
# small helpers


def run(cmd: list[str], *, check: bool = True, **kwargs: object) -> subprocess.CompletedProcess:
    """Run a command, raising :class:`RigError` with its output when it fails."""
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if check and proc.returncode != 0:
        raise RigError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    return proc


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def pid_alive(pid_file: Path) -> int | None:
    """The pid recorded in ``pid_file`` if that process is alive."""
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid


def stop_pid(pid_file: Path, timeout: float = 10.0) -> None:
    pid = pid_alive(pid_file)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and pid_alive(pid_file) == pid:
            time.sleep(0.05)
        if pid_alive(pid_file) == pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise RigError(f"timed out after {timeout:.0f} s waiting for {what}")


@contextlib.contextmanager
def rig_lock(name: str = "rig"):  # type: ignore[no-untyped-def]
    """Serialise rig changes between concurrent test sessions on this machine."""
    RIG_ROOT.mkdir(parents=True, exist_ok=True)
    with open(RIG_ROOT / f".{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def short_hostname() -> str:
    return socket.gethostname().split(".")[0]


# --------------------------------------------------------------------------------------------
# packages, users, keys, munge


def ensure_packages() -> None:
    """Install Debian's SLURM, munge, OpenSSH and iproute2 when any command is missing."""
    missing = [
        c for c in REQUIRED_COMMANDS if not shutil.which(c, path="/usr/sbin:/usr/bin:/sbin:/bin")
    ]
    if not missing:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *APT_PACKAGES]
    if subprocess.run(install, capture_output=True, env=env).returncode != 0:
        run(["apt-get", "update", "-qq"], env=env)
        run(install, env=env)


def ensure_user(name: str) -> pwd.struct_passwd:
    """An unprivileged login user whose account is not locked (so sshd accepts its key)."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        run(["useradd", "--create-home", "--shell", "/bin/bash", name])
        entry = pwd.getpwnam(name)
    # useradd leaves the password field as "!" (locked); sshd without PAM refuses locked accounts.
    run(["usermod", "-p", "*", name])
    return entry


def ensure_key(path: Path) -> Path:
    """An ed25519 key pair without passphrase at ``path`` (private key mode 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)])
    path.chmod(0o600)
    return path


def authorize_key(user: pwd.struct_passwd, key: Path) -> None:
    ssh_dir = Path(user.pw_dir) / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    auth = ssh_dir / "authorized_keys"
    auth.write_text(Path(f"{key}.pub").read_text())
    auth.chmod(0o600)
    for p in (ssh_dir, auth):
        os.chown(p, user.pw_uid, user.pw_gid)


@contextlib.contextmanager
def extra_authorized_key(user_name: str, public_key: Path):  # type: ignore[no-untyped-def]
    """Authorize one more public key for ``user_name`` while the block runs, then remove exactly
    that line again (the keys already authorized, the rig's own among them, stay)."""
    user = pwd.getpwnam(user_name)
    line = public_key.read_text().strip()
    auth = Path(user.pw_dir) / ".ssh" / "authorized_keys"

    def edit(add: bool) -> None:
        with rig_lock("authorized_keys"):
            lines = auth.read_text().splitlines() if auth.exists() else []
            lines = [*lines, line] if add else [x for x in lines if x.strip() != line]
            auth.write_text("".join(f"{x}\n" for x in lines))
            auth.chmod(0o600)
            os.chown(auth, user.pw_uid, user.pw_gid)

    edit(add=True)
    try:
        yield
    finally:
        edit(add=False)


def ensure_munge() -> None:
    """A running munged that SLURM on every topology shares."""
    MUNGE_RUN.mkdir(parents=True, exist_ok=True)
    munge = pwd.getpwnam("munge")
    os.chown(MUNGE_RUN, munge.pw_uid, munge.pw_gid)
    MUNGE_RUN.chmod(0o755)
    key = Path("/etc/munge/munge.key")
    if not key.exists():
        run(["mungekey", "--create", "--force"])
        os.chown(key, munge.pw_uid, munge.pw_gid)
        key.chmod(0o400)
    pid_file = MUNGE_RUN / "munged.pid"
    if pid_alive(pid_file) is None:
        for stale in MUNGE_RUN.glob("munge.socket*"):
            stale.unlink()
        run(["runuser", "-u", "munge", "--", "munged", "--pid-file", str(pid_file)])
    wait_for(lambda: run(["munge", "-n"], check=False).returncode == 0, 10, "munged")


def stop_munge() -> None:
    stop_pid(MUNGE_RUN / "munged.pid")


# --------------------------------------------------------------------------------------------
# per-topology configuration


def topo_dir(topology: str) -> Path:
    return RIG_ROOT / topology


def slurmd_file_stem(topology: str) -> str:
    """The stem of slurmd's pid and log files: one per node (``%n``) where there are two."""
    return "slurmd" if topology == "single" else "slurmd-%n"


def slurmd_pid_files(topology: str, nodes: list[str]) -> list[Path]:
    """The pid file of every slurmd of a topology."""
    stem = slurmd_file_stem(topology)
    return [topo_dir(topology) / "run" / f"{stem.replace('%n', n)}.pid" for n in nodes]


def topology_nodes(topology: str) -> list[str]:
    """The compute nodes' names of a topology."""
    return [short_hostname()] if topology == "single" else [NETNS_COMPUTE, NETNS_COMPUTE2]


def slurm_conf_text(
    topology: str, ctld_host: str, ctld_addr: str, node: str, node_addr: str
) -> str:
    d = topo_dir(topology)
    stem = slurmd_file_stem(topology)
    spool = "spool" if topology == "single" else "spool/%n"
    second = ""
    if topology == "netns":
        second = (
            f"NodeName={NETNS_COMPUTE2} NodeAddr={COMPUTE2_ADDR} CPUs=8 RealMemory=16000 "
            "State=UNKNOWN\n"
            f"PartitionName={MULTI_PARTITION} Nodes={node},{NETNS_COMPUTE2} MaxTime=INFINITE "
            "State=UP\n"
        )
    return f"""\
ClusterName=eorig{topology}
SlurmctldHost={ctld_host}({ctld_addr})
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
ReturnToService=2
SchedulerType=sched/backfill
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc={d}/log/jobcomp.log
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/{spool}
SlurmctldPidFile={d}/run/slurmctld.pid
SlurmdPidFile={d}/run/{stem}.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/{stem}.log
SlurmctldDebug=info
SlurmdDebug=info
SlurmctldTimeout=30
SlurmdTimeout=30
MinJobAge=300
# lower than SLURM's default (1001), as some sites set it: pipelines of more scenes than one
# array holds are tested against it
MaxArraySize=100
KillWait=5
InactiveLimit=0
Waittime=0
DefMemPerCPU=1000
NodeName={node} NodeAddr={node_addr} CPUs=8 RealMemory=16000 State=UNKNOWN
PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP
{second}"""


def sshd_config_text(topology: str, listen: str, port: int, slurm_conf: Path) -> str:
    """The SLURM rig's sshd: :func:`sshd_config` with the rig's host key, the topology's pid
    file, and SLURM_CONF in every session's environment."""
    return sshd_config(
        listen=listen,
        port=port,
        host_key=HOST_KEY,
        pid_file=sshd_pid_file(topology),
        env={"SLURM_CONF": str(slurm_conf)},
    )


def prepare_dirs(topology: str) -> Path:
    d = topo_dir(topology)
    for sub in ("etc", "state", "spool", "run", "log"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    d.chmod(0o755)
    (d / "etc").chmod(0o755)
    return d


def in_namespace(netns: str | None, hostname: str | None, cmd: list[str]) -> list[str]:
    """Wrap ``cmd`` to run in a network namespace, with its own host name."""
    if netns is None:
        return cmd
    inner = " ".join(cmd)
    script = f"hostname {hostname} && exec {inner}"
    return ["nsenter", f"--net=/run/netns/{netns}", "unshare", "--uts", "sh", "-c", script]


def start_daemon(pid_file: Path, cmd: list[str], env: dict[str, str], what: str) -> None:
    if pid_alive(pid_file) is not None:
        return
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RigError(f"{what} did not start: {proc.stderr or proc.stdout}")
    wait_for(lambda: pid_alive(pid_file) is not None, 15, f"{what} pid file {pid_file}")


# --------------------------------------------------------------------------------------------
# sshd: one configuration and one start for the login node of every rig (the SLURM topologies,
# the second-factor sshd of tests/cluster/twofactor.py, the rigs of tests/cluster/chroot.py)

#: The SLURM rig's sshd host key (the rigs in Debian roots have theirs inside the root).
HOST_KEY = RIG_ROOT / "keys" / "ssh_host_ed25519_key"
#: What every rig's sshd allows: keys only (no PAM, no password), no root, TCP forwarding for
#: the launcher's tunnels, and room for its parallel sessions; dead clients noticed in 15 s.
SSHD_SETTINGS = {
    "UsePAM": "no",
    "PasswordAuthentication": "no",
    "KbdInteractiveAuthentication": "no",
    "PubkeyAuthentication": "yes",
    "AuthorizedKeysFile": ".ssh/authorized_keys",
    "PermitRootLogin": "no",
    "AllowTcpForwarding": "yes",
    "MaxSessions": "64",
    "MaxStartups": "64:30:128",
    "ClientAliveInterval": "15",
}


def sshd_config(
    *,
    listen: str,
    port: int,
    host_key: str | Path,
    pid_file: str | Path,
    env: dict[str, str] | None = None,
    settings: dict[str, str] | None = None,
    extra: str = "",
) -> str:
    """The sshd_config of a rig's login node: where it listens, its host key and pid file,
    :data:`SSHD_SETTINGS` (``settings`` replace some of them), ``env`` set in every session,
    SFTP, verbose logs, then the ``extra`` lines."""
    lines = [
        f"Port {port}",
        f"ListenAddress {listen}",
        f"HostKey {host_key}",
        f"PidFile {pid_file}",
    ]
    lines += [f"{key} {value}" for key, value in {**SSHD_SETTINGS, **(settings or {})}.items()]
    if env:
        lines.append("SetEnv " + " ".join(f"{key}={value}" for key, value in env.items()))
    lines += ["Subsystem sftp internal-sftp", "LogLevel VERBOSE"]
    return "\n".join(lines) + "\n" + extra


def prepare_sshd(config: Path, text: str, host_key: Path, privsep_dir: Path) -> None:
    """What an sshd needs before it starts: its configuration ``text`` in ``config``, an
    ed25519 host key without passphrase (made once) and its privilege separation directory."""
    config.write_text(text)
    if not host_key.exists():
        host_key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)])
    privsep_dir.mkdir(mode=0o755, parents=True, exist_ok=True)


def sshd_pid_file(topology: str) -> Path:
    """The pid file of a SLURM topology's sshd."""
    return topo_dir(topology) / "run" / "sshd.pid"


def start_sshd(topology: str, login_host: str, slurm_conf: str) -> None:
    """Start a SLURM topology's sshd from its configuration on the login node (no-op while it
    runs)."""
    ns = NETNS_LOGIN if topology == "netns" else None
    conf = topo_dir(topology) / "etc" / "sshd_config"
    command = in_namespace(ns, login_host, ["/usr/sbin/sshd", "-f", str(conf)])
    start_daemon(sshd_pid_file(topology), command, {**os.environ, "SLURM_CONF": slurm_conf}, "sshd")


# --------------------------------------------------------------------------------------------
# network namespaces


def ns_exists(name: str) -> bool:
    return Path(f"/run/netns/{name}").exists()


def ensure_netns() -> None:
    """Three namespaces: host <-> login (public side), login <-> compute and login <->
    compute2 (private side, each its own link; the login node routes between the two)."""
    if all(ns_exists(ns) for ns in (NETNS_LOGIN, NETNS_COMPUTE, NETNS_COMPUTE2)):
        return
    teardown_netns()
    for ns in (NETNS_LOGIN, NETNS_COMPUTE, NETNS_COMPUTE2):
        run(["ip", "netns", "add", ns])
        run(["ip", "-n", ns, "link", "set", "lo", "up"])
    run(["ip", "link", "add", "eorig-h", "type", "veth", "peer", "name", "eorig-l0"])
    run(["ip", "link", "set", "eorig-l0", "netns", NETNS_LOGIN])
    run(["ip", "addr", "add", f"{HOST_ADDR}/24", "dev", "eorig-h"])
    run(["ip", "link", "set", "eorig-h", "up"])
    run(["ip", "-n", NETNS_LOGIN, "addr", "add", f"{LOGIN_PUBLIC_ADDR}/24", "dev", "eorig-l0"])
    run(["ip", "-n", NETNS_LOGIN, "link", "set", "eorig-l0", "up"])
    run(["ip", "link", "add", "eorig-l1", "type", "veth", "peer", "name", "eorig-c0"])
    run(["ip", "link", "set", "eorig-l1", "netns", NETNS_LOGIN])
    run(["ip", "link", "set", "eorig-c0", "netns", NETNS_COMPUTE])
    run(["ip", "-n", NETNS_LOGIN, "addr", "add", f"{LOGIN_PRIVATE_ADDR}/24", "dev", "eorig-l1"])
    run(["ip", "-n", NETNS_LOGIN, "link", "set", "eorig-l1", "up"])
    run(["ip", "-n", NETNS_COMPUTE, "addr", "add", f"{COMPUTE_ADDR}/24", "dev", "eorig-c0"])
    run(["ip", "-n", NETNS_COMPUTE, "link", "set", "eorig-c0", "up"])
    run(["ip", "link", "add", "eorig-l2", "type", "veth", "peer", "name", "eorig-d0"])
    run(["ip", "link", "set", "eorig-l2", "netns", NETNS_LOGIN])
    run(["ip", "link", "set", "eorig-d0", "netns", NETNS_COMPUTE2])
    run(["ip", "-n", NETNS_LOGIN, "addr", "add", f"{LOGIN_PRIVATE2_ADDR}/24", "dev", "eorig-l2"])
    run(["ip", "-n", NETNS_LOGIN, "link", "set", "eorig-l2", "up"])
    run(["ip", "-n", NETNS_COMPUTE2, "addr", "add", f"{COMPUTE2_ADDR}/24", "dev", "eorig-d0"])
    run(["ip", "-n", NETNS_COMPUTE2, "link", "set", "eorig-d0", "up"])
    # the compute nodes reach each other through the login node, as through a cluster's switch
    run(["ip", "netns", "exec", NETNS_LOGIN, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
    run(["ip", "-n", NETNS_COMPUTE, "route", "add", "10.231.2.0/24", "via", LOGIN_PRIVATE_ADDR])
    run(["ip", "-n", NETNS_COMPUTE2, "route", "add", "10.231.1.0/24", "via", LOGIN_PRIVATE2_ADDR])
    # Keep every other address of the rig's range on this machine: the compute node (and any
    # address nobody holds) is unreachable from the laptop instead of leaving by the default route.
    run(["ip", "route", "replace", "unreachable", RIG_NET])


def teardown_netns() -> None:
    run(["ip", "link", "del", "eorig-h"], check=False)
    run(["ip", "route", "del", "unreachable", RIG_NET], check=False)
    for ns in (NETNS_LOGIN, NETNS_COMPUTE, NETNS_COMPUTE2):
        if ns_exists(ns):
            run(["ip", "netns", "del", ns], check=False)


def set_hosts_block(lines: list[str]) -> None:
    """Keep the rig's host names in /etc/hosts, as a real cluster's DNS would."""
    hosts = Path("/etc/hosts")
    text = hosts.read_text()
    if HOSTS_BEGIN in text:
        head, _, rest = text.partition(HOSTS_BEGIN)
        _, _, tail = rest.partition(HOSTS_END + "\n")
        text = head + tail
    if lines:
        text = text.rstrip("\n") + "\n" + "\n".join([HOSTS_BEGIN, *lines, HOSTS_END]) + "\n"
    hosts.write_text(text)


# --------------------------------------------------------------------------------------------
# up / down


def info_path(topology: str) -> Path:
    return topo_dir(topology) / "cluster.json"


def load_info(topology: str) -> ClusterInfo | None:
    try:
        data = json.loads(info_path(topology).read_text())
    except (OSError, ValueError):
        return None
    return ClusterInfo(**data)


def is_up(topology: str) -> bool:
    d = topo_dir(topology)
    pid_files = [d / "run" / f"{n}.pid" for n in ("slurmctld", "sshd")]
    pid_files += slurmd_pid_files(topology, topology_nodes(topology))
    return all(pid_alive(f) for f in pid_files)


def up(topology: str = "single") -> ClusterInfo:
    """Bring up a topology (idempotent) and return how to reach it."""
    with rig_lock():
        return _up(topology)


def _up(topology: str) -> ClusterInfo:
    if os.geteuid() != 0:
        raise RigError("the test cluster needs root (it starts slurmctld, slurmd, munged, sshd)")
    if topology not in ("single", "netns"):
        raise RigError(f"unknown topology {topology!r}: use 'single' or 'netns'")
    existing = load_info(topology)
    if existing is not None and is_up(topology):
        if existing.user != CLUSTER_USER:
            authorize_key(ensure_user(CLUSTER_USER), Path(existing.key_path))
        return replace(existing, user=CLUSTER_USER, venv=str(VENV_ROOT))

    ensure_packages()
    user = ensure_user(CLUSTER_USER)
    other = ensure_user(OTHER_USER)
    key = ensure_key(RIG_ROOT / "keys" / "id_ed25519")
    other_key = ensure_key(RIG_ROOT / "keys" / "id_other_ed25519")
    authorize_key(user, key)
    authorize_key(other, other_key)
    ensure_munge()

    d = prepare_dirs(topology)
    conf = d / "etc" / "slurm.conf"
    if topology == "single":
        host = short_hostname()
        login_ns = compute_ns = None
        login_host = compute_host = host
        ctld_addr = node_addr = "127.0.0.1"
        ssh_host = "127.0.0.1"
    else:
        ensure_netns()
        login_ns, compute_ns = NETNS_LOGIN, NETNS_COMPUTE
        login_host, compute_host = NETNS_LOGIN, NETNS_COMPUTE
        ctld_addr, node_addr = LOGIN_PRIVATE_ADDR, COMPUTE_ADDR
        ssh_host = LOGIN_PUBLIC_ADDR
        set_hosts_block(
            [
                f"{LOGIN_PUBLIC_ADDR} {NETNS_LOGIN}",
                f"{COMPUTE_ADDR} {NETNS_COMPUTE}",
                f"{COMPUTE2_ADDR} {NETNS_COMPUTE2}",
            ]
        )
    conf.write_text(slurm_conf_text(topology, login_host, ctld_addr, compute_host, node_addr))
    port = existing.ssh_port if existing else free_port()
    if topology == "netns":
        port = existing.ssh_port if existing else 22
    sshd_text = sshd_config_text(topology, ssh_host, port, conf)
    prepare_sshd(d / "etc" / "sshd_config", sshd_text, HOST_KEY, Path("/run/sshd"))

    env = {**os.environ, "SLURM_CONF": str(conf)}
    run_dir = d / "run"
    start_daemon(
        run_dir / "slurmctld.pid",
        in_namespace(login_ns, login_host, ["slurmctld", "-f", str(conf)]),
        env,
        "slurmctld",
    )
    nodes = [(compute_ns, compute_host)]
    if topology == "netns":
        nodes.append((NETNS_COMPUTE2, NETNS_COMPUTE2))
    for (ns, host), pid_file in zip(
        nodes, slurmd_pid_files(topology, [h for _, h in nodes]), strict=True
    ):
        start_daemon(
            pid_file, in_namespace(ns, host, ["slurmd", "-f", str(conf)]), env, f"slurmd {host}"
        )
    start_sshd(topology, login_host, str(conf))
    info = ClusterInfo(
        topology=topology,
        ssh_host=ssh_host,
        ssh_port=port,
        user=CLUSTER_USER,
        key_path=str(key),
        partition=PARTITION,
        login_hostname=login_host,
        compute_hostname=compute_host,
        slurm_conf=str(conf),
        other_key_path=str(other_key),
        multi_partition=MULTI_PARTITION if topology == "netns" else "",
        second_compute_hostname=NETNS_COMPUTE2 if topology == "netns" else "",
    )
    info_path(topology).write_text(json.dumps(asdict(info), indent=2))
    wait_node_idle(info)
    return info


def slurm_cmd(info: ClusterInfo, *cmd: str) -> list[str]:
    """A SLURM client command run on the login node (as root, not over SSH)."""
    ns = NETNS_LOGIN if info.topology == "netns" else None
    base = ["env", f"SLURM_CONF={info.slurm_conf}", *cmd]
    if ns is None:
        return base
    return ["nsenter", f"--net=/run/netns/{ns}", *base]


def wait_node_idle(info: ClusterInfo, timeout: float = 60) -> None:
    def node_ready() -> bool:
        proc = run(slurm_cmd(info, "sinfo", "-h", "-N", "-o", "%T"), check=False)
        states = proc.stdout.split()
        return (
            proc.returncode == 0
            and bool(states)
            and all(s in ("idle", "mixed", "allocated") for s in states)  # "*": not responding
        )

    wait_for(node_ready, timeout, f"the {info.topology} cluster's node to become idle", 0.2)


def cancel_all_jobs(info: ClusterInfo, timeout: float = 30) -> None:
    """Cancel every job of the rig's users (this session's two) and wait until they are gone."""
    users = ",".join(sorted({info.user, info.other_user}))
    for user in users.split(","):
        run(slurm_cmd(info, "scancel", "-u", user), check=False)

    def gone() -> bool:
        proc = run(slurm_cmd(info, "squeue", "-h", "-u", users, "-o", "%i"), check=False)
        return proc.returncode == 0 and not proc.stdout.strip()

    wait_for(gone, timeout, f"the jobs of {users} to leave the queue after scancel", 0.2)


def down(topology: str) -> None:
    """Stop a topology's daemons and jobs; stop munged when no topology is left."""
    with rig_lock():
        _down(topology)


def _down(topology: str) -> None:
    d = topo_dir(topology)
    info = load_info(topology)
    if info is not None and pid_alive(d / "run" / "slurmctld.pid"):
        with contextlib.suppress(RigError):
            cancel_all_jobs(info, timeout=15)
    if topology == "single":
        from tests.cluster.twofactor import stop_2fa_sshd

        stop_2fa_sshd(locked=True)
    stop_pid(d / "run" / "sshd.pid")
    for pid_file in slurmd_pid_files(topology, topology_nodes(topology)):
        stop_pid(pid_file)
    stop_pid(d / "run" / "slurmctld.pid")
    info_path(topology).unlink(missing_ok=True)
    if topology == "netns":
        teardown_netns()
        set_hosts_block([])
    if not any(is_up(t) or load_info(t) for t in ("single", "netns")):
        for user in {CLUSTER_USER, OTHER_USER, "eouser"}:
            run(["pkill", "-KILL", "-u", user], check=False)
        stop_munge()


# --------------------------------------------------------------------------------------------
# the cluster-side Python environment


def source_digest(repo: Path) -> str:
    """A digest of what the project's installation depends on."""
    h = hashlib.sha256()
    for top in ("pyproject.toml", "launcher", "eoshared", "eotoolkit"):
        base = repo / top
        paths = [base] if base.is_file() else sorted(base.rglob("*"))
        for p in paths:
            if p.is_file() and "__pycache__" not in p.parts:
                h.update(str(p.relative_to(repo)).encode())
                h.update(p.read_bytes())
    return h.hexdigest()


def ensure_cluster_venv(repo: Path = REPO_ROOT, venv: Path = VENV_ROOT) -> Path:
    """A venv every cluster user can read, with this project and its Jupyter extras installed.

    Built from Debian's ``/usr/bin/python3`` (root's own Python may not be readable by other
    users). The project is reinstalled only when its sources changed.
    """
    with rig_lock("venv"):
        return _ensure_cluster_venv(repo, venv)


def _ensure_cluster_venv(repo: Path, venv: Path) -> Path:
    stamp = venv / ".eo-rig-digest"
    digest = source_digest(repo)
    if stamp.exists() and stamp.read_text() == digest:
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True)
    venv.parent.chmod(0o755)
    python = venv / "bin" / "python"
    if not python.exists():
        run(["/usr/bin/python3", "-m", "venv", str(venv)])
        run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"])
    build = Path(RIG_ROOT / "src")
    if build.exists():
        shutil.rmtree(build)
    shutil.copytree(
        repo,
        build,
        ignore=shutil.ignore_patterns(
            ".git",
            "__pycache__",
            "*.egg-info",
            "build",
            "benchmarks",
            "tests",
            "notebooks",
            ".*cache",
        ),
    )
    run([str(python), "-m", "pip", "install", "-q", f"{build}[jupyter,mpi]"])
    run(["chmod", "-R", "a+rX", str(venv)])
    stamp.write_text(digest)
    return venv


# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.cluster.rig",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument("--topology", choices=["single", "netns", "all"], default=None)
    parser.add_argument("--venv", action="store_true", help="also build the cluster-side venv")
    parser.add_argument(
        "--batch-system",
        choices=["slurm", "pbs", "htcondor"],
        default="slurm",
        help="the PBS and HTCondor rigs run in Debian roots of their own",
    )
    args = parser.parse_args(argv)
    if args.batch_system != "slurm":
        return other_main(args.action, args.batch_system)
    try:
        if args.action == "up":
            topologies = (
                ["single", "netns"] if args.topology == "all" else [args.topology or "single"]
            )
            for t in topologies:
                info = up(t)
                print(json.dumps(asdict(info), indent=2))
            if args.venv:
                print(f"venv: {ensure_cluster_venv()}")
        elif args.action == "down":
            topologies = ["single", "netns"] if args.topology in (None, "all") else [args.topology]
            for t in topologies:
                down(t)
        else:
            for t in ("single", "netns"):
                print(f"{t}: {'up' if is_up(t) else 'down'}")
    except RigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def other_main(action: str, batch_system: str) -> int:
    """``up``, ``down`` or ``status`` of the PBS or HTCondor rig."""
    import importlib

    module = importlib.import_module(f"tests.cluster.{batch_system}_rig")
    try:
        if action == "up":
            t0 = time.monotonic()
            info = module.up()
            print(json.dumps(asdict(info), indent=2))
            print(
                f"{batch_system} up in {time.monotonic() - t0:.0f} s; a site section:\n"
                f"[sandbox-{batch_system}]\n"
                + "".join(f"{k} = {v}\n" for k, v in info.ini_section().items())
                + f"env_path = {info.venv}"
            )
        elif action == "down":
            module.down()
        else:
            print(f"{batch_system}: {'up' if module.is_up() else 'down'}")
    except RigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
