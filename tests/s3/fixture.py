"""Session-scoped pytest fixture that runs the real S3 server (Ceph RADOS Gateway).

Register with ``pytest_plugins = ["tests.s3.fixture"]``. ``s3_rig`` is a
:class:`tests.s3.rig.RigInfo` (endpoint, bucket, the ``owner`` and ``other`` users); a rig
already running (``python -m tests.s3.rig up``) is reused and left running, one started here is
stopped at the end of the session. With env ``CI`` set or as root, a rig that cannot start fails
the tests; otherwise they are skipped with the reason.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator

import pytest

from tests.s3.rig import RigError, RigInfo, running, start, stop


class _Shared:
    info: RigInfo | None = None
    started_here = False
    users = 0


def _acquire() -> RigInfo:
    if _Shared.info is None:
        found = running()
        if found is not None:
            _Shared.info = found
        else:
            t0 = time.monotonic()
            try:
                _Shared.info = start()
            except (RigError, OSError) as exc:
                reason = f"S3 rig (Ceph RGW) could not start: {type(exc).__name__}: {exc}"
                if os.environ.get("CI") or os.geteuid() == 0:
                    pytest.fail(reason, pytrace=False)
                pytest.skip(f"{reason} (not root: apt-get install ceph-mon ceph-osd radosgw)")
            _Shared.started_here = True
            print(
                f"\nS3 rig up at {_Shared.info.endpoint} in {time.monotonic() - t0:.1f} s",
                file=sys.stderr,
            )
    _Shared.users += 1
    return _Shared.info


def _release() -> None:
    _Shared.users -= 1
    if _Shared.users == 0 and _Shared.info is not None:
        if _Shared.started_here:
            stop()
        _Shared.info, _Shared.started_here = None, False


@pytest.fixture(scope="session")
def s3_rig() -> Iterator[RigInfo]:
    """The running S3 rig of the session."""
    info = _acquire()
    try:
        yield info
    finally:
        _release()
