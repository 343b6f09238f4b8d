# SPDX-License-Identifier: Apache-2.0
"""The security suite (tests/security): real `rxflow serve` processes on loopback, attacked
over HTTP and raw sockets. Helpers in sec_harness.py, on top of tests/e2e/harness.py."""
import tempfile

import pytest


@pytest.fixture
def tmp():
    """A private directory for one test's server (removed after, keys and all)."""
    with tempfile.TemporaryDirectory(prefix="rxflow-sec-") as d:
        yield d
