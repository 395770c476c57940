"""Schedulers the launcher can submit jobs to."""
