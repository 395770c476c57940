"""Open the one fabric Connection a run uses to reach a site's login node."""

from __future__ import annotations

import contextlib
import select
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import paramiko
from fabric import Config, Connection

from eoshared.errors import (
    AuthenticationError,
    HostUnreachableError,
    RemoteCommandError,
    SSHError,
)
from launcher.config import Site
from launcher.connection.auth import (
    Credentials,
    Destination,
    check_key_file,
    load_key,
    refusal_message,
)

__all__ = ["SSHLink", "check_key_file", "load_key"]

CONNECT_TIMEOUT = 15
#: Bytes read from a streamed command's channel at a time.
STREAM_CHUNK = 65536
KEEPALIVE_SECONDS = 15


#: Linux's TCP_QUICKACK (absent elsewhere).
QUICKACK = getattr(socket, "TCP_QUICKACK", None)


class _QuickAckSocket:
    """A TCP socket that acknowledges what it reads at once (Linux's TCP_QUICKACK, which the
    kernel drops again after a while, so it is set after every read); the rest is the socket.

    sshd leaves Nagle's algorithm on for commands without a terminal: right after login it
    sends a message that needs no answer, and its confirmation of the run's first channel then
    waits for this side's delayed acknowledgement of that message (40 ms)."""

    def __init__(self, sock: socket.socket, option: int) -> None:
        self._sock = sock
        self._option = option

    def recv(self, size: int) -> bytes:
        data = self._sock.recv(size)
        with contextlib.suppress(OSError):
            self._sock.setsockopt(socket.IPPROTO_TCP, self._option, 1)
        return data

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)


def _transport(sock: socket.socket | paramiko.Channel, **kwargs: object) -> paramiko.Transport:
    """paramiko's Transport on ``sock``; on a TCP socket with Nagle's algorithm off and, where
    the system has it, quick acknowledgements.

    SSH sends many small packets that wait for an answer (key exchange, authentication,
    channel requests); with Nagle on, each may sit out the peer's delayed acknowledgement
    (40 ms on Linux), which made every command a run sends take 40 ms longer. OpenSSH's own
    client turns it off as well."""
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if QUICKACK is not None:
            return paramiko.Transport(_QuickAckSocket(sock, QUICKACK), **kwargs)
    return paramiko.Transport(sock, **kwargs)


