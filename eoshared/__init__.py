"""What the launcher and eotoolkit share: the batch systems, the Dask session (its scheduler,
workers and the scheduler file), the per-scene ledger, the S3 settings and the errors a command
prints. It imports neither `launcher` nor `eotoolkit`; both import it."""
