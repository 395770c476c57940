"""A batch system's test cluster in a Debian root of its own, in a network namespace of its own.

The PBS and HTCondor rigs (:mod:`tests.cluster.pbs_rig`, :mod:`tests.cluster.htcondor_rig`)
share this: a root built once with ``mmdebstrap`` (from this machine's own apt mirror) and kept
under :data:`~tests.cluster.rig.RIG_ROOT` between runs, rebuilt when absent; a network namespace
with a veth pair whose inner address is the cluster's "login node"; a *holder* process that owns
the root's private mount namespace (``/proc`` and ``/dev`` mounted into the root), its host name
(a UTS namespace) and the network namespace, so that every daemon of the rig is started inside
it with ``nsenter``; the cluster user with the rig's generated key, and an sshd on the login
address through which the test process (the "laptop") reaches the cluster, as for SLURM.

Everything is tracked by pid files below the rig's directory; :func:`ChrootRig.stop` ends every
process whose root is the rig's root, and removes the namespace.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.cluster.rig import (
    CLUSTER_USER,
    REPO_ROOT,
    RIG_ROOT,
    ClusterInfo,
    RigError,
    ensure_key,
    pid_alive,
    prepare_sshd,
    rig_lock,
    run,
    source_digest,
    sshd_config,
    start_daemon,
    stop_pid,
    wait_for,
)

#: The rigs' addresses (a range of their own, next to the SLURM rig's 10.231.0.0/16).
CHROOT_NET = "10.232.0.0/16"
#: The cluster-side venv inside each root (the profile's environment.path).
ROOT_VENV = "/opt/eohpc/venv"
ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BUILT_STAMP = ".eo-rig-built"
#: The rigs in Debian roots, by name, with the name their messages give them.
TITLES = {"pbs": "PBS", "htcondor": "HTCondor"}
#: The host's pip cache, mounted into a root while its venv is built (the wheels are reused).
PIP_CACHE = Path(os.environ.get("EO_RIG_PIP_CACHE", "/root/.cache/pip"))


def apt_mirror() -> str:
    """The Debian mirror this machine's own apt sources use."""
    texts = []
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        with contextlib.suppress(OSError):
            texts.append(path.read_text())
    text = "\n".join(texts)
    for pattern in (
        r"(?m)^URIs:\s*(\S+/debian)/?\s*$",
        r"(?m)^deb\s+(?:\[[^\]]*\]\s+)?(\S+/debian)/?\s+\S+",
    ):
        match = re.search(pattern, text)
        if match:
            return match.group(1)
    return "http://deb.debian.org/debian"


