"""Exports that existing benchmark tools read, from one stored run:

* :func:`to_pytest_benchmark`: pytest-benchmark's ``--benchmark-json`` layout, so
  ``pytest-benchmark compare`` and github-action-benchmark's ``tool: pytest`` can read it. Each
  metric with a ``timing`` in the metric catalogue and raw samples becomes one benchmark whose
  rounds are seconds per operation (per sample for throughputs, per call for latency).
* :func:`to_github_action_benchmark`: the two "custom" files of github-action-benchmark,
  ``customBiggerIsBetter`` and ``customSmallerIsBetter`` (lists of ``{name, unit, value, range,
  extra}``), of the catalogue's default columns.
* :func:`to_bencher`: Bencher Metric Format (``{benchmark: {measure: {value, lower_value,
  upper_value}}}``), one benchmark per cell, one measure per metric (slug: the metric name in
  kebab case), the interval being the record's bootstrap CI.

Every number is finite (tools reject NaN); failed and skipped cells are left out.
"""

from __future__ import annotations

import json
import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

from harness.results.loader import ResultSet
from harness.results.metrics import BUILTIN, Catalogue

PYTEST_BENCHMARK_VERSION = "5.1.0"  # the JSON layout written here


def _one_run(rs: ResultSet) -> dict[str, Any]:
    if len(rs.runs) != 1:
        raise ValueError(f"an export is of one run, got {len(rs.runs)}: {', '.join(rs.runs['run'])}")
    return rs.runs.iloc[0].to_dict()


def _ok(rs: ResultSet, metrics: Sequence[str]) -> pd.DataFrame:
    m = rs.metrics
    return m[(m["status"] == "ok") & m["metric"].isin(list(metrics)) & np.isfinite(m["value"].astype(float))]


def _finite(v: Any) -> float | None:
    return float(v) if v is not None and isinstance(v, (int, float)) and math.isfinite(v) else None


def _stats(data: np.ndarray) -> dict[str, Any]:
    """pytest-benchmark's statistics of one benchmark's rounds (seconds)."""
    mean = float(data.mean())
    stddev = float(data.std(ddof=1)) if data.size > 1 else 0.0
    q1, q3 = (float(v) for v in np.percentile(data, [25, 75]))
    iqr = q3 - q1
    inside = data[(data >= q1 - 1.5 * iqr) & (data <= q3 + 1.5 * iqr)]
    iqr_out = int(data.size - inside.size)
    sd_out = int(np.count_nonzero((data < mean - stddev) | (data > mean + stddev)))
    return {"min": float(data.min()), "max": float(data.max()), "mean": mean, "stddev": stddev,
            "rounds": int(data.size), "median": float(np.median(data)), "iqr": iqr, "q1": q1, "q3": q3,
            "iqr_outliers": iqr_out, "stddev_outliers": sd_out, "outliers": f"{sd_out};{iqr_out}",
            "ld15iqr": float(inside.min()), "hd15iqr": float(inside.max()), "ops": 1.0 / mean if mean else 0.0,
            "total": float(data.sum()), "data": [float(v) for v in data], "iterations": 1}


