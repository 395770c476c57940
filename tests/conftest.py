"""Fixtures shared by the whole suite: the real test cluster, the real STAC API and the real
S3 server."""

pytest_plugins = [
    "tests.cluster.fixtures",
    "tests.browser.fixtures",
    "tests.stacapi.fixture",
    "tests.s3.fixture",
]
