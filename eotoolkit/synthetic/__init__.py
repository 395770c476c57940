"""Reproducible synthetic Earth-observation data for examples, tests and benchmarks."""