def to_pytest_benchmark(rs: ResultSet, catalogue: Catalogue = BUILTIN) -> dict[str, Any]:
    run = _one_run(rs)
    timings = catalogue.timings()
    benchmarks = []
    for r in _ok(rs, list(timings)).itertuples(index=False):
        samples = np.asarray(r.samples, float)
        if samples.size == 0 or not np.all(np.isfinite(samples)) or np.any(samples <= 0):
            continue
        timing, title = timings[r.metric], catalogue.definition(r.metric).title
        params = {"framework": r.framework, "variant": r.variant, "model": r.model, "task": r.task, "device": r.device,
                  "precision": r.precision, "batch_size": int(r.batch_size), "freeze": r.freeze, "init": r.init}
        benchmarks.append({
            "group": title, "name": f"{r.metric}[{r.cell_key}]", "fullname": f"zoo::{r.metric}[{r.cell_key}]",
            "params": params, "param": r.cell_key,
            "extra_info": {"unit": timing.unit, "zoo_metric": r.metric, "zoo_value": float(r.value), "zoo_unit": r.unit,
                           "run_id": run["run_id"], "machine_fingerprint": run["fingerprint"],
                           "framework_version": r.framework_version},
            "options": {"disable_gc": False, "timer": "perf_counter", "min_rounds": int(samples.size),
                        "max_time": 0.0, "min_time": 0.0, "warmup": True},
            "stats": _stats(timing.seconds(samples)),
        })
    started = run["started_at"]
    return {
        "machine_info": {"node": run.get("hostname") or "", "processor": run["cpu_model"], "machine": run.get("arch") or "",
                         "python_implementation": "CPython", "python_version": run.get("python") or "",
                         "system": run.get("system") or "", "release": "",
                         "cpu": {"brand_raw": run["cpu_model"], "count": run["logical_cpus"]},
                         "zoo_fingerprint": run["fingerprint"]},
        "commit_info": {"id": run["commit"] or "unversioned", "time": None, "author_time": None,
                        "dirty": bool(run["dirty"]) if run["dirty"] is not None else False,
                        "project": "zoo-bench", "branch": None},
        "benchmarks": benchmarks,
        "datetime": started.isoformat() if hasattr(started, "isoformat") else str(started or ""),
        "version": PYTEST_BENCHMARK_VERSION,
    }


def to_github_action_benchmark(rs: ResultSet, metrics: Sequence[str] | None = None,
                               catalogue: Catalogue = BUILTIN) -> tuple[list, list]:
    """``(bigger_is_better, smaller_is_better)`` entry lists of ``metrics`` (default: the catalogue's
    default columns)."""
    run = _one_run(rs)
    metrics = catalogue.columns() if metrics is None else metrics
    bigger, smaller = [], []
    for r in _ok(rs, metrics).itertuples(index=False):
        if r.direction not in ("higher", "lower"):
            continue
        entry = {"name": f"{r.cell_key} {r.metric}", "unit": r.unit or "1", "value": float(r.value)}
        cv = _finite(r.robust_cv)
        if cv is not None:
            entry["range"] = f"± {100 * cv:.1f}%"
        title = catalogue.definition(r.metric).title
        entry["extra"] = f"{title}; n={r.n}; run {run['run_id']}; {r.framework_version}".strip()
        (bigger if r.direction == "higher" else smaller).append(entry)
    return bigger, smaller


def to_bencher(rs: ResultSet, metrics: Sequence[str] | None = None,
               catalogue: Catalogue = BUILTIN) -> dict[str, dict[str, dict[str, float]]]:
    _one_run(rs)
    metrics = catalogue.columns() if metrics is None else metrics
    out: dict[str, dict[str, dict[str, float]]] = {}
    for r in _ok(rs, metrics).itertuples(index=False):
        measure = {"value": float(r.value)}
        lo, hi = _finite(r.ci_low), _finite(r.ci_high)
        if lo is not None and hi is not None and lo <= r.value <= hi:
            measure["lower_value"], measure["upper_value"] = lo, hi
        out.setdefault(r.cell_key, {})[r.metric.replace("_", "-")] = measure
    return out


# --- the export renderers (harness.render.registry)


def _json(doc: Any) -> str:
    return json.dumps(doc, indent=2, allow_nan=False) + "\n"


def render_pytest_benchmark(view) -> str:
    return _json(to_pytest_benchmark(view.results, view.catalogue))


def render_github_action_benchmark(view) -> dict[str, str]:
    bigger, smaller = to_github_action_benchmark(view.results, catalogue=view.catalogue)
    return {"bigger_is_better.json": _json(bigger), "smaller_is_better.json": _json(smaller)}


def render_bencher(view) -> str:
    return _json(to_bencher(view.results, catalogue=view.catalogue))
