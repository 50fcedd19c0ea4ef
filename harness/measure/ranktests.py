"""Rank statistics over arrays of timing samples, vectorised so that tens of thousands of
comparisons take about a second: robust spread, the Mann-Whitney U test (also of "the change is
beyond a threshold"), the matching Moses confidence interval of the shift, Benjamini-Hochberg."""

from __future__ import annotations

import math
from functools import lru_cache
from statistics import NormalDist
from typing import Sequence

import numpy as np

_EXACT_MAX_N = 20  # exact Mann-Whitney null distribution up to this many samples a side
_CHUNK = 2_000_000  # pairwise differences held at once


def robust_cv_rows(x: np.ndarray) -> np.ndarray:
    """Spread of each row relative to its median: the larger of 1.4826 MAD / |median| (the records'
    ``robust_cv``) and IQR / (1.349 |median|). Both estimate the CV of normal data; the MAD
    ignores up to half the samples, the IQR only a quarter, so taking the larger one also catches
    runs where two of five windows were disturbed. NaN where the median is 0."""
    med = np.median(x, axis=1)
    mad = np.median(np.abs(x - med[:, None]), axis=1)
    q1, q3 = np.percentile(x, [25, 75], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(med != 0, np.fmax(1.4826 * mad, (q3 - q1) / 1.349) / np.abs(med), np.nan)


@lru_cache(maxsize=None)
def _u_null_cdf(n1: int, n2: int) -> np.ndarray:
    """P(U <= u), u = 0..n1*n2, for U = #{(x, y): y > x} with no ties under the null."""
    # f(i, j)(u) = f(i-1, j)(u) + f(i, j-1)(u - i): the largest value is an x (adds 0) or a y (adds i)
    prev = [np.ones(1) for _ in range(n2 + 1)]  # i = 0
    for i in range(1, n1 + 1):
        cur = [np.ones(1)]
        for j in range(1, n2 + 1):
            a = np.zeros(i * j + 1)
            a[: prev[j].size] += prev[j]
            a[i: i + cur[j - 1].size] += cur[j - 1]
            cur.append(a)
        prev = cur
    counts = prev[n2]
    return np.cumsum(counts) / counts.sum()


def _ci_rank(n1: int, n2: int, confidence: float) -> int:
    """k such that the CI of the shift is [D_(k), D_(n1 n2 + 1 - k)] (1-based order statistics of
    the pairwise differences); 0 when the samples are too few for that confidence."""
    half = (1 - confidence) / 2
    if n1 <= _EXACT_MAX_N and n2 <= _EXACT_MAX_N:
        return int(np.count_nonzero(_u_null_cdf(n1, n2) <= half + 1e-12))
    z = NormalDist().inv_cdf(1 - half)
    return max(0, int(math.floor(n1 * n2 / 2 - z * math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12))))


_erfc = np.frompyfunc(math.erfc, 1, 1)