@dataclass(frozen=True)
class ChrootRig:
    """One rig: its root, namespace, addresses and host name."""

    name: str  # "pbs", "htcondor"
    suite: str  # Debian suite of the root
    packages: tuple[str, ...]
    netns: str
    host_if: str
    inner_if: str
    host_addr: str
    login_addr: str
    hostname: str
    #: PATH of the rig's commands (the daemons' start scripts need it).
    path: str = ROOT_PATH

    # ----------------------------------------------------------------------------------------
    # paths

    @property
    def dir(self) -> Path:
        return RIG_ROOT / self.name

    @property
    def root(self) -> Path:
        return self.dir / "root"

    @property
    def run_dir(self) -> Path:
        return self.dir / "run"

    @property
    def holder_pid(self) -> Path:
        return self.run_dir / "holder.pid"

    @property
    def sshd_pid(self) -> Path:
        return self.root / "run" / "sshd-eorig.pid"

    def host_path(self, inside: str) -> Path:
        """A path of the root as this machine sees it."""
        return self.root / inside.lstrip("/")

    # ----------------------------------------------------------------------------------------
    # building the root (cached: rebuilt only when the stamp is absent)

    def built(self) -> bool:
        return (self.root / BUILT_STAMP).exists()

    def build(self, customize) -> float:  # type: ignore[no-untyped-def]
        """Build the root when absent: mmdebstrap, then ``customize(tmp_root)``; return seconds.

        A half-built root (``root.tmp``) keeps the stages it finished (stamp files), so an
        interrupted build resumes.
        """
        if self.built():
            return 0.0
        t0 = time.monotonic()
        tmp = self.dir / "root.tmp"
        self.dir.mkdir(parents=True, exist_ok=True)
        if not (tmp / ".eo-rig-stage-mmdebstrap").exists():
            if tmp.exists():
                shutil.rmtree(tmp)
            if shutil.which("mmdebstrap") is None:
                env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
                install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends"]
                if run([*install, "mmdebstrap"], check=False, env=env).returncode != 0:
                    run(["apt-get", "update", "-qq"], env=env)
                    run([*install, "mmdebstrap"], env=env)
            run(
                [
                    "mmdebstrap",
                    "--variant=apt",
                    f"--include={','.join(self.packages)}",
                    self.suite,
                    str(tmp),
                    apt_mirror(),
                ]
            )
            (tmp / ".eo-rig-stage-mmdebstrap").touch()
        customize(tmp)
        (tmp / BUILT_STAMP).write_text(time.strftime("%Y-%m-%dT%H:%M:%S"))
        if self.root.exists():
            shutil.rmtree(self.root)
        tmp.rename(self.root)
        return time.monotonic() - t0

    # ----------------------------------------------------------------------------------------
    # running commands in the root

    @staticmethod
    def build_command(
        root: Path, command: str, *, binds: tuple[tuple[Path, str], ...] = ()
    ) -> list[str]:
        """Run a shell command in ``root`` (this machine's network; a private mount namespace
        with /proc, /dev and ``binds`` mounted). For building, before the rig runs."""
        mounts = [f"mount -t proc proc {root}/proc", f"mount --rbind /dev {root}/dev"]
        for source, inside in binds:
            target = root / inside.lstrip("/")
            if source.is_file():
                mounts.append(f"touch {shlex.quote(str(target))}")
            else:
                mounts.append(f"mkdir -p {shlex.quote(str(target))}")
            mounts.append(f"mount --bind {shlex.quote(str(source))} {shlex.quote(str(target))}")
        inner = (
            " && ".join(mounts)
            + f" && exec chroot {root} /usr/bin/env -i PATH={ROOT_PATH} HOME=/root LANG=C.UTF-8 "
            + f"/bin/bash -c {shlex.quote(command)}"
        )
        return ["unshare", "-m", "--propagation", "private", "sh", "-c", inner]

    def in_root(self, command: str, *, user: str | None = None) -> list[str]:
        """Run a shell command inside the running rig (its namespaces and root)."""
        pid = pid_alive(self.holder_pid)
        if pid is None:
            raise RigError(f"the {self.name} rig is not running (no holder process)")
        shell = ["/bin/bash", "-c", command]
        if user:
            shell = ["runuser", "-u", user, "--", *shell]
        return [
            "nsenter", "-t", str(pid), "-m", "-u", "-n", "-r", "-w", "--",
            "/usr/bin/env", "-i", f"PATH={self.path}", "HOME=/root", "LANG=C.UTF-8", *shell,
        ]  # fmt: skip

    def sh(
        self, command: str, *, check: bool = True, user: str | None = None, timeout: float = 300
    ):  # type: ignore[no-untyped-def]
        return run(self.in_root(command, user=user), check=check, timeout=timeout)

    # ----------------------------------------------------------------------------------------
    # namespace and holder

    def ensure_netns(self) -> None:
        if Path(f"/run/netns/{self.netns}").exists():
            return
        run(["ip", "netns", "add", self.netns])
        run(["ip", "-n", self.netns, "link", "set", "lo", "up"])
        run(["ip", "link", "del", self.host_if], check=False)
        run(["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.inner_if])
        run(["ip", "link", "set", self.inner_if, "netns", self.netns])
        run(["ip", "addr", "add", f"{self.host_addr}/24", "dev", self.host_if])
        run(["ip", "link", "set", self.host_if, "up"])
        run(["ip", "-n", self.netns, "addr", "add", f"{self.login_addr}/24", "dev", self.inner_if])
        run(["ip", "-n", self.netns, "link", "set", self.inner_if, "up"])
        run(["ip", "-n", self.netns, "route", "add", "default", "via", self.host_addr])
        # Addresses of the range that no rig holds stay on this machine (never the default route).
        run(["ip", "route", "replace", "unreachable", CHROOT_NET])

    def teardown_netns(self, others_up: bool) -> None:
        run(["ip", "link", "del", self.host_if], check=False)
        if Path(f"/run/netns/{self.netns}").exists():
            run(["ip", "netns", "del", self.netns], check=False)
        if not others_up:
            run(["ip", "route", "del", "unreachable", CHROOT_NET], check=False)

    def start_holder(self) -> None:
        """The process owning the rig's mount and UTS namespaces (it sleeps in the root)."""
        if pid_alive(self.holder_pid) is not None:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        r = self.root
        inner = (
            f"mount -t proc proc {r}/proc && mount --rbind /dev {r}/dev && "
            f"mount -t tmpfs -o mode=1777 tmpfs {r}/dev/shm && "
            # No name server is reachable from the namespace: lookups fail at once instead of
            # timing out (PBS's daemons each waited 2 x 10 s at start).
            f"mount --bind /dev/null {r}/etc/resolv.conf && "
            f"hostname {self.hostname} && exec chroot {r} /bin/sleep infinity"
        )
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, "unshare", "-m", "-u", "--propagation",
             "private", "sh", "-c", inner],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True,
        )  # fmt: skip
        self.holder_pid.write_text(f"{proc.pid}\n")

        def in_root() -> bool:
            if proc.poll() is not None:
                raise RigError(f"the {self.name} rig's holder exited: {proc.stderr.read()!r}")  # type: ignore[union-attr]
            try:
                return os.readlink(f"/proc/{proc.pid}/root") == str(r)
            except OSError:
                return False

        wait_for(in_root, 10, f"the {self.name} rig's namespaces")

    def root_pids(self) -> list[int]:
        """Every process whose root directory is the rig's root."""
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if os.readlink(entry / "root") == str(self.root):
                        pids.append(int(entry.name))
        return pids

    def kill_all(self, timeout: float = 10) -> None:
        """End every process in the rig's root (TERM, then KILL), the holder last."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self.root_pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.root_pids():
                time.sleep(0.1)
            if not self.root_pids():
                break
        self.holder_pid.unlink(missing_ok=True)

    # ----------------------------------------------------------------------------------------
    # users, hosts, sshd

    def write_hosts(self) -> None:
        hosts = self.root / "etc" / "hosts"
        hosts.write_text(
            "127.0.0.1\tlocalhost\n"
            f"{self.login_addr}\t{self.hostname}\n"
            "::1\t\tlocalhost ip6-localhost ip6-loopback\n"
        )
        (self.root / "etc" / "hostname").write_text(f"{self.hostname}\n")

    def ensure_user(self, key: Path) -> None:
        """The cluster user in the root, accepting the rig's generated key."""
        passwd = (self.root / "etc" / "passwd").read_text()
        if not re.search(rf"(?m)^{re.escape(CLUSTER_USER)}:", passwd):
            run(
                [
                    "chroot",
                    str(self.root),
                    "useradd",
                    "--create-home",
                    "--shell",
                    "/bin/bash",
                    CLUSTER_USER,
                ]
            )
        run(["chroot", str(self.root), "usermod", "-p", "*", CLUSTER_USER])
        run(
            ["chroot", str(self.root), "sh", "-c",
             f"install -d -m 700 -o {CLUSTER_USER} -g {CLUSTER_USER} /home/{CLUSTER_USER}/.ssh && "
             f"cat > /home/{CLUSTER_USER}/.ssh/authorized_keys && "
             f"chown {CLUSTER_USER}: /home/{CLUSTER_USER}/.ssh/authorized_keys && "
             f"chmod 600 /home/{CLUSTER_USER}/.ssh/authorized_keys"],
            input=Path(f"{key}.pub").read_text(),
        )  # fmt: skip

    def sshd_config(self, extra: str = "") -> str:
        """The rigs' one sshd configuration (:func:`~tests.cluster.rig.sshd_config`), on port
        22 of the login address, with the root's own host key."""
        return sshd_config(
            listen=self.login_addr,
            port=22,
            host_key="/etc/ssh/ssh_host_ed25519_key",
            pid_file="/run/sshd-eorig.pid",
            extra=extra,
        )

    def start_sshd(self, extra: str = "") -> None:
        """Start the login node's sshd in the rig (no-op while it runs)."""
        prepare_sshd(
            self.host_path("/etc/ssh/sshd_config_eorig"),
            self.sshd_config(extra),
            self.host_path("/etc/ssh/ssh_host_ed25519_key"),
            self.host_path("/run/sshd"),
        )
        command = self.in_root("/usr/sbin/sshd -f /etc/ssh/sshd_config_eorig")
        start_daemon(self.sshd_pid, command, dict(os.environ), f"{self.name} sshd")

    # ----------------------------------------------------------------------------------------
    # the cluster-side venv, inside the root

    def ensure_venv(self, root: Path | None = None) -> None:
        """This project with its Jupyter and MPI extras in :data:`ROOT_VENV` of the root;
        reinstalled only when the project's sources changed."""
        root = root or self.root
        venv = root / ROOT_VENV.lstrip("/")
        stamp = venv / ".eo-rig-digest"
        digest = source_digest(REPO_ROOT)
        if stamp.exists() and stamp.read_text() == digest:
            return
        src = root / "usr/src/eo-hpc"
        if src.exists():
            shutil.rmtree(src)
        shutil.copytree(
            REPO_ROOT, src,
            ignore=shutil.ignore_patterns(
                ".git", "__pycache__", "*.egg-info", "build", "benchmarks", "tests",
                "notebooks", ".*cache",
            ),
        )  # fmt: skip
        PIP_CACHE.mkdir(parents=True, exist_ok=True)
        binds, env = pip_access(root)
        command = (
            f"set -e; [ -x {ROOT_VENV}/bin/python ] || python3 -m venv {ROOT_VENV}; "
            f"{env} {ROOT_VENV}/bin/pip install -q --disable-pip-version-check "
            f"'/usr/src/eo-hpc[jupyter,mpi]'; chmod -R a+rX {ROOT_VENV}"
        )
        binds = ((PIP_CACHE, "/root/.cache/pip"), *binds)
        run(self.build_command(root, command, binds=binds), timeout=1800)
        stamp.write_text(digest)

    # ----------------------------------------------------------------------------------------
    # up and down: the steps every rig takes, around its batch system's own

    def running(self, *pid_files: Path) -> bool:
        """The holder, the batch system's daemons (``pid_files``) and sshd are alive."""
        return (
            pid_alive(self.holder_pid) is not None
            and all(pid_alive(p) for p in pid_files)
            and pid_alive(self.sshd_pid) is not None
        )

    def up(
        self,
        *,
        is_up: Callable[[], bool],
        customize: Callable[[Path], None],
        prepare: Callable[[], None],
        start_batch_system: Callable[[], None],
        partition: str,
    ) -> ClusterInfo:
        """Bring the rig up (idempotent) and return how to reach it: build the root when it is
        absent (``customize(tmp_root)``), the venv, the host names, ``prepare()`` (the batch
        system's files in the root), the cluster user with the rig's key, the namespace and its
        holder, sshd, then ``start_batch_system()``."""
        with rig_lock(self.name):
            if os.geteuid() != 0:
                raise RigError(f"the {self.title} test cluster needs root")
            existing = self.load_info()
            if existing is not None and is_up():
                self.ensure_venv()
                return existing
            t0 = time.monotonic()
            built = self.build(customize)
            self.ensure_venv()
            self.write_hosts()
            prepare()
            key = self.key()
            self.ensure_user(key)
            self.ensure_netns()
            self.start_holder()
            self.start_sshd()
            start_batch_system()
            info = self.cluster_info(key, partition)
            self.save_info(info)
            took = f"build {built:.0f} s, up {time.monotonic() - t0:.0f} s\n"
            (self.dir / "last-up.txt").write_text(took)
            return info

    def down(self, stop_batch_system: Callable[[], None], pid_files: tuple[Path, ...]) -> None:
        """Stop the rig: ``stop_batch_system()``, then every process in the root; remove the
        pid files left (the batch system's ``pid_files``, sshd's), the saved info, and the
        namespace (the route of the rigs' addresses too when no other rig is up)."""
        with rig_lock(self.name):
            stop_batch_system()
            self.kill_all()
            for path in pid_files:
                path.unlink(missing_ok=True)
            self.sshd_pid.unlink(missing_ok=True)
            self.info_path.unlink(missing_ok=True)
            self.teardown_netns(others_up=self.others_up())

    def cluster_info(self, key: Path, partition: str) -> ClusterInfo:
        """How the test process reaches the rig: sshd on port 22 of the login address."""
        return ClusterInfo(
            topology=self.name,
            ssh_host=self.login_addr,
            ssh_port=22,
            user=CLUSTER_USER,
            key_path=str(key),
            partition=partition,
            login_hostname=self.hostname,
            compute_hostname=self.hostname,
            slurm_conf="",
            python="/usr/bin/python3",
            venv=ROOT_VENV,
            other_key_path="",
            extra={
                "batch_system": self.name,
                "platform": f"sandbox-{self.name}",
                "root": str(self.root),
            },
        )

    # ----------------------------------------------------------------------------------------
    # bookkeeping

    @property
    def title(self) -> str:
        return TITLES.get(self.name, self.name)

    @property
    def info_path(self) -> Path:
        return self.dir / "cluster.json"

    def save_info(self, info: ClusterInfo) -> None:
        from dataclasses import asdict

        self.info_path.write_text(json.dumps(asdict(info), indent=2))

    def load_info(self) -> ClusterInfo | None:
        return load_info(self.info_path)

    def others_up(self) -> bool:
        """Whether another rig in a Debian root has its saved info (it is up)."""
        return any(
            load_info(RIG_ROOT / name / "cluster.json") is not None
            for name in TITLES
            if name != self.name
        )

    def key(self) -> Path:
        return ensure_key(RIG_ROOT / "keys" / "id_ed25519")


