"""pytest plugin of zoo-bench: ``pytest --zoo-framework NAME`` adds one test per conformance
check of framework NAME to the session.

zoo-bench registers this module under pytest's ``pytest11`` entry point, so pytest loads it
whenever zoo-bench is installed; with ``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1`` load it with
``-p zoo.testing.pytest_plugin``. Without ``--zoo-framework`` it adds nothing. The suite runs
in the pytest process, once per framework, the first time one of its tests runs.
"""

from __future__ import annotations

from typing import Any

import pytest

from zoo.testing.report import ConformanceFailure, ConformanceReport
from zoo.testing.runner import CHECKS, run_conformance

_REPORTS = pytest.StashKey[dict]()
_SELECTED = pytest.StashKey[dict]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("zoo", "zoo-bench plugin conformance (zoo.testing)")
    group.addoption("--zoo-framework", action="append", default=[], metavar="NAME",
                    help="run zoo-bench's conformance suite against the installed framework NAME, one test "
                         "per check (repeatable)")
    group.addoption("--zoo-device", default="cpu", choices=("cpu", "gpu"),
                    help="device for --zoo-framework checks (default: cpu)")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_REPORTS] = {}
    config.stash[_SELECTED] = {}


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]):
    """Add the conformance items before -k/-m deselection (so those apply to them too), and
    afterwards note which checks are still selected, so that only those run."""
    for name in dict.fromkeys(config.getoption("zoo_framework")):
        for check in CHECKS:
            items.append(ConformanceItem.from_parent(
                session, name=f"zoo_conformance[{name}-{check}]", nodeid=f"zoo-conformance::{name}::{check}",
                framework=name, check=check,
            ))
    result = yield
    selected = config.stash[_SELECTED]
    for item in items:
        if isinstance(item, ConformanceItem):
            selected.setdefault(item.framework, set()).add(item.check)
    return result


def report_for(config: pytest.Config, framework: str) -> ConformanceReport:
    reports = config.stash[_REPORTS]
    if framework not in reports:
        checks = config.stash[_SELECTED].get(framework) or CHECKS
        reports[framework] = run_conformance(framework, checks=checks, device=config.getoption("zoo_device"))
    return reports[framework]


class ConformanceItem(pytest.Item):
    """One conformance check of one framework."""

    def __init__(self, *, framework: str, check: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.framework, self.check = framework, check

    def runtest(self) -> None:
        report_for(self.config, self.framework).assert_passed(self.check)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, ConformanceFailure):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, f"zoo conformance: {self.framework} {self.check}"
