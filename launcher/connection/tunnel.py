"""A local port forward bound to 127.0.0.1 that survives SSH reconnects.

The listening socket is bound once (so the URL stays valid); each browser connection gets a
`direct-tcpip` channel on the link's current SSH transport. A watchdog thread reopens the SSH
connection when it drops. Problems noticed in these background threads (a lost connection, a
channel the login node refuses) reach the user as one readable line through ``on_problem``.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
import time
from collections.abc import Callable

import paramiko

from eoshared.errors import PortInUseError, SSHError
from launcher.connection.ssh import SSHLink

log = logging.getLogger(__name__)
BUFFER = 65536


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bind_local(port: int) -> socket.socket:
    """Bind a listening socket on 127.0.0.1:port, or explain that the port is taken."""
    sock = socket.socket()
    # connections this machine closed earlier (TIME_WAIT) do not keep the port: a tunnel
    # reopened on the same port (a requeued job's next run) binds it again
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        raise PortInUseError(
            f"local port {port} is already in use ({exc.strerror}). "
            "Pick another with --local-port, or omit it to use a free port."
        ) from None
    sock.listen(64)
    return sock


def check_port_free(port: int) -> None:
    """Raise PortInUseError when 127.0.0.1:port cannot be bound."""
    bind_local(port).close()


def port_free(port: int) -> bool:
    """Whether 127.0.0.1:port can be bound."""
    try:
        check_port_free(port)
    except PortInUseError:
        return False
    return True


class Tunnel:
    """Forward 127.0.0.1:local_port to remote_host:remote_port as seen from the login node."""

    def __init__(
        self,
        link: SSHLink,
        remote_host: str,
        remote_port: int,
        local_port: int,
        on_problem: Callable[[str], None] = log.warning,
    ) -> None:
        self.link = link
        self.remote = (remote_host, remote_port)
        self.local_port = local_port
        self.on_problem = on_problem
        self._listener = bind_local(local_port)
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._accept_loop, name="tunnel-accept", daemon=True),
            threading.Thread(target=self._watchdog, name="tunnel-watchdog", daemon=True),
        ]

    def __enter__(self) -> Tunnel:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop accepting and close the listening socket (shut down first: a close alone
        leaves the port bound while the accepting thread still waits in accept())."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._listener.close()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, peer = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client, peer), daemon=True).start()

    def _serve(self, client: socket.socket, peer: tuple[str, int]) -> None:
        with client:
            channel = None
            error: Exception | None = None
            for _ in range(3):
                try:
                    transport = self.link.transport()
                    channel = transport.open_channel("direct-tcpip", self.remote, peer, timeout=15)
                    break
                except (SSHError, paramiko.SSHException, OSError, EOFError) as exc:
                    error = exc  # the transport may be mid-reconnect: try again
                    self._reconnect_if_dead()
            if channel is None:
                host, port = self.remote
                self.on_problem(
                    f"the login node could not open a forward to {host}:{port} ({error}); "
                    "--mode status shows whether the job still runs"
                )
                return
            with channel:
                self._pump(client, channel)

    def _pump(self, client: socket.socket, channel: paramiko.Channel) -> None:
        while not self._stop.is_set():
            readable, _, _ = select.select([client, channel], [], [], 1.0)
            for source in readable:
                sink = channel if source is client else client
                try:
                    data = source.recv(BUFFER)
                except OSError:
                    return
                if not data:
                    return
                sink.sendall(data)

    def _watchdog(self) -> None:
        while not self._stop.wait(1.0):
            self._reconnect_if_dead()

    def _reconnect_if_dead(self) -> None:
        if self.link.alive or self._stop.is_set():
            return
        delay = 1.0
        failed = False
        while not self._stop.is_set():
            try:
                self.link.reconnect()
            except SSHError as exc:
                if not failed:
                    self.on_problem(f"the SSH connection was lost; reconnecting ({exc})")
                failed = True
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            if failed:
                self.on_problem("the SSH connection is back")
            return
