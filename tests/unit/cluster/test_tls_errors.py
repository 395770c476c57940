"""A stale OpenSSL error no longer fails a TLS read on another connection (tls_errors)."""

from __future__ import annotations

import contextlib
import ssl
from pathlib import Path

import pytest
import rasterio  # noqa: F401  (loads a bundled libcrypto before ``ssl`` is used, as eotoolkit does)

from eoshared.scheduler import tls_errors
from eoshared.scheduler.tls import create_session_tls
from eoshared.scheduler.workers import batch_system, worker_options

ERR_LIB_SYS = 2
EPIPE = 32


@pytest.fixture
def restored_ssl(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ssl classes' own methods during the test (also when another test installed the
    wrappers), and after it the methods as they were before."""
    for cls in (ssl.SSLSocket, ssl.SSLObject):
        for name in tls_errors._METHODS:
            method = cls.__dict__.get(name)
            if method is not None:
                monkeypatch.setattr(cls, name, getattr(method, "__wrapped__", method))


def connected_pair(tmp_path: Path) -> ssl.SSLObject:
    """The client end of a TLS 1.3 connection in memory, after one message each way."""
    tls = create_session_tls(tmp_path / "tls")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(tls.cert, tls.key)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(tls.ca_file)
    client_ctx.check_hostname = False
    s_in, s_out, c_in, c_out = (ssl.MemoryBIO() for _ in range(4))
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="localhost")

    def pump() -> None:
        s_in.write(c_out.read())
        c_in.write(s_out.read())

    for _ in range(10):
        for end in (client, server):
            with contextlib.suppress(ssl.SSLWantReadError):
                end.do_handshake()
        pump()
    server.write(b"x")
    pump()
    assert client.read(10) == b"x"
    client.write(b"y")
    pump()
    assert server.read(10) == b"y"
    return client


def leave_stale_epipe() -> None:
    """What a failed write to a peer that has gone leaves in this thread's error queue."""
    lib = tls_errors.ssl_library()
    assert lib is not None
    lib.ERR_new()
    lib.ERR_set_debug(b"test", 1, b"test")
    lib.ERR_set_error(ERR_LIB_SYS, EPIPE, None)


def test_a_stale_error_fails_the_next_read_without_install(
    tmp_path: Path, restored_ssl: None
) -> None:
    """The failure itself (OpenSSL 3.0: SSLError '[SYS] unknown error'; OpenSSL 3.5 with
    Python 3.13: BrokenPipeError), so that the next test shows what install() changes."""
    client = connected_pair(tmp_path)
    leave_stale_epipe()
    with pytest.raises(OSError) as raised:
        client.read(10)
    assert not isinstance(raised.value, ssl.SSLWantReadError)
    tls_errors._clear_function()()  # type: ignore[misc]


def test_after_install_a_read_with_nothing_to_read_wants_read(
    tmp_path: Path, restored_ssl: None
) -> None:
    assert tls_errors.install()
    assert tls_errors.installed() and tls_errors.install()  # idempotent
    client = connected_pair(tmp_path)
    leave_stale_epipe()
    with pytest.raises(ssl.SSLWantReadError):
        client.read(10)


def test_worker_options_add_the_preload_to_the_configured_arguments() -> None:
    import dask

    system = batch_system("htcondor")
    with dask.config.set({"jobqueue.htcondor.worker-extra-args": ["--lifetime", "25m"]}):
        assert worker_options(system) == {
            "worker_extra_args": ["--lifetime", "25m", "--preload", tls_errors.PRELOAD_MODULE]
        }
    given = ["--preload", tls_errors.PRELOAD_MODULE]
    assert worker_options(system, given) == {"worker_extra_args": given}
    assert worker_options(system, []) == {"worker_extra_args": given}
