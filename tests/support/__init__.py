"""Helpers the tests import: classes, functions and constants, no fixtures.

Fixtures stay in the ``conftest.py`` files and the fixture modules (``tests/cluster/fixtures.py``
and the like); a test takes what it calls from here, never from a conftest or another test
module.

- :mod:`~tests.support.waiting`: :func:`~tests.support.waiting.wait_until`.
- :mod:`~tests.support.launcher_run`: the launcher's command line run as a user would.
- :mod:`~tests.support.process_output`: reading a running launcher's output (URLs, lines).
- :mod:`~tests.support.wheel_install`: the launcher installed from its wheel.
- :mod:`~tests.support.rig_sites`: the launcher on each batch system's rig.
- :mod:`~tests.support.faults`: faults injected into the rigs, and what the launcher left.
- :mod:`~tests.support.pipeline_records`: SLURM's and the ledger's records of a pipeline.
- :mod:`~tests.support.s2_collection`: the synthetic Sentinel-2 collection's expected values.
- :mod:`~tests.support.dask_clusters`: in-process Dask clusters.
"""
