"""Open raster datasets shared by the threads of a process, one thread at a time.

A GDAL dataset must not be used by two threads at once, but may pass from one thread to the
next. A thread takes an idle handle of the file (or opens one) and gives it back after its
read, so that a file is opened about once per process instead of once per thread, and the
number of open files stays bounded however many threads a Dask worker runs.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager

import rasterio


class HandlePool:
    """Idle dataset handles by key, at most ``max_idle`` of them, least recently used closed."""

    def __init__(self, max_idle: int) -> None:
        self.max_idle = max_idle
        self._idle: OrderedDict[Hashable, list[rasterio.DatasetReader]] = OrderedDict()
        self._count = 0
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def _check_fork(self) -> None:
        """A forked child starts with no handles (the parent's belong to the parent)."""
        if self._pid != os.getpid():
            self._idle = OrderedDict()
            self._count = 0
            self._pid = os.getpid()

    @contextmanager
    def take(
        self, key: Hashable, opener: Callable[[], rasterio.DatasetReader]
    ) -> Iterator[rasterio.DatasetReader]:
        """An idle handle of ``key`` (or a new one from ``opener``) for the calling thread;
        given back on exit, closed instead if the block raised."""
        src = None
        with self._lock:
            self._check_fork()
            handles = self._idle.get(key)
            if handles:
                src = handles.pop()
                self._count -= 1
                if not handles:
                    del self._idle[key]
        if src is None or src.closed:
            src = opener()
        try:
            yield src
        except BaseException:
            src.close()
            raise
        self._give_back(key, src)

    def _give_back(self, key: Hashable, src: rasterio.DatasetReader) -> None:
        evicted = []
        with self._lock:
            self._check_fork()
            self._idle.setdefault(key, []).append(src)
            self._idle.move_to_end(key)
            self._count += 1
            while self._count > self.max_idle:
                oldest, handles = next(iter(self._idle.items()))
                evicted.append(handles.pop(0))
                self._count -= 1
                if not handles:
                    del self._idle[oldest]
        for old in evicted:
            old.close()

    def discard(self, match: Callable[[Hashable], bool]) -> None:
        """Close the idle handles whose key matches."""
        with self._lock:
            self._check_fork()
            keys = [k for k in self._idle if match(k)]
            closing = [h for k in keys for h in self._idle.pop(k)]
            self._count -= len(closing)
        for src in closing:
            src.close()

    def idle(self) -> int:
        """Number of idle handles."""
        return self._count
