"""The Dask scheduler of a session: one home for both sides of it.

Importable on the laptop and on the cluster without xarray or SSH:

- :mod:`~eoshared.scheduler.files`: private files (0600/0700) and the state directory;
- :mod:`~eoshared.scheduler.contract`: the scheduler file, its format version and environment
  names;
- :mod:`~eoshared.scheduler.tls`: per-session TLS certificates;
- :mod:`~eoshared.scheduler.workers`: dask-jobqueue clusters of a batch system's worker jobs,
  scheduler options, worker job names and their cancellation;
- :mod:`~eoshared.scheduler.serve`: the long-lived session scheduler (``run --scheduler``);
- :mod:`~eoshared.scheduler.driver`: the batch job's cluster (``--mode batch``);
- :mod:`~eoshared.scheduler.local_copy`: the laptop's copy of a session's scheduler file.

:mod:`eotoolkit.cluster` re-exports what notebooks and scripts use (``get_client`` and friends).
"""
