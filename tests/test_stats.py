import numpy as np
import pytest

from harness.meter import StepMeter, warmup_steps, window_throughputs
from harness.stats import summarize


def test_summary_of_known_samples():
    s = summarize([10.0, 11.0, 9.0, 10.0, 10.0])
    assert s.median == 10.0 and s.iqr == 0.0 and s.n == 5
    assert s.robust_cv == 0.0
    assert s.ci_low <= 10.0 <= s.ci_high


def test_robust_cv_ignores_one_outlier_and_ci_is_reproducible():
    rng = np.random.default_rng(0)
    x = list(100 + rng.normal(0, 2, 50)) + [1000.0]
    s = summarize(x)
    assert 0.01 < s.robust_cv < 0.04
    assert summarize(x) == s


def test_empty_samples_are_an_error():
    with pytest.raises(ValueError):
        summarize([])


def test_windows_skip_warmup_and_cover_the_rest():
    m = StepMeter(durations_s=[5.0] + [0.5] * 20, samples=[10] * 21)
    skip = warmup_steps(21)
    assert skip == 2
    rates = window_throughputs(m, 5, skip)
    assert rates == pytest.approx([20.0] * 5)
