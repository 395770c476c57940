"""An HTTPS (CONNECT) proxy on this machine for pip inside a rig's network namespace.

The PBS and HTCondor rigs' namespaces have no route beyond this machine, so ``--mode install``
there (pip run by the cluster user) reaches the package index through this proxy, listening on
the host side of the rig's veth pair. Only ``CONNECT host:443`` is served; it lives as long as
the ``with`` block.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

ALLOWED_PORT = 443


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _serve(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
    try:
        head = await asyncio.wait_for(client_r.readuntil(b"\r\n\r\n"), 30)
        method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        host, _, port = target.rpartition(":")
        if method != "CONNECT" or int(port) != ALLOWED_PORT:
            client_w.write(b"HTTP/1.1 403 Forbidden\r\n\r\n")
            await client_w.drain()
            client_w.close()
            return
        up_r, up_w = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 30)
    except (OSError, ValueError, asyncio.TimeoutError, asyncio.IncompleteReadError):
        with contextlib.suppress(Exception):
            client_w.write(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
            client_w.close()
        return
    client_w.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
    await client_w.drain()
    await asyncio.gather(_pipe(client_r, up_w), _pipe(up_r, client_w))


@contextlib.contextmanager
def connect_proxy(host: str) -> Iterator[int]:
    """Serve CONNECT on ``host`` (a free port, yielded) from an event loop in a thread of its
    own: the loop is created, started and stopped in that thread, so a loop another library
    left running in the calling thread does not matter."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    started: list[asyncio.base_events.Server] = []
    failed: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            started.append(loop.run_until_complete(asyncio.start_server(_serve, host, 0)))
        except BaseException as exc:  # reported to the caller below
            failed.append(exc)
            ready.set()
            loop.close()
            return
        ready.set()
        loop.run_forever()
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    if not ready.wait(30) or failed:
        raise RuntimeError(f"the pip proxy did not start on {host}: {failed or 'timeout'}")
    port = started[0].sockets[0].getsockname()[1]
    try:
        yield int(port)
    finally:
        loop.call_soon_threadsafe(started[0].close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
