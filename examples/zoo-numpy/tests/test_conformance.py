"""zoo-bench's conformance suite against this plugin, one test per check (``pip install -e .``
first). The same checks print as a table with ``zoo check-plugin numpy``."""

import pytest

from zoo.testing import CHECKS, run_conformance


@pytest.fixture(scope="module")
def report():
    return run_conformance("numpy")  # runs every check once, in this process


@pytest.mark.parametrize("check", CHECKS)
def test_conformance(report, check):
    report.assert_passed(check)
