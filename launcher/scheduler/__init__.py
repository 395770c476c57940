"""The Dask scheduler of a session: one home for both sides of it.

Importable on the laptop and on the cluster without xarray or SSH:

- :mod:`~launcher.scheduler.files`: private files (0600/0700) and the state directory;
- :mod:`~launcher.scheduler.contract`: the scheduler file, its format version and environment
  names;
- :mod:`~launcher.scheduler.tls`: per-session TLS certificates;
- :mod:`~launcher.scheduler.workers`: dask-jobqueue clusters of a batch system's worker jobs,
  scheduler options, worker job names and their cancellation;
- :mod:`~launcher.scheduler.serve`: the long-lived session scheduler (``run --scheduler``);
- :mod:`~launcher.scheduler.driver`: the batch job's cluster (``--mode batch``);
- :mod:`~launcher.scheduler.local_copy`: the laptop's copy of a session's scheduler file.

:mod:`eotoolkit.cluster` re-exports what notebooks and scripts use (``get_client`` and friends).
"""
