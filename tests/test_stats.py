import numpy as np
import pytest

from harness.measure.meter import StepMeter, steady_start, steps_for_window, window_throughputs
from harness.measure.stats import summarize


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


def meter_from(durations, samples=10, gap=0.0):
    m, t = StepMeter(), 0.0
    for d in durations:
        m.starts.append(t)
        m.ends.append(t + d)
        m.samples.append(samples)
        t += d + gap
    return m


def test_steady_start_skips_compile_and_settling_steps():
    durations = [5.0, 1.2, 0.8] + [0.5] * 40
    assert steady_start(durations, cap=20) == 3
    assert steady_start([0.5] * 10, cap=5) == 1  # the first step is always warm-up
    assert steady_start([5.0] * 3 + [0.5] * 40, cap=2) == 2  # the cap wins


def test_windows_count_wall_time_between_steps():
    m = meter_from([0.5] * 20, samples=10, gap=0.5)
    rates = window_throughputs(m, 4, skip=0, steps_per_window=5)
    # 5 steps of 0.5 s with 0.5 s between them: 50 samples in 4.5 s
    assert rates == pytest.approx([50 / 4.5] * 4)


def test_incomplete_windows_are_not_reported():
    m = meter_from([0.1] * 12)
    assert len(window_throughputs(m, 5, skip=2, steps_per_window=3)) == 3


def test_window_length_reaches_the_minimum_duration():
    assert steps_for_window(0.001) == 50 and steps_for_window(1.0) == 5


def test_end_epoch_pauses_the_training_clock():
    import time

    m = StepMeter(on_epoch_end=lambda model: time.sleep(0.05))
    m.end_epoch(None)
    m.end_epoch(None)
    assert m.paused_s >= 0.1 and m.epoch_ends[1] - m.epoch_ends[0] < 0.05


def test_meter_asks_for_sync_at_window_ends_only():
    m = StepMeter(sync_every=5)
    flags = []
    for _ in range(12):
        with m.step(1) as sync:
            flags.append(sync)
    assert [i for i, f in enumerate(flags) if f] == [0, 4, 9]
    every = StepMeter()
    for _ in range(3):
        with every.step(1) as sync:
            assert sync


def test_gc_is_paused_while_timing_and_restored_even_after_an_error():
    import gc

    from harness.worker.phases import gc_paused

    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError):
        with gc_paused():
            raise RuntimeError("adapter failed mid-window")
    assert gc.isenabled()
    gc.disable()  # a host that runs with the collector off keeps it off
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
