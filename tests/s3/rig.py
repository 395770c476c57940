"""A real S3 server on loopback: single-node Ceph (mon + memstore OSD + RADOS Gateway).

Usage: ``python -m tests.s3.rig up|down|status [--dir DIR]``.

``up`` installs the Debian packages when missing, starts the three daemons (pid files under
``DIR/run``), creates two S3 users with random keys (``owner`` owns the bucket ``eo-data``,
``other`` has no permission on it) and prints the endpoint and keys. It is idempotent: a
running rig is reused. ``down`` stops the daemons of ``DIR`` and removes ``DIR`` (the OSD keeps
its objects in memory, so a stopped rig is not restartable anyway). ``state.json`` (mode 0600)
holds the ports and keys.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

DEFAULT_DIR = Path(os.environ.get("EOTOOLKIT_S3_RIG_DIR", "/var/lib/eo-rig/ceph"))
APT_PACKAGES = ("ceph-mon", "ceph-osd", "radosgw", "ceph-common", "uuid-runtime")
BINARIES = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph", "monmaptool", "uuidgen")
BUCKET = "eo-data"
REGION = "us-east-1"
DAEMONS = (("rgw", "client.rgw.gw"), ("osd", "osd.0"), ("mon", "mon.a"))
START_TIMEOUT = 120.0

CONF = """\
[global]
fsid = {fsid}
mon initial members = a
mon host = v2:127.0.0.1:{mon_port}
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
# with auth none the default ms_mon_client_mode=secure makes radosgw fail
ms mon client mode = crc
ms client mode = crc
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
osd crush chooseleaf type = 0
run dir = {d}/run
admin socket = {d}/run/$name.asok
log file = {d}/log/$name.log
mon cluster log file = default={d}/log/ceph.$channel.log cluster={d}/log/ceph.log
pid file = {d}/run/$name.pid
keyring = {d}/keyring
[mon.a]
mon data = {d}/mon
[osd.0]
osd data = {d}/osd0
osd objectstore = memstore
memstore device bytes = 2147483648
[client.rgw.gw]
# without tcp_nodelay every small GET stalls ~48 ms
rgw frontends = beast endpoint=127.0.0.1:{rgw_port} tcp_nodelay=1
rgw data = {d}/rgw
log file = {d}/log/rgw.log
"""


class RigError(RuntimeError):
    """The S3 rig could not be installed or started."""


@dataclass(frozen=True)
class S3User:
    """An S3 user of the rig."""

    uid: str
    access_key: str
    secret_key: str

    def __repr__(self) -> str:
        return f"S3User(uid={self.uid!r}, access_key={self.access_key!r}, secret_key='***')"


@dataclass(frozen=True)
class RigInfo:
    """A running rig: where it lives and who may use it."""

    state_dir: str
    mon_port: int
    rgw_port: int
    owner: S3User
    other: S3User
    bucket: str
    region: str
    started_in: float

    @property
    def endpoint(self) -> str:
        """The S3 endpoint URL."""
        return f"http://127.0.0.1:{self.rgw_port}"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RigInfo:
        data = dict(data)
        data["owner"] = S3User(**data["owner"])
        data["other"] = S3User(**data["other"])
        return cls(**data)


# --- installation ---------------------------------------------------------------------------


def missing_binaries() -> list[str]:
    """Binaries of the rig not on PATH."""
    return [b for b in BINARIES if shutil.which(b) is None]


def ensure_installed() -> None:
    """apt-get install the Ceph packages when a binary is missing (needs root)."""
    if not missing_binaries():
        return
    if os.geteuid() != 0:
        raise RigError(f"missing {missing_binaries()}; install {' '.join(APT_PACKAGES)} as root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *APT_PACKAGES],
    ):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RigError(f"{' '.join(cmd)} failed: {done.stderr[-2000:]}")
    if missing_binaries():
        raise RigError(f"still missing after apt-get: {missing_binaries()}")


# --- processes ------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _pid(state_dir: Path, name: str) -> int | None:
    """The pid recorded for daemon ``name`` if that process is ours (its command names our
    configuration file), else None."""
    try:
        pid = int((state_dir / "run" / f"{name}.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if str(state_dir / "ceph.conf") in _cmdline(pid) else None


def _stop_pid(pid: int, timeout: float = 15.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or _zombie(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def _run(state_dir: Path, *args: str, timeout: float = 60.0) -> str:
    cmd = [args[0], "-c", str(state_dir / "ceph.conf"), *args[1:]]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise RigError(f"{' '.join(cmd)} timed out after {timeout:.0f} s") from exc
    if done.returncode != 0:
        raise RigError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr[-1500:]}")
    return done.stdout


def _wait(what: str, check: Any, state_dir: Path, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    logs = sorted((state_dir / "log").glob("*.log"))
    tail = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}" for p in logs)
    raise RigError(f"{what} not ready within {timeout:.0f} s\n{tail}")


def _rgw_answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
            return bool(resp.status)
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def _key(n: int, alphabet: str) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def _new_user(uid: str) -> S3User:
    access = "EO" + _key(18, string.ascii_uppercase + string.digits)
    secret = _key(40, string.ascii_letters + string.digits)
    return S3User(uid, access, secret)


def _create_user(state_dir: Path, user: S3User) -> None:
    _run(
        state_dir,
        "radosgw-admin",
        "user",
        "create",
        f"--uid={user.uid}",
        f"--display-name=eotoolkit test {user.uid}",
        f"--access-key={user.access_key}",
        f"--secret-key={user.secret_key}",
    )


def s3_client(info: RigInfo) -> Any:
    """A botocore S3 client of the rig's owner (path-style addressing)."""
    import botocore.session
    from botocore.config import Config

    return botocore.session.Session().create_client(
        "s3",
        endpoint_url=info.endpoint,
        aws_access_key_id=info.owner.access_key,
        aws_secret_access_key=info.owner.secret_key,
        region_name=info.region,
        config=Config(s3={"addressing_style": "path"}),
    )