class SSHLink:
    """The run's one SSH connection to a site's login node, reopened when it drops.

    Every command, file transfer and port forward of a run goes through this object, so that
    each reuses the one authenticated connection and meets the same reconnect and error
    translation: a failure is an :class:`SSHError` naming the host and what was being done.
    """

    def __init__(self, site: Site) -> None:
        self.site = site
        # Keys decrypted once (passphrase asked at most once per run), kept for reconnects.
        self._credentials = Credentials(site.uid)
        self._conn: Connection | None = None
        self._home: str | None = None
        self._lock = threading.RLock()

    def __enter__(self) -> SSHLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def alive(self) -> bool:
        """True while the SSH transport is up."""
        conn = self._conn
        transport = conn.client.get_transport() if conn is not None else None
        return transport is not None and transport.is_active()

    def _connected(self) -> Connection:
        """The open Connection: opened on first use, reopened if it dropped."""
        with self._lock:
            if self._conn is None or not self.alive:
                self.close()
                self._conn = self._open()
            return self._conn

    @contextlib.contextmanager
    def _doing(self, what: str) -> Iterator[None]:
        """Translate a connection lost in the middle of ``what`` into one SSHError."""
        try:
            yield
        except SSHError:
            raise
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise SSHError(
                f"the SSH connection to {self.site.host} failed during {what} "
                f"({exc or type(exc).__name__}). Run the command again; --mode status shows "
                "whether the job is still there."
            ) from None

    def transport(self) -> paramiko.Transport:
        """The current SSH transport (for port forwarding)."""
        transport = self._connected().client.get_transport()
        if transport is None:
            raise SSHError(f"the SSH connection to {self.site.host} is closed")
        return transport

    def run(self, command: str, stdin: str | bytes | None = None) -> tuple[int, str, str]:
        """Run a command on the login node; return (exit code, stdout, stderr).

        ``stdin`` is sent at once on the command's channel, then end-of-file.
        """
        with self._doing(f"`{command.split()[0] if command.split() else command}`"):
            channel = self.transport().open_session()
            try:
                channel.exec_command(command)
                if stdin is not None:
                    channel.sendall(stdin if isinstance(stdin, bytes) else stdin.encode())
                channel.shutdown_write()
                stdout = channel.makefile("rb").read().decode(errors="replace")
                stderr = channel.makefile_stderr("rb").read().decode(errors="replace")
                code = channel.recv_exit_status()
                if code == -1 and not self.alive:  # the connection dropped mid-command
                    raise EOFError("the connection closed before the command's exit status")
                return code, stdout, stderr
            finally:
                channel.close()

    def check(self, command: str, stdin: str | bytes | None = None) -> str:
        """Run a command and return its stdout; a non-zero exit raises RemoteCommandError."""
        code, out, err = self.run(command, stdin)
        if code != 0:
            message = (err or out).strip() or f"exit code {code}"
            raise RemoteCommandError(f"`{command}` failed on {self.site.host}: {message}")
        return out

    def home(self) -> str:
        """The user's home directory on the login node (asked once per link)."""
        if self._home is None:
            self._home = self.check('printf %s "$HOME"').strip()
        return self._home

    def stream(self, command: str, out: BinaryIO | None = None) -> int:
        """Run a command with its output shown here as it comes (until it ends or Ctrl-C);
        return its exit code.

        Ctrl-C (KeyboardInterrupt) closes the command's channel, which ends the remote command
        (``tail -F`` gets SIGPIPE): a command without a terminal ignores the ETX that fabric
        would send, and fabric's wait for its output threads then never ended."""
        sys.stdout.flush()
        out = out or sys.stdout.buffer
        with self._doing(f"`{command.split()[0]}`"):
            channel = self.transport().open_session()
            try:
                channel.exec_command(command)
                channel.shutdown_write()
                while True:
                    got = False
                    if channel.recv_ready():
                        out.write(channel.recv(STREAM_CHUNK))
                        out.flush()
                        got = True
                    if channel.recv_stderr_ready():
                        sys.stderr.buffer.write(channel.recv_stderr(STREAM_CHUNK))
                        sys.stderr.buffer.flush()
                        got = True
                    if got:
                        continue
                    if channel.exit_status_ready() or channel.closed:
                        break
                    select.select([channel], [], [], 1.0)
                code = channel.recv_exit_status()
                if code == -1 and not self.alive:
                    raise EOFError("the connection closed before the command's exit status")
                return code
            finally:
                channel.close()

    def read(self, path: str, offset: int = 0) -> bytes:
        """The bytes of a cluster file from ``offset`` on (b"" while it does not exist)."""
        with self._doing(f"reading {path}"):
            sftp = self._connected().sftp()
            try:
                with sftp.open(path, "rb") as handle:
                    handle.seek(offset)
                    data: bytes = handle.read()
                    return data
            except OSError:  # missing or unreadable: nothing to show yet
                return b""

    def put(self, local: Path, remote: str) -> None:
        """Copy a local file to the cluster (created with mode 0600)."""
        with (
            self._doing(f"copying {local.name}"),
            self._connected().sftp().open(remote, "wb") as handle,
        ):
            handle.chmod(0o600)
            handle.write(local.read_bytes())

    def reconnect(self) -> None:
        """Replace a dropped connection by a new one (no-op if it is alive)."""
        self._connected()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _connection(self) -> Connection:
        """Return a new, not yet opened Connection to the site's login node."""
        site = self.site
        assert site.host is not None
        config = Config(overrides={"load_ssh_configs": True})
        connect_kwargs: dict[str, object] = {
            "banner_timeout": CONNECT_TIMEOUT,
            "auth_timeout": CONNECT_TIMEOUT,
        }
        gateway = None
        if site.proxy_jump:
            gateway = Connection(site.proxy_jump, config=config, connect_timeout=CONNECT_TIMEOUT)
        conn = Connection(
            site.host,
            user=site.user,
            port=site.port,
            config=config,
            gateway=gateway,
            connect_timeout=CONNECT_TIMEOUT,
            connect_kwargs=connect_kwargs,
        )
        self._authenticate(conn, site.keypath)
        hop = conn.gateway  # proxy_jump, or ProxyJump from ~/.ssh/config
        while isinstance(hop, Connection):
            self._authenticate(hop, None)
            hop = hop.gateway
        return conn

    def _authenticate(self, conn: Connection, keypath: Path | None) -> None:
        """Log ``conn`` in like OpenSSH: agent keys, then the key file, then a second factor
        on the terminal if the login node asks for one (see launcher.connection.auth)."""
        conn.connect_kwargs["transport_factory"] = _transport
        destination = Destination(conn.user, conn.host, conn.port)
        conn.connect_kwargs["auth_strategy"] = self._credentials.strategy(
            destination, conn.ssh_config, keypath
        )

    def _open(self) -> Connection:
        """Open a Connection with keepalive, translating failures into readable errors."""
        conn = self._connection()
        where = f"{conn.user}@{conn.host}:{conn.port}"
        try:
            conn.open()
        except paramiko.AuthenticationException as exc:
            conn.close()
            raise AuthenticationError(refusal_message(where, self.site.uid, exc)) from None
        except SSHError:  # a key or second factor that cannot be used (one line already)
            conn.close()
            raise
        except TimeoutError as exc:
            raise HostUnreachableError(
                f"{where} did not answer within {CONNECT_TIMEOUT}s ({exc or 'timeout'}). "
                "Check 'host'/'port', your network or VPN, and 'proxy_jump'."
            ) from None
        except OSError as exc:
            raise HostUnreachableError(
                f"cannot reach {where} ({exc}). Check 'host'/'port', your network or VPN, "
                "and 'proxy_jump'."
            ) from None
        except paramiko.SSHException as exc:
            raise SSHError(f"SSH to {where} failed ({exc}).") from None
        transport = conn.client.get_transport()
        if transport is not None:
            transport.set_keepalive(KEEPALIVE_SECONDS)
        return conn
