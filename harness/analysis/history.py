"""The nightly table: every metric of every cell over many runs, with change points flagged.

A *series* is one (machine fingerprint, cell key, metric) over the runs in start order; runs from
other machines are never mixed into it. Change points are found by binary segmentation: at each
candidate run ``i``, the level before is the median of up to ``window`` values before ``i`` and
the level after the median of up to ``window`` values from ``i`` on. A split is a change point
when the change of level is beyond the threshold of the metric's history rule (its definition in
the metric catalogue: the same thresholds as ``zoo compare`` unless it names its own) *and*
larger than ``k`` times the night-to-night noise (1.2533 x the mean absolute deviation of both windows from their own levels, which estimates sigma for normal data and
grows with outliers), so one bad night in the middle of a series does not count. The split is placed where it leaves the least absolute deviation from each
side's median (L1 binary segmentation, at least three runs before it); when it is a change point,
each side is searched again. A change point with fewer than two runs after it (the latest night)
is reported as not yet sustained.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from zoo.metrics import Rule

from harness.results.loader import ResultSet
from harness.results.metrics import BUILTIN, Catalogue

MIN_BEFORE = 3  # runs before a change point: fewer cannot tell a change from noise


@dataclass(frozen=True)
class ChangePoint:
    index: int  # position in the series' values (runs without a value are skipped)
    change: float  # relative (fraction) or absolute, as the rule says
    better: bool
    sustained: bool


def _cost(x: np.ndarray) -> float:
    return float(np.abs(x - np.median(x)).sum()) if x.size else 0.0


def change_points(values: Sequence[float], rule: Rule, direction: str, window: int = 5,
                  k: float = 3.0) -> list[ChangePoint]:
    """Change points of one series (NaN-free values in run order)."""
    v = np.asarray(values, float)
    relative = rule.kind == "relative"
    found: list[ChangePoint] = []

    def search(lo: int, hi: int) -> None:
        if hi - lo < MIN_BEFORE + 1:
            return
        # where: the split that leaves the least absolute deviation from each side's median
        i = min(range(lo + MIN_BEFORE, hi), key=lambda j: _cost(v[lo:j]) + _cost(v[j:hi]))
        before, after = v[max(lo, i - window):i], v[i:min(hi, i + window)]
        lb, la = float(np.median(before)), float(np.median(after))
        if relative and lb == 0:
            return
        change = la / lb - 1 if relative else la - lb
        residuals = np.concatenate([before - lb, after - la])
        noise = 1.2533 * float(np.mean(np.abs(residuals)))  # sigma of normal data; a median could be 0
        if relative:
            noise /= abs(lb)
        if abs(change) <= rule.threshold or abs(la - lb) <= rule.min_abs or abs(change) <= k * noise:
            return
        better = change > 0 if direction != "lower" else change < 0
        found.append(ChangePoint(i, change, better, sustained=hi - i >= 2))
        search(lo, i)
        search(i, hi)

    search(0, len(v))
    return sorted(found, key=lambda c: c.index)


@dataclass
class History:
    runs: pd.DataFrame  # the runs frame of the ResultSet, oldest first
    values: pd.DataFrame  # one row per series: key columns, then one column per run label
    status: pd.DataFrame  # same shape: the cell's status in each run ("" when absent)
    changes: pd.DataFrame  # one row per change point: key columns, run, change, better, sustained
    key_columns: list[str]
    catalogue: Catalogue = BUILTIN


def build_history(rs: ResultSet, metrics: Sequence[str] | None = None, window: int = 5, k: float = 3.0,
                  catalogue: Catalogue = BUILTIN) -> History:
    """The history of ``metrics`` (default: the catalogue's default columns) over every run in
    ``rs``, each judged by its definition's history rule."""
    metrics = list(metrics or catalogue.columns())
    runs = list(rs.runs["run"])
    keys = ["fingerprint", "framework", "model", "task", "cell_key", "metric", "unit", "direction"]
    m = rs.metrics[rs.metrics["metric"].isin(metrics)]
    m = m.assign(framework=m["label"])  # framework:variant
    ok = m[m["status"] == "ok"]
    values = ok.pivot_table(index=keys, columns="run", values="value", aggfunc="last", dropna=False, sort=False)
    values = values.dropna(how="all").reindex(columns=runs)
    cell_status = rs.cells.merge(rs.runs[["run", "fingerprint"]], on="run")
    status = cell_status.pivot_table(index=["fingerprint", "cell_key"], columns="run", values="status",
                                     aggfunc="last").reindex(columns=runs)
    status_rows = status.reindex(pd.MultiIndex.from_arrays(
        [values.index.get_level_values("fingerprint"), values.index.get_level_values("cell_key")])).fillna("")
    status_rows.index = values.index
    order = {name: i for i, name in enumerate(metrics)}
    values = values.reset_index()
    status_rows = status_rows.reset_index(drop=True)
    values["_m"] = values["metric"].map(order)
    values = values.sort_values(["fingerprint", "model", "task", "_m", "framework"], kind="stable")
    status_rows = status_rows.loc[values.index].reset_index(drop=True)
    values = values.drop(columns="_m").reset_index(drop=True)
    changes = []
    for idx, row in values.iterrows():
        series = row[runs].to_numpy(float)
        present = np.flatnonzero(~np.isnan(series))
        rule = catalogue.definition(row["metric"]).history_rule
        for cp in change_points(series[present], rule, row["direction"], window, k):
            changes.append({**{c: row[c] for c in keys}, "row": idx, "run": runs[present[cp.index]],
                            "change": cp.change, "kind": rule.kind, "better": cp.better, "sustained": cp.sustained})
    changes_df = pd.DataFrame(changes, columns=[*keys, "row", "run", "change", "kind", "better", "sustained"])
    return History(rs.runs, values, status_rows, changes_df, keys, catalogue)
