"""The warm-up before the timing windows never exceeds ``--warmup-cap``, however short a step
is (a 50 us step used to get a whole 1,000-step window of warm-up with the default cap of 50)."""

from __future__ import annotations

import time

import pytest

from harness.measure.meter import StepMeter
from harness.plan.cells import Settings
from harness.worker.phases import _throughput


def _busy_steps(step_s: float, counter: list[int]):
    def run(steps: int, meter: StepMeter) -> None:
        counter.append(steps)
        for _ in range(steps):
            with meter.step(1):
                end = time.perf_counter() + step_s
                while time.perf_counter() < end:
                    pass
    return run


@pytest.mark.parametrize("cap", [1, 7, 50])
def test_short_steps_get_at_most_the_cap_of_warmup(cap: int) -> None:
    counter: list[int] = []
    settings = Settings(windows=2, warmup_cap=cap)
    metric, details = _throughput(_busy_steps(50e-6, counter), 50e-6, settings, "inference")
    k = details["window_steps"]
    assert k >= 1000  # a 50 ms window of 50 us steps
    assert details["warmup_steps"] <= cap
    assert counter == [min(cap, 40000) + 2 * k]  # the cap's steps, then exactly the windows
    assert details["windows"] == 2 and metric.value > 0


def test_long_steps_warm_up_in_whole_windows_and_detect_the_steady_point() -> None:
    counter: list[int] = []
    settings = Settings(windows=3, warmup_cap=20, window_steps=5)
    _, details = _throughput(_busy_steps(1e-3, counter), 1e-3, settings, "training")
    assert counter == [20 + 3 * 5]  # four warm-up windows of five steps, then three measured
    assert details["warmup_steps"] % 5 == 0 and details["warmup_steps"] <= 20
    assert details["windows"] == 3


def test_windows_start_on_a_synchronised_step_after_a_partial_warmup() -> None:
    meter = StepMeter(sync_every=4, sync_offset=3)
    synced = [i for i in range(11) if meter.wants_sync(i)]
    assert synced == [0, 2, 6, 10]  # the warm-up's last step, then every window's last


def test_the_inference_probe_works_with_fewer_than_three_batches():
    """A test set of one batch (e.g. --batch-size 512 on a small task) used to fail every cell."""
    import numpy as np

    from harness.worker.phases import inference_throughput
    from zoo.models import builtin_model

    spec = builtin_model("mlp")

    class Reference:
        def evaluate(self, model, data, meter):
            out = []
            for x in data.batches():
                with meter.step(len(x)):
                    out.append(spec.reference_forward(model, x).astype(np.float32))
            return np.concatenate(out)

    from zoo.init import init_weights

    weights = init_weights(spec, (8, 8, 1), 10, seed=0)
    x = np.random.default_rng(0).random((40, 8, 8, 1), dtype=np.float32)
    metric, details = inference_throughput(Reference(), weights, x, 64, 10, Settings(windows=2, warmup_cap=5))
    assert metric.value > 0 and details["windows"] == 2