def _create_bucket(info: RigInfo) -> None:
    s3 = s3_client(info)
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=info.bucket)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


# --- public ---------------------------------------------------------------------------------


def read_state(state_dir: Path = DEFAULT_DIR) -> RigInfo | None:
    """The rig recorded in ``state_dir``, None when there is none."""
    try:
        return RigInfo.from_json(json.loads((state_dir / "state.json").read_text()))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def running(state_dir: Path = DEFAULT_DIR) -> RigInfo | None:
    """The recorded rig when all three daemons are alive and RGW answers, else None."""
    info = read_state(state_dir)
    if info is None:
        return None
    if any(_pid(state_dir, name) is None for _, name in DAEMONS):
        return None
    return info if _rgw_answers(info.rgw_port) else None


def start(state_dir: Path = DEFAULT_DIR) -> RigInfo:
    """Start a fresh rig in ``state_dir`` (an already running one is returned as is)."""
    info = running(state_dir)
    if info is not None:
        return info
    ensure_installed()
    stop(state_dir)
    t0 = time.monotonic()
    state_dir.mkdir(parents=True, mode=0o700)
    for sub in ("run", "log", "mon", "osd0", "rgw"):
        (state_dir / sub).mkdir(mode=0o700)
    mon_port, rgw_port = free_port(), free_port()
    fsid = subprocess.run(["uuidgen"], capture_output=True, text=True, check=True).stdout.strip()
    conf = CONF.format(fsid=fsid, mon_port=mon_port, rgw_port=rgw_port, d=state_dir)
    (state_dir / "ceph.conf").write_text(conf)
    subprocess.run(
        [
            "monmaptool", "--create", "--addv", "a", f"[v2:127.0.0.1:{mon_port}]",
            "--fsid", fsid, str(state_dir / "monmap"),
        ],
        capture_output=True, check=True,
    )  # fmt: skip
    subprocess.run(
        [
            "ceph-authtool", "--create-keyring", str(state_dir / "keyring"), "--gen-key",
            "-n", "mon.", "--cap", "mon", "allow *",
        ],
        capture_output=True, check=True,
    )  # fmt: skip
    _run(state_dir, "ceph-mon", "--mkfs", "-i", "a", "--monmap", str(state_dir / "monmap"))
    _run(state_dir, "ceph-mon", "-i", "a")
    _run(state_dir, "ceph", "-s", "--connect-timeout", "30")
    uuid = subprocess.run(["uuidgen"], capture_output=True, text=True, check=True).stdout.strip()
    osd_id = _run(state_dir, "ceph", "osd", "new", uuid).strip()
    _run(state_dir, "ceph-osd", "-i", osd_id, "--mkfs", "--osd-uuid", uuid)
    _run(state_dir, "ceph-osd", "-i", osd_id)
    _wait(
        "OSD",
        lambda: "1 up" in _run(state_dir, "ceph", "osd", "stat"),
        state_dir,
    )
    _run(state_dir, "radosgw", "-n", "client.rgw.gw")
    _wait("radosgw", lambda: _rgw_answers(rgw_port), state_dir)
    owner, other = _new_user("eo-owner"), _new_user("eo-other")
    _create_user(state_dir, owner)
    _create_user(state_dir, other)
    info = RigInfo(
        str(state_dir), mon_port, rgw_port, owner, other, BUCKET, REGION,
        round(time.monotonic() - t0, 1),
    )  # fmt: skip
    _create_bucket(info)
    _write_private(state_dir / "state.json", json.dumps(asdict(info), indent=1))
    return info


def stop(state_dir: Path = DEFAULT_DIR) -> None:
    """Stop the daemons of ``state_dir`` (only processes started with its configuration) and
    remove the directory."""
    for _, name in DAEMONS:
        pid = _pid(state_dir, name)
        if pid is not None:
            _stop_pid(pid)
    if state_dir.exists():
        shutil.rmtree(state_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.s3.rig", description=__doc__)
    parser.add_argument("action", choices=("up", "down", "status"))
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    args = parser.parse_args(argv)
    if args.action == "down":
        stop(args.dir)
        print("stopped")
        return 0
    if args.action == "up":
        warm = running(args.dir) is not None
        t0 = time.monotonic()
        try:
            info = start(args.dir)
        except RigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        how = "already running" if warm else f"started in {time.monotonic() - t0:.1f} s"
        print(f"S3 rig {how}")
    else:
        found = running(args.dir)
        if found is None:
            print("not running")
            return 3
        info = found
    print(f"endpoint:   {info.endpoint}")
    print(f"region:     {info.region}")
    print(f"bucket:     {info.bucket}")
    for label, user in (("owner", info.owner), ("other", info.other)):
        print(f"{label}:      AWS_ACCESS_KEY_ID={user.access_key}")
        print(f"            AWS_SECRET_ACCESS_KEY={user.secret_key}")
    print(f"state:      {info.state_dir}/state.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
