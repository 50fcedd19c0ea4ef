"""One cell measured in several worker processes (``zoo bench --repeats R``), merged into the
one record the results store keeps for the cell.

Why processes and not more windows: on a shared machine, and even on a quiet one, a process has
its own luck (memory layout, which cores its threads landed on, what the rest of the machine did
in those seconds). Windows inside one process agree with each other more than with the next
run's, so a CI computed from one process is too narrow to predict the next run. Pooling the
windows of R processes and bootstrapping processes first (:func:`harness.measure.stats.summarize_groups`)
gives an interval that back-to-back runs can be held to.

How each metric is merged is its definition's ``merge`` in the metric catalogue
(:mod:`harness.results.metrics`; an unknown metric merges by ``"auto"``):

* ``pooled`` (metrics with raw samples: throughput windows, batch-1 latencies): all samples pooled,
  value and spread from :func:`~harness.measure.stats.summarize_groups`, plus
  ``spread["within_cv"]``, the median of the processes' own robust CVs (window-to-window noise
  inside a process, where the pooled ``robust_cv`` also holds the spread between processes);
* ``percentile`` (``latency_p90_ms``, ``latency_p99_ms``): recomputed over the pooled samples of
  the metric they derive from;
* ``scaled`` (``train_gflops``, ``train_utilisation``): the merged training throughput times the
  per-sample constant (the same in every repeat);
* ``median`` (accuracy, compile time, wall times, memory): the median over repeats, with the
  per-repeat values as its samples, so it gets a spread and a CI too; ``first``: a curve (the
  accuracy per epoch) is the first repeat's.

A repeat that fails makes the cell failed (with that repeat's error, named); the metrics of the
repeats that finished are kept in the record, as a failing phase keeps what was measured before it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from harness.measure.stats import percentile, summarize_groups
from harness.results.metrics import BUILTIN, Catalogue
from harness.results.records import CellRecord, ErrorInfo, Metric


def merge_repeats(records: Sequence[CellRecord], planned: int | None = None,
                  catalogue: Catalogue = BUILTIN) -> CellRecord:
    """The cell's record from the records of its repeats (in the order they ran); ``planned`` is
    how many were asked for (more than ran when one failed: the rest were not started);
    ``catalogue`` says how each metric merges."""
    if not records:
        raise ValueError("no repeats to merge")
    planned = planned or len(records)
    if planned == 1:
        return records[0]
    ok = [r for r in records if r.status == "ok"]
    first_bad = next((i for i, r in enumerate(records) if r.status != "ok"), None)
    metrics = _merge_metrics(ok or [records[first_bad]], catalogue)
    base = ok[0] if ok else records[0]
    error = None
    status = "ok"
    if first_bad is not None:
        bad = records[first_bad]
        status = bad.status
        if bad.error is not None:
            error = replace(bad.error, message=f"repeat {first_bad + 1} of {planned}: {bad.error.message}")
        else:
            error = ErrorInfo("worker", "RepeatFailed", f"repeat {first_bad + 1} of {planned} ended {bad.status}")
    per_repeat = {name: [r.metrics[name].value if name in r.metrics else None for r in records]
                  for name in sorted({n for r in records for n in r.metrics})}
    environment = {
        **base.environment,
        "repeats": {
            "count": len(records),
            "planned": planned,
            "statuses": [r.status for r in records],
            "durations_s": [r.duration_s for r in records],
            "values": per_repeat,  # each metric's headline value in each repeat (None: not measured)
        },
    }
    return replace(base, status=status, metrics=metrics, error=error, environment=environment,
                   started_at=records[0].started_at, duration_s=sum(r.duration_s for r in records))


def _merge_metrics(records: Sequence[CellRecord], catalogue: Catalogue) -> dict[str, Metric]:
    names = [n for n in records[0].metrics]
    names += sorted({n for r in records[1:] for n in r.metrics} - set(names))
    out: dict[str, Metric] = {}
    derived = {"percentile": [], "scaled": []}  # merged after the metrics they derive from
    for name in names:
        d = catalogue.definition(name)
        found = [r.metrics[name] for r in records if name in r.metrics]
        how = d.merge
        if how == "auto":
            how = "first" if found[0].direction == "info" and found[0].samples else "pooled"
        if how in derived:
            derived[how].append((name, d, found))
        elif how == "first":
            out[name] = found[0]  # a curve (accuracy per epoch), not repeated measurements: the first repeat's
        elif how == "pooled" and len(found[0].samples) > 1:
            out[name] = _pooled(found)
        else:
            out[name] = _per_repeat(found)
    for name, d, found in derived["percentile"]:
        pooled = [s for r in records if d.merge_of in r.metrics for s in r.metrics[d.merge_of].samples]
        out[name] = (Metric(percentile(pooled, d.merge_q), found[0].unit, found[0].direction) if pooled
                     else _per_repeat(found))
    for name, d, found in derived["scaled"]:
        base = d.merge_of
        pairs = [(r.metrics[name].value, r.metrics[base].value) for r in records
                 if name in r.metrics and base in r.metrics and r.metrics[base].value > 0]
        if pairs and base in out:
            per_unit = float(np.median([v / t for v, t in pairs]))
            out[name] = Metric(out[base].value * per_unit, found[0].unit, found[0].direction)
    return out


def _pooled(found: Sequence[Metric]) -> Metric:
    groups = [m.samples for m in found if m.samples]
    s = summarize_groups(groups)
    first = found[0]
    # The window-to-window noise inside a process (the precision of one process's measurement),
    # beside the pooled CV, which also holds the process-to-process spread.
    within = [m.spread["robust_cv"] for m in found if m.samples and "robust_cv" in m.spread]
    return Metric(s.median, first.unit, first.direction, tuple(v for g in groups for v in g),
                  {"iqr": s.iqr, "robust_cv": s.robust_cv, "ci_low": s.ci_low, "ci_high": s.ci_high, "n": s.n,
                   "groups": len(groups), "within_cv": float(np.median(within)) if within else float("nan")})


def _per_repeat(found: Sequence[Metric]) -> Metric:
    return Metric.from_samples([m.value for m in found], found[0].unit, found[0].direction)
