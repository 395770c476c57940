"""The two sites that implement `JobSite`: a cluster reached over SSH and this machine; what a
job asks of the cluster (job scripts, the Dask config of the worker jobs, the size check,
dry-run) and the cluster-side environment (install)."""
