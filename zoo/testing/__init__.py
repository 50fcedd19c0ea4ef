"""zoo.testing: the conformance suite a framework plugin runs to prove it keeps the contract.

Three ways to run it against an installed framework plugin (see ``docs/writing-plugins.md``):

* ``zoo check-plugin NAME``: a table of every check, exit status 0 when the plugin conforms;
* ``pytest --zoo-framework NAME``: one pytest test per check (the pytest plugin
  :mod:`zoo.testing.pytest_plugin` comes with zoo-bench through the ``pytest11`` entry point);
* in a plugin's own tests (what ``zoo new-plugin`` generates)::

      import pytest
      from zoo.testing import CHECKS, run_conformance

      @pytest.fixture(scope="module")
      def report():
          return run_conformance("myframework")

      @pytest.mark.parametrize("check", CHECKS)
      def test_conformance(report, check):
          report.assert_passed(check)

:func:`run_isolated` runs the same suite in a child process with a timeout per check, so an
adapter that exits, hangs, segfaults or raises ``KeyboardInterrupt``/``SystemExit`` yields a
failed report instead of ending the caller (``zoo check-plugin`` uses it).

:func:`run_conformance` runs the checks of :data:`CHECKS` in order and returns a
:class:`ConformanceReport` of :class:`CheckResult` (passed, failed, not implemented, not
applicable, skipped; each with a message saying what was found or what to fix). It never raises
because an adapter is broken. Each check is also a plain function of a
:class:`~zoo.testing.context.Context` (:mod:`zoo.testing.checks`, :mod:`zoo.testing.sync`).

Importing this package imports no deep-learning framework and not pytest.
"""

from zoo.testing.context import Context, NullMeter, RecordingMeter
from zoo.testing.report import (
    FAILED, NOT_APPLICABLE, NOT_IMPLEMENTED, PASSED, SKIPPED, CheckResult, ConformanceFailure, ConformanceReport,
)
from zoo.testing.runner import CHECKS, UsageError, run_conformance
from zoo.testing.isolated import run_isolated

__all__ = [
    "CHECKS", "FAILED", "NOT_APPLICABLE", "NOT_IMPLEMENTED", "PASSED", "SKIPPED", "CheckResult",
    "ConformanceFailure", "ConformanceReport", "Context", "NullMeter", "RecordingMeter", "UsageError",
    "run_conformance", "run_isolated",
]
