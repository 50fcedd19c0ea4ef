"""Results of the conformance suite: one :class:`CheckResult` per check and subject, collected in
a :class:`ConformanceReport` that renders as text, as JSON, or as pytest outcomes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

PASSED = "passed"
FAILED = "failed"
NOT_IMPLEMENTED = "not implemented"
NOT_APPLICABLE = "not applicable"
SKIPPED = "skipped"
#: Every status, worst first: a check's status is the worst of its results.
STATUSES = (FAILED, NOT_IMPLEMENTED, SKIPPED, PASSED, NOT_APPLICABLE)

LABELS = {PASSED: "PASS", FAILED: "FAIL", NOT_IMPLEMENTED: "TODO", NOT_APPLICABLE: "N/A", SKIPPED: "SKIP"}


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check on one subject (a model, a phase), and why."""

    check: str  # one of zoo.testing.CHECKS
    subject: str  # e.g. "mlp", "cnn: adam step", "evaluate"; "" when the check has one part
    status: str  # one of STATUSES
    message: str  # what was found, or what failed, why, and what to do
    detail: str = ""  # traceback of an unexpected exception

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    @property
    def ok(self) -> bool:
        """Passed or not applicable (anything else makes the suite fail)."""
        return self.status in (PASSED, NOT_APPLICABLE)

    @property
    def title(self) -> str:
        return f"{self.check} [{self.subject}]" if self.subject else self.check


class ConformanceFailure(AssertionError):
    """Raised by :meth:`ConformanceReport.assert_passed` for a failed or unimplemented check."""


@dataclass
class ConformanceReport:
    """Everything the suite found about one framework adapter."""

    framework: str
    origin: str  # where the adapter came from, e.g. "zoo-numpy 0.1.0, entry point numpy -> zoo_numpy"
    checks: Sequence[str]  # the checks that were run, in order
    results: list[CheckResult] = field(default_factory=list)
    models: list[str] = field(default_factory=list)  # the zoo models the checks used

    def results_for(self, check: str) -> list[CheckResult]:
        return [r for r in self.results if r.check == check]

    def status_of(self, check: str) -> str:
        """The worst status among the check's results (``skipped`` when it has none)."""
        statuses = {r.status for r in self.results_for(check)}
        for status in STATUSES:
            if status in statuses:
                return status
        return SKIPPED

    @property
    def ok(self) -> bool:
        """No result failed or is still unimplemented (skips only follow such a result)."""
        return all(r.status not in (FAILED, NOT_IMPLEMENTED) for r in self.results)

    def counts(self) -> dict[str, int]:
        return {s: n for s in STATUSES if (n := sum(r.status == s for r in self.results))}

    def summary(self) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in self.counts().items())
        verdict = "conforms" if self.ok else "does NOT conform"
        return f"framework {self.framework!r} {verdict} to the zoo contract ({counts})"

    def explain(self, check: str) -> str:
        """Every result of ``check`` that is not ok, one per paragraph, with tracebacks."""
        lines = []
        for r in self.results_for(check):
            if not r.ok:
                lines.append(f"{LABELS[r.status]} {r.title}: {r.message}")
                if r.detail:
                    lines.append(r.detail.rstrip())
        return "\n".join(lines) or f"{check}: {self.status_of(check)}"

    def format(self, tracebacks: bool = False) -> str:
        """The whole report as plain text, one line per result."""
        width = max([len(r.title) for r in self.results] + [10])
        lines = [f"zoo conformance: framework {self.framework!r} ({self.origin}); models: "
                 f"{', '.join(self.models) or 'none'}"]
        for r in self.results:
            lines.append(f"  {LABELS[r.status]:<4}  {r.title:<{width}}  {r.message}")
            if tracebacks and r.detail and not r.ok:
                lines += ["        " + line for line in r.detail.rstrip().splitlines()]
        lines.append(self.summary())
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "framework": self.framework,
            "origin": self.origin,
            "ok": self.ok,
            "models": list(self.models),
            "checks": {c: self.status_of(c) for c in self.checks},
            "results": [asdict(r) for r in self.results],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ConformanceReport":
        """The report :meth:`to_dict` wrote (e.g. by a check process, :mod:`zoo.testing.isolated`)."""
        return cls(data["framework"], data["origin"], list(data["checks"]),
                   [CheckResult(**r) for r in data.get("results", ())], list(data.get("models", ())))

    def assert_passed(self, check: str) -> None:
        """For a test per check: return if ``check`` passed; skip (pytest) if it does not apply
        or was skipped because an earlier check failed; otherwise raise
        :class:`ConformanceFailure` saying what failed and why."""
        __tracebackhide__ = True
        if check not in self.checks:
            raise ValueError(f"check {check!r} was not run; ran: {', '.join(self.checks)}")
        status = self.status_of(check)
        if status in (FAILED, NOT_IMPLEMENTED):
            raise ConformanceFailure(self.explain(check))
        if status in (NOT_APPLICABLE, SKIPPED):
            import pytest

            reasons = "; ".join(r.message for r in self.results_for(check)) or "not run"
            pytest.skip(f"{status}: {reasons}")
