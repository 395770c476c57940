"""In-process Dask clusters for the unit tests."""

from __future__ import annotations

from distributed import LocalCluster


def local_cluster(security: object = None) -> LocalCluster:
    """A small in-process LocalCluster on loopback (TLS when ``security`` is given)."""
    return LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=False,
        host="127.0.0.1",
        dashboard_address=":0",
        protocol="tls://" if security is not None else "tcp://",
        security=security,
    )
