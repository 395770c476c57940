"""TLS reads and writes that start with an empty OpenSSL error queue.

OpenSSL keeps one error queue per thread, and ``SSL_get_error()`` reads it first: an entry left
there by an earlier, unrelated failure decides what a later ``SSL_read``/``SSL_write`` on
another connection "failed" with. Python's ``ssl`` module does not clear the queue before these
calls (python/cpython#148594). With OpenSSL 3.4 or later (Debian 13 ships 3.5), a write to a
peer that has gone leaves an ``ERR_LIB_SYS`` entry with ``EPIPE``, and Python 3.13 turns such an
entry into ``OSError`` (python/cpython#127257): the next read on a healthy TLS connection of the
same thread raises ``BrokenPipeError`` instead of "would block".

A Dask scheduler serves every connection from one event-loop thread. When a worker joins, its
registration connection closes; the scheduler's next read on another connection (a worker's
stream, a client's, or the jobqueue cluster's own connections to its scheduler) fails
spuriously, that connection is closed, which leaves the next entry, and so on: the worker is
removed, adaptive scaling stops, and a computation waits for good.

:func:`install` makes every read, write, handshake and TLS shutdown of :class:`ssl.SSLSocket`
and :class:`ssl.SSLObject` clear the calling thread's queue first, which is what OpenSSL asks
of its callers. It is called by the session scheduler, the batch driver and
``eotoolkit.cluster`` clients, and imported by worker processes (``--preload``).
"""

from __future__ import annotations

import ctypes
import functools
import ssl
from collections.abc import Callable
from typing import Any

#: What ``dask worker --preload`` imports in the worker processes of the session's clusters.
PRELOAD_MODULE = __name__
_METHODS = ("read", "write", "send", "do_handshake", "unwrap")
_MARK = "_eohpc_clears_openssl_errors"


def ssl_library() -> ctypes.CDLL | None:
    """The ``_ssl`` module's own library, through which symbols resolve as ``_ssl`` binds them.

    A symbol looked up through this handle is searched in ``_ssl`` and its dependencies
    (libssl, libcrypto), not in whichever libcrypto a process loaded first: wheels such as
    rasterio's bundle a libcrypto of their own, whose error queue is not the one ``ssl`` reads.
    An ``_ssl`` built into the interpreter resolves through the process's global symbols.
    """
    import _ssl

    try:
        return ctypes.CDLL(getattr(_ssl, "__file__", None))
    except OSError:
        return None


def _clear_function() -> Callable[[], None] | None:
    library = ssl_library()
    if library is None:
        return None
    try:
        clear = library.ERR_clear_error
    except AttributeError:
        return None
    clear.argtypes = []
    clear.restype = None
    return clear


def _clearing(method: Callable[..., Any], clear: Callable[[], None]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        clear()
        return method(self, *args, **kwargs)

    setattr(call, _MARK, True)
    return call


def installed() -> bool:
    """Whether :func:`install` has wrapped the ``ssl`` classes in this process."""
    return bool(getattr(ssl.SSLSocket.read, _MARK, False))


def install() -> bool:
    """Clear OpenSSL's error queue before each TLS operation in this process (idempotent).

    Returns False, changing nothing, when ``_ssl``'s libcrypto cannot be resolved (then
    ``ssl`` runs as is).
    """
    if installed():
        return True
    clear = _clear_function()
    if clear is None:
        return False
    for cls in (ssl.SSLSocket, ssl.SSLObject):
        for name in _METHODS:
            method = cls.__dict__.get(name)
            if method is not None and not getattr(method, _MARK, False):
                setattr(cls, name, _clearing(method, clear))
    return True


def dask_setup(*_args: Any) -> None:
    """Dask's preload hook (``dask worker --preload eoshared.scheduler.tls_errors``)."""
    install()
