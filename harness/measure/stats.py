"""Robust statistics for timing samples: median, IQR, robust CV, bootstrap CI, percentiles."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Summary:
    median: float
    iqr: float
    robust_cv: float  # 1.4826 * MAD / median: the CV a normal distribution would give
    ci_low: float
    ci_high: float
    n: int


def _spread(x: np.ndarray) -> tuple[float, float, float]:
    """Median, IQR and robust CV (1.4826 * MAD / median) of a non-empty float64 array."""
    med = float(np.median(x))
    q1, q3 = np.percentile(x, [25, 75])
    mad = float(np.median(np.abs(x - med)))
    return med, float(q3 - q1), 1.4826 * mad / med if med else float("nan")


def _interval(boots: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(boots, [alpha, 1 - alpha])
    return float(lo), float(hi)


def summarize(samples: Sequence[float], confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> Summary:
    """Summary of ``samples`` with a percentile-bootstrap CI of the median (seeded, so the same
    samples always give the same interval)."""
    x = np.asarray(samples, dtype=np.float64)
    if x.size == 0:
        raise ValueError("no samples to summarise")
    med, iqr, robust_cv = _spread(x)
    if x.size > 1:
        rng = np.random.default_rng(seed)
        lo, hi = _interval(np.median(rng.choice(x, size=(resamples, x.size), replace=True), axis=1), confidence)
    else:
        lo = hi = med
    return Summary(med, iqr, robust_cv, lo, hi, int(x.size))


def summarize_groups(groups: Sequence[Sequence[float]], confidence: float = 0.95, resamples: int = 2000,
                     seed: int = 0) -> Summary:
    """Summary of samples that come in groups (the timing windows of several worker processes of
    one cell): median, IQR and robust CV of all samples pooled, and a *two-level* bootstrap CI of
    the median that resamples the groups, then the samples inside each chosen group.

    Windows of one process share that process's luck (memory layout, thread placement, what the
    machine was doing in those seconds), so a CI over pooled windows as if they were independent
    would be too narrow to predict the next run; resampling whole groups first carries the
    process-to-process spread into the interval. One group gives :func:`summarize`."""
    arrays = [np.asarray(g, dtype=np.float64) for g in groups if len(g)]
    if len(arrays) <= 1:
        return summarize(arrays[0] if arrays else [], confidence, resamples, seed)
    pooled = np.concatenate(arrays)
    med, iqr, robust_cv = _spread(pooled)
    rng = np.random.default_rng(seed)
    boots = np.empty(resamples)
    for b in range(resamples):
        chosen = rng.integers(len(arrays), size=len(arrays))
        boots[b] = np.median(np.concatenate([rng.choice(arrays[g], size=arrays[g].size) for g in chosen]))
    lo, hi = _interval(boots, confidence)
    return Summary(med, iqr, robust_cv, lo, hi, int(pooled.size))


def percentile(samples: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples, dtype=np.float64), q))
