"""The tunnel's local port."""

from __future__ import annotations


def test_a_closed_tunnel_frees_its_port_at_once() -> None:
    """A requeued job's next run reconnects on the same local port: closing the tunnel (whose
    thread waits in accept()) must release it."""
    import time
    from types import SimpleNamespace

    from launcher.connection.tunnel import Tunnel, free_port, port_free

    port = free_port()
    link = SimpleNamespace(alive=True)
    with Tunnel(link, "node", 8888, port):  # type: ignore[arg-type]
        time.sleep(0.2)  # the accepting thread is in accept()
        assert not port_free(port)
    assert port_free(port)
    with Tunnel(link, "node", 8888, port):  # type: ignore[arg-type]
        assert not port_free(port)
