"""The framework-side-by-side table that every report format renders (terminal, Markdown, HTML):
one row per (run, model, task, setting, metric), one column per framework, each value with its
spread and its ratio to a reference framework. Labels, formats and the default metrics come from
the metric catalogue."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import pandas as pd

from zoo.metrics import MetricDef

from harness.analysis.formatting import fmt_cv, fmt_ratio, fmt_value, heading
from harness.results.loader import ResultSet
from harness.results.metrics import BUILTIN, Catalogue


@dataclass(frozen=True)
class Entry:
    value: float = math.nan
    cv: float = math.nan
    ratio: float = math.nan
    status: str = "ok"

    def text(self, definition: MetricDef | str, with_ratio: bool = True) -> str:
        """The cell as shown: value, spread and ratio (a name is looked up in the built-in catalogue)."""
        if self.status != "ok":
            return self.status
        if self.value != self.value:
            return ""
        if not isinstance(definition, MetricDef):
            definition = BUILTIN.definition(definition)
        ratio = fmt_ratio(self.ratio) if with_ratio else ""
        return fmt_value(definition, self.value) + fmt_cv(self.cv) + (f" ({ratio})" if ratio else "")


@dataclass(frozen=True)
class Row:
    run: str
    model: str
    task: str
    setting: str
    metric: str
    direction: str
    unit: str
    definition: MetricDef
    entries: dict[str, Entry] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return heading(self.definition, self.direction)

    def text(self, framework: str) -> str:
        """The framework's cell ("" when it has none)."""
        entry = self.entries.get(framework)
        return entry.text(self.definition) if entry is not None else ""


@dataclass(frozen=True)
class SideBySide:
    frameworks: list[str]
    reference: str
    rows: list[Row]
    show_run: bool
    show_setting: bool
    failures: pd.DataFrame  # cells not ok: run, cell_key, status, error_phase, error_type, error_message
    catalogue: Catalogue = BUILTIN

    def key_columns(self) -> list[str]:
        return (["run"] if self.show_run else []) + ["model", "task"] + (["setting"] if self.show_setting else [])


def _setting(df: pd.DataFrame) -> pd.Series:
    return (df["device"] + " " + df["precision"] + " b" + df["batch_size"].astype(str) + " freeze=" + df["freeze"]
            + " " + df["init"])


def side_by_side(rs: ResultSet, reference: str | None = None, metrics: Sequence[str] | None = None,
                 catalogue: Catalogue = BUILTIN) -> SideBySide:
    """Build the table of ``metrics`` (default: the catalogue's default columns). ``reference``
    defaults to the first framework in run order; an unknown one raises ``ValueError`` naming the
    frameworks present."""
    metrics = list(metrics or catalogue.columns())
    cells = rs.cells.assign(framework=rs.cells["label"])  # framework:variant
    frameworks = list(dict.fromkeys(cells["framework"]))
    if reference is None:
        reference = frameworks[0] if frameworks else ""
    elif reference not in frameworks:
        raise ValueError(f"unknown reference framework {reference!r}; in these runs: {', '.join(frameworks) or 'none'}")
    cells["setting"] = _setting(cells) if len(cells) else pd.Series(dtype=str)
    m = rs.metrics[rs.metrics["metric"].isin(metrics) & (rs.metrics["status"] == "ok")]
    m = m.assign(framework=m["label"])
    m["setting"] = _setting(m) if len(m) else pd.Series(dtype=str)
    keys = ["run", "model", "task", "setting"]
    values = {(r.run, r.model, r.task, r.setting, r.metric, r.framework): r for r in m.itertuples(index=False)}
    rows = []
    groups = cells[keys].drop_duplicates()
    status = {(r.run, r.model, r.task, r.setting, r.framework): r.status for r in cells.itertuples(index=False)}
    for g in groups.itertuples(index=False):
        for metric in metrics:
            found = [values.get((*g, metric, fw)) for fw in frameworks]
            if not any(found):
                continue
            ref = values.get((*g, metric, reference))
            ref_value = ref.value if ref is not None else math.nan
            entries = {}
            for fw, rec in zip(frameworks, found):
                st = status.get((*g, fw))
                if rec is not None:
                    ratio = rec.value / ref_value if ref_value and ref_value == ref_value else math.nan
                    entries[fw] = Entry(rec.value, rec.robust_cv, ratio)
                elif st is not None and st != "ok":
                    entries[fw] = Entry(status=st)
            first = next(r for r in found if r is not None)
            rows.append(Row(g.run, g.model, g.task, g.setting, metric, first.direction, first.unit,
                            catalogue.definition(metric), entries))
    failures = rs.cells[rs.cells["status"] != "ok"][
        ["run", "cell_key", "status", "error_phase", "error_type", "error_message"]]
    return SideBySide(frameworks, reference, rows, show_run=rs.cells["run"].nunique() > 1,
                      show_setting=cells["setting"].nunique() > 1, failures=failures, catalogue=catalogue)
