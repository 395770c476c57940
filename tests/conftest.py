"""Fixtures shared by the whole suite: the real test cluster and the real STAC API."""

pytest_plugins = [
    "tests.cluster.fixtures",
    "tests.browser.fixtures",
    "tests.stacapi.fixture",
]
