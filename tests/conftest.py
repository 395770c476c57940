"""Fixtures shared by the whole suite: the real test cluster, the real STAC API and the real
S3 server."""

import signal

pytest_plugins = [
    "tests.cluster.fixtures",
    "tests.browser.fixtures",
    "tests.stacapi.fixture",
    "tests.s3.fixture",
]

# A suite started as a background job of a non-interactive shell (`cmd &`) inherits SIGINT
# ignored, and so would every launcher it starts: the tests' Ctrl-C (SIGINT) would then reach
# nothing. A handled signal is reset to its default in the programs this process starts.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
