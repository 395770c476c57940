"""A second sshd on the single topology's login node that asks for a second factor.

It listens on its own free loopback port and wants a key *and* a TOTP code
(``AuthenticationMethods publickey,keyboard-interactive``); the code is checked by PAM with
Debian's ``libpam-google-authenticator`` against a secret the rig generates for the cluster user.
The rig's first sshd (keys only, no PAM) is left alone.

Its own PAM service: OpenSSH's portable sshd names its PAM service after the program it was
started as (``SSHD_PAM_SERVICE`` is ``__progname``; Debian's 9.2 keeps that). So this sshd runs as
a symbolic link named :data:`PROGRAM` to ``/usr/sbin/sshd`` and PAM reads
``/etc/pam.d/<PROGRAM>``, a file only it uses (``/etc/pam.d/sshd`` is not touched). Its processes
are named after that program too (``eorig-sshd-2fa: eouser [priv]``), which tells them apart from
the other sshd's.

Like the rig's other daemons it is tracked by a pid file, and ``rig down`` stops it::

    python -m tests.cluster.twofactor up | status | down
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import pwd
import secrets
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tests.cluster import rig

PROGRAM = "eorig-sshd-2fa"
PAM_SERVICE_FILE = Path("/etc/pam.d") / PROGRAM
PAM_SERVICE = """\
# The second-factor sshd of the eo-hpc test rig (tests/cluster/twofactor.py); only it uses this.
# The key is checked by sshd itself; PAM asks for the TOTP code (keyboard-interactive).
auth     required pam_google_authenticator.so
account  required pam_permit.so
session  required pam_permit.so
password required pam_deny.so
"""
TOPOLOGY = "single"
SECRET_BYTES = 20  # 160 bits, RFC 4226's recommendation (32 base32 characters)
WINDOW_SIZE = 3  # codes of the previous, current and next 30 s step are accepted


@dataclass
class TwoFactorInfo:
    """How to reach the second-factor sshd."""

    host: str
    port: int
    user: str
    secret: str  # base32, as authenticator apps take it
    pid_file: str

    def ini_section(self, cluster: rig.ClusterInfo, keypath: str) -> dict[str, str]:
        """Keys of a ``platforms.ini`` section pointing at this sshd with ``keypath``."""
        return {**cluster.ini_section(), "port": str(self.port), "keypath": keypath}


def run_dir() -> Path:
    return rig.topo_dir(TOPOLOGY) / "run"


def pid_file() -> Path:
    return run_dir() / "sshd-2fa.pid"


def info_file() -> Path:
    return rig.topo_dir(TOPOLOGY) / "twofactor.json"


def secret_file(user_name: str) -> Path:
    return Path(pwd.getpwnam(user_name).pw_dir) / ".google_authenticator"


def sshd_config_text(cluster: rig.ClusterInfo, port: int) -> str:
    """The rig's sshd settings, plus PAM keyboard-interactive required after the key."""
    return rig.sshd_config(
        listen=cluster.ssh_host,
        port=port,
        host_key=rig.HOST_KEY,
        pid_file=pid_file(),
        env={"SLURM_CONF": cluster.slurm_conf},
        settings={"UsePAM": "yes", "KbdInteractiveAuthentication": "yes"},
        extra="AuthenticationMethods publickey,keyboard-interactive\n",
    )


def write_secret(user_name: str, secret: str) -> None:
    """~user/.google_authenticator: TOTP, codes reusable within their window, no rate limit
    (the module then never rewrites the file), owned by the user, mode 0400."""
    user = pwd.getpwnam(user_name)
    path = secret_file(user_name)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
    with os.fdopen(fd, "w") as handle:
        handle.write(f'{secret}\n" WINDOW_SIZE {WINDOW_SIZE}\n" TOTP_AUTH\n')
    os.chown(path, user.pw_uid, user.pw_gid)


def load() -> TwoFactorInfo | None:
    """The running second-factor sshd, if any."""
    try:
        info = TwoFactorInfo(**json.loads(info_file().read_text()))
    except (OSError, ValueError, TypeError):
        return None
    pid = rig.pid_alive(Path(info.pid_file))
    return info if pid is not None and running(pid) else None


def ensure_2fa_sshd(cluster: rig.ClusterInfo) -> TwoFactorInfo:
    """Start the second-factor sshd for the single topology's cluster user (idempotent)."""
    if cluster.topology != TOPOLOGY:
        raise rig.RigError(f"the second-factor sshd serves the {TOPOLOGY} topology only")
    with rig.rig_lock():
        running = load()
        if running is not None and running.user == cluster.user:
            return running
        stop_2fa_sshd(locked=True)
        rig.ensure_packages()
        secret = base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode()
        write_secret(cluster.user, secret)
        PAM_SERVICE_FILE.write_text(PAM_SERVICE)
        program = rig.topo_dir(TOPOLOGY) / "bin" / PROGRAM
        program.parent.mkdir(parents=True, exist_ok=True)
        program.unlink(missing_ok=True)
        program.symlink_to("/usr/sbin/sshd")
        port = rig.free_port(cluster.ssh_host)
        config = rig.topo_dir(TOPOLOGY) / "etc" / "sshd_2fa_config"
        config.write_text(sshd_config_text(cluster, port))
        log = rig.topo_dir(TOPOLOGY) / "log" / "sshd-2fa.log"
        # sshd re-executes itself by the path it was started with: it must be absolute.
        rig.start_daemon(
            pid_file(),
            [str(program), "-f", str(config), "-E", str(log)],
            {**os.environ, "SLURM_CONF": cluster.slurm_conf},
            "the second-factor sshd",
        )
        info = TwoFactorInfo(cluster.ssh_host, port, cluster.user, secret, str(pid_file()))
        info_file().write_text(json.dumps(asdict(info), indent=2))
        info_file().chmod(0o600)
        return info


def stop_2fa_sshd(locked: bool = False) -> None:
    """Stop the second-factor sshd and remove its PAM service and the user's secret."""
    with contextlib.nullcontext() if locked else rig.rig_lock():
        data: dict[str, str] = {}
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(info_file().read_text())
        stop_listener(pid_file())
        info_file().unlink(missing_ok=True)
        PAM_SERVICE_FILE.unlink(missing_ok=True)
        user = data.get("user")
        if user:
            with contextlib.suppress(KeyError):
                secret_file(user).unlink(missing_ok=True)


def running(pid: int) -> bool:
    """True while ``pid`` exists and has not exited (a zombie nobody reaps has exited)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return fields[0] != "Z"


def stop_listener(pid_path: Path, timeout: float = 10.0) -> None:
    """Stop the sshd of a pid file: SIGTERM, then SIGKILL if it is still there."""
    pid = rig.pid_alive(pid_path)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while running(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if running(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    pid_path.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    action = args[0] if args else "status"
    try:
        if action == "up":
            print(json.dumps(asdict(ensure_2fa_sshd(rig.up(TOPOLOGY))), indent=2))
        elif action == "down":
            stop_2fa_sshd()
        elif action == "status":
            running = load()
            print(f"2fa sshd: {'up on port ' + str(running.port) if running else 'down'}")
        else:
            print("usage: python -m tests.cluster.twofactor up|status|down", file=sys.stderr)
            return 2
    except rig.RigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
