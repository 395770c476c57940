"""Staged pipelines: the pipeline file, the chained jobs and their watch and report, and the
array task that runs on the cluster."""
