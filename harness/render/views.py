"""What a renderer renders: one dataclass per view (see :mod:`zoo.renderers` for the contract a
plugin's renderer works from). Commands build a view from the analysis and hand it to the
renderer the user chose with ``--format``."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import pandas as pd

from harness.analysis.history import History, build_history
from harness.analysis.side_by_side import SideBySide
from harness.results.loader import ResultSet
from harness.results.metrics import BUILTIN, Catalogue

if TYPE_CHECKING:  # pragma: no cover
    from harness.analysis.compare import Comparison


@dataclass(frozen=True)
class ReportView:
    """``zoo report``: the runs, their frameworks side by side, and (HTML) their history."""

    results: ResultSet
    table: SideBySide
    title: str = ""
    catalogue: Catalogue = BUILTIN

    @cached_property
    def history(self) -> History | None:
        """The runs' history (default metrics), computed when a renderer first asks; None for one run."""
        if len(self.results.runs) < 2:
            return None
        return build_history(self.results, catalogue=self.catalogue)


@dataclass(frozen=True)
class CompareView:
    """``zoo compare``: the verdicts, which rows to show, and what gates."""

    comparison: "Comparison"
    show_all: bool = False
    fail_on: tuple[str, ...] = ()
    failures: pd.DataFrame = field(default_factory=pd.DataFrame)  # the rows that fail the command
    catalogue: Catalogue = BUILTIN

    @property
    def rows(self) -> pd.DataFrame:
        return self.comparison.shown(self.show_all)


@dataclass(frozen=True)
class HistoryView:
    """``zoo history``: every series over the runs, the last ``last`` runs shown."""

    history: History
    results: ResultSet
    last: int = 10
    catalogue: Catalogue = BUILTIN


@dataclass(frozen=True)
class ExportView:
    """``zoo export``: one run, for another tool."""

    results: ResultSet
    catalogue: Catalogue = BUILTIN