def load_info(path: Path) -> ClusterInfo | None:
    """The saved :class:`ClusterInfo` of a rig, None when there is none."""
    try:
        return ClusterInfo(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def pip_access(root: Path) -> tuple[tuple[tuple[Path, str], ...], str]:
    """What pip in a root needs to reach this machine's package index: its CA bundle (TLS may
    be intercepted) and its pip configuration with the local directories that names.

    Returns the bind mounts and the environment assignments for the pip command."""
    binds: list[tuple[Path, str]] = []
    env: list[str] = []
    bundle = Path(os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE") or
                  "/etc/ssl/certs/ca-certificates.crt")  # fmt: skip
    if bundle.is_file():
        inside = root / "etc/eo-rig-host-ca.crt"
        inside.touch()
        binds.append((bundle, "/etc/eo-rig-host-ca.crt"))
        env.append("PIP_CERT=/etc/eo-rig-host-ca.crt")
    config = Path(os.environ.get("PIP_CONFIG_FILE", "/etc/pip.conf"))
    if config.is_file():
        text = config.read_text()
        (root / "etc/pip.conf").write_text(re.sub(r"(?m)^\s*cert\s*=.*$", "", text))
        for word in re.findall(r"(?:file://)?(/[^\s]+)", text):
            path = Path(word)
            if path.is_dir():
                binds.append((path, str(path)))
    for name in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"):
        value = os.environ.get(name)
        if value:
            env.append(f"{name}={shlex.quote(value)}")
            for word in value.split():
                path = Path(word.removeprefix("file://"))
                if path.is_absolute() and path.is_dir() and (path, str(path)) not in binds:
                    binds.append((path, str(path)))
    return tuple(binds), " ".join(env)


def digest_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


__all__ = ["ROOT_VENV", "ChrootRig", "apt_mirror", "stop_pid"]