def _tie_terms(pooled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: whether any values tie, and sum(t^3 - t) over its groups of tied values."""
    t, n = pooled.shape
    s = np.sort(pooled, axis=1)
    starts = np.ones((t, n), bool)
    starts[:, 1:] = s[:, 1:] != s[:, :-1]  # where a run of equal values begins
    first = np.flatnonzero(starts.ravel())  # every row starts a run, so runs never cross rows
    length = np.diff(np.append(first, t * n)).astype(float)
    term = np.bincount(first // n, weights=length ** 3 - length, minlength=t)
    return term > 0, term


def _one_sided_p(u: np.ndarray, n1: int, n2: int, exact: np.ndarray, tie_term: np.ndarray) -> np.ndarray:
    """P(U >= u) under the null, for each row's statistic ``u``."""
    m = n1 * n2
    p = np.empty(u.shape)
    if exact.any():
        cdf = _u_null_cdf(n1, n2)
        ue = np.clip(np.ceil(u[exact] - 1e-9).astype(int), 0, m)  # U >= u: complement of U <= m - u
        p[exact] = cdf[m - ue]
    if (~exact).any():
        n = n1 + n2
        var = n1 * n2 / 12 * ((n + 1) - tie_term[~exact] / (n * (n - 1)))
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (u[~exact] - m / 2 - 0.5) / np.sqrt(var)
        p[~exact] = np.where(var > 0, 0.5 * _erfc(z / math.sqrt(2)).astype(float), 1.0)
    return np.minimum(p, 1.0)


def mann_whitney_rows(x: np.ndarray, y: np.ndarray, confidence: float = 0.95, relative: bool = True,
                      up: float = 0.0, down: float = 0.0) -> dict[str, np.ndarray]:
    """Mann-Whitney tests and the CI of the change from ``x`` to ``y``, for rows of equal length.

    ``x``: (T, n1) baseline samples, ``y``: (T, n2) candidate samples. With ``relative`` the change
    is ``y / x - 1`` (computed on log values, so the shift is a ratio); otherwise ``y - x``. Rows
    with a non-positive value fall back to differences scaled by the baseline median.

    Returns ``p_up``: one-sided p-value of "the change is above ``up``" (H0: it is at most
    ``up``), ``p_down``: of "the change is below ``down``", and ``ci_low``/``ci_high``: the
    distribution-free (Moses) CI of the change. With ``up = down = 0`` these are the classical
    one-sided tests, and ``2 * min(p_up, p_down)`` is the two-sided Mann-Whitney p-value (exact for
    up to 20 samples a side without ties; else normal with tie and continuity correction)."""
    t, n1 = x.shape
    n2 = y.shape[1]
    m = n1 * n2
    k = _ci_rank(n1, n2, confidence)
    use_log = (x > 0).all(axis=1) & (y > 0).all(axis=1) if relative else np.zeros(t, bool)
    base = np.abs(np.median(x, axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        xt = np.where(use_log[:, None], np.log(np.where(x > 0, x, 1.0)), x)
        yt = np.where(use_log[:, None], np.log(np.where(y > 0, y, 1.0)), y)
        scale = base if relative else np.ones(t)  # linear rows of a relative rule: fractions of the baseline
        up_t = np.where(use_log, np.log1p(up), up * scale)
        down_t = np.where(use_log, np.log1p(down) if down > -1 else -np.inf, down * scale)
    u_up, u_down = np.empty(t), np.empty(t)
    lo, hi = np.full(t, np.nan), np.full(t, np.nan)
    step = max(1, _CHUNK // max(m, 1))
    for start in range(0, t, step):
        sl = slice(start, start + step)
        d = (yt[sl, None, :] - xt[sl, :, None]).reshape(-1, m)
        a, b = up_t[sl, None], down_t[sl, None]
        u_up[sl] = np.count_nonzero(d > a, axis=1)
        u_down[sl] = np.count_nonzero(d < b, axis=1)
        if up == 0:  # a tie with a shifted value is next to impossible; with an unshifted one it is common
            u_up[sl] += 0.5 * np.count_nonzero(d == a, axis=1)
        if down == 0:
            u_down[sl] += 0.5 * np.count_nonzero(d == b, axis=1)
        if k > 0:
            part = np.partition(d, (k - 1, m - k), axis=1)
            lo[sl], hi[sl] = part[:, k - 1], part[:, m - k]
    has_tie, tie_term = _tie_terms(np.concatenate([x, y], axis=1))
    exact = ~has_tie & (n1 <= _EXACT_MAX_N) & (n2 <= _EXACT_MAX_N)
    with np.errstate(divide="ignore", invalid="ignore"):
        lo = np.where(use_log, np.expm1(lo), lo / scale)
        hi = np.where(use_log, np.expm1(hi), hi / scale)
    return {"p_up": _one_sided_p(u_up, n1, n2, exact, tie_term),
            "p_down": _one_sided_p(u_down, n1, n2, exact, tie_term), "ci_low": lo, "ci_high": hi}


def mann_whitney(x: Sequence[float], y: Sequence[float], confidence: float = 0.95,
                 relative: bool = True) -> tuple[float, float, float]:
    """Classical two-sided test of ``y`` against ``x``: (p, ci_low, ci_high) of the change."""
    r = mann_whitney_rows(np.asarray([x], float), np.asarray([y], float), confidence, relative)
    return float(min(1.0, 2 * min(r["p_up"][0], r["p_down"][0]))), float(r["ci_low"][0]), float(r["ci_high"][0])


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values) of ``p`` (NaN entries stay NaN)."""
    p = np.asarray(p, float)
    q = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    if ok.size:
        order = ok[np.argsort(p[ok], kind="stable")]
        ranked = p[order] * ok.size / np.arange(1, ok.size + 1)
        q[order] = np.minimum(1.0, np.minimum.accumulate(ranked[::-1])[::-1])
    return q


def sample_tests(xs: Sequence[Sequence[float]], ys: Sequence[Sequence[float]], relative: Sequence[bool],
                 thresholds: Sequence[float], confidence: float = 0.95) -> dict[str, np.ndarray]:
    """For many comparisons of any sizes (vectorised by sizes, kind and threshold): ``p_up`` and
    ``p_down`` of "the change is beyond +threshold / -threshold", the CI, and each side's robust CV."""
    t = len(xs)
    out = {k: np.full(t, np.nan) for k in ("p_up", "p_down", "ci_low", "ci_high", "cv_baseline", "cv_candidate")}
    groups: dict[tuple[int, int, bool, float], list[int]] = {}
    for i, (x, y, rel, th) in enumerate(zip(xs, ys, relative, thresholds)):
        groups.setdefault((len(x), len(y), bool(rel), float(th)), []).append(i)
    for (_, _, rel, th), idx in groups.items():
        x = np.asarray([xs[i] for i in idx], float)
        y = np.asarray([ys[i] for i in idx], float)
        r = mann_whitney_rows(x, y, confidence, rel, up=th, down=-th)
        ix = np.asarray(idx)
        for key, v in r.items():
            out[key][ix] = v
        out["cv_baseline"][ix], out["cv_candidate"][ix] = robust_cv_rows(x), robust_cv_rows(y)
    return out
