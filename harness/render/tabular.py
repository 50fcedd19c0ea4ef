"""The data formats: the long metrics frame as CSV or Parquet (``zoo report``), the verdicts as
JSON or CSV (``zoo compare``), the series as CSV (``zoo history``)."""

from __future__ import annotations

import io
import json
import math
from typing import Any

import pandas as pd


def _metrics_frame(view) -> pd.DataFrame:
    return view.results.metrics.drop(columns=["run_order"])


def report_csv(view) -> str:
    frame = _metrics_frame(view).copy()
    frame["samples"] = [json.dumps(list(map(float, s))) for s in frame["samples"]]  # a JSON list per row
    return frame.to_csv(index=False)


def report_parquet(view) -> bytes:
    try:
        import pyarrow  # noqa: F401  (pandas needs it for Parquet)
    except ImportError:
        raise ValueError("writing Parquet needs pyarrow: pip install 'zoo-bench[parquet]' "
                         "(or use --format csv)") from None
    buffer = io.BytesIO()
    _metrics_frame(view).to_parquet(buffer, index=False)
    return buffer.getvalue()


def compare_csv(view) -> str:
    return view.comparison.rows.to_csv(index=False)


def compare_json(view) -> str:
    cmp = view.comparison
    doc = {"baseline": _run_info(cmp.baseline), "candidate": _run_info(cmp.candidate),
           "settings": {"alpha": cmp.settings.alpha, "max_cv": cmp.settings.max_cv,
                        "confidence": cmp.settings.confidence, "fail_on": list(view.fail_on)},
           "counts": cmp.counts(), "failures": len(view.failures), "warnings": cmp.warnings,
           "rows": [{k: _clean(v) for k, v in r.items()} for r in view.rows.to_dict("records")]}
    return json.dumps(doc, indent=2) + "\n"


def history_csv(view) -> str:
    h = view.history
    return h.values.merge(h.changes.groupby("row").size().rename("change_points"), left_index=True,
                          right_index=True, how="left").fillna({"change_points": 0}).to_csv(index=False)


def _run_info(run: dict) -> dict:
    keys = ("run", "path", "started_at", "trigger", "commit", "dirty", "fingerprint", "cpu_model")
    return {k: _clean(run.get(k)) for k in keys}


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if hasattr(v, "item"):
        return v.item()
    return v
