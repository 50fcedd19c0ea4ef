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


def summarize(samples: Sequence[float], confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> Summary:
    """Summary of ``samples`` with a percentile-bootstrap CI of the median (seeded, so the same
    samples always give the same interval)."""
    x = np.asarray(samples, dtype=np.float64)
    if x.size == 0:
        raise ValueError("no samples to summarise")
    med = float(np.median(x))
    q1, q3 = np.percentile(x, [25, 75])
    mad = float(np.median(np.abs(x - med)))
    robust_cv = 1.4826 * mad / med if med else float("nan")
    if x.size > 1:
        rng = np.random.default_rng(seed)
        boots = np.median(rng.choice(x, size=(resamples, x.size), replace=True), axis=1)
        alpha = (1 - confidence) / 2
        lo, hi = np.quantile(boots, [alpha, 1 - alpha])
    else:
        lo = hi = med
    return Summary(med, float(q3 - q1), robust_cv, float(lo), float(hi), int(x.size))


def percentile(samples: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples, dtype=np.float64), q))
