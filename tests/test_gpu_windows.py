"""Timing windows sized by time on a GPU (#17 defect 5), checked on CPU.

A GPU window used to be sized like a CPU one (50 ms / 5 steps), far too short when each window
starts with an empty queue. The sizing rules are pure functions of the step time; the phase runs
use an in-process adapter on a *queued fake device*: work launched on it runs one item after
another while the host goes on, and a synchronisation waits for the queue to drain, as a CUDA
stream does. Its synchronised steps are longer than its pipelined ones, so windows sized from the
synchronised probe alone come out short; the GPU rule must still give windows of at least 1 s.
No GPU is needed: nothing here touches one.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from harness.measure.meter import (
    CPU_RULE,
    GPU_MIN_WINDOW_S,
    GPU_RULE,
    MIN_WINDOW_S,
    StepMeter,
    WindowRule,
    steps_for_window,
    window_durations,
    window_rule,
)
from harness.plan.cells import Settings
from harness.worker.phases import inference_throughput, train_throughput, warmup_cap
from zoo.batching import train_order
from zoo.contract import FineTuneConfig, FineTuneResult, TrainData

STEP_TIMES = [50e-6, 1e-3, 4e-3, 0.02, 0.3, 2.0]


# --- the rules, as pure functions of the step time


@pytest.mark.parametrize("step_s", STEP_TIMES)
def test_a_gpu_window_lasts_at_least_a_second_and_five_steps(step_s: float) -> None:
    k = steps_for_window(step_s, device="gpu")
    assert k == window_rule("gpu").steps(step_s)
    assert k >= 5
    assert k * step_s >= GPU_MIN_WINDOW_S * 1.1 - 1e-12  # 10 % to spare for a step faster than its estimate
    # the empty queue at the window's start (at most GPU_QUEUE_FILL_S, at most one step) is < 1 % of it
    assert min(step_s, GPU_RULE.queue_fill_s) <= 0.01 * k * step_s


@pytest.mark.parametrize("step_s", STEP_TIMES)
def test_the_cpu_window_rule_is_unchanged(step_s: float) -> None:
    expected = max(5, math.ceil(MIN_WINDOW_S / step_s))
    assert steps_for_window(step_s) == expected == steps_for_window(step_s, device="cpu")
    assert CPU_RULE.steps(step_s) == expected
    assert warmup_cap(50, step_s) == int(min(50, max(3, math.ceil(2.0 / step_s))))  # at most the cap, ~2 s


def test_a_gpu_window_is_1000_times_a_cpu_one_for_millisecond_steps() -> None:
    assert steps_for_window(1e-3) == 50  # 50 ms
    assert steps_for_window(1e-3, device="gpu") == 1100  # 1.1 s


def test_a_longer_queue_fill_bound_lengthens_the_window() -> None:
    """The <1 % rule is general: with a 50 ms fill bound, 100 ms steps need 5 s windows."""
    slow_queue = WindowRule("gpu", min_window_s=1.0, queue_fill_s=0.05, max_fill_share=0.01)
    assert slow_queue.window_s(0.1) == pytest.approx(5.0)
    assert slow_queue.steps(0.1) == 50
    assert slow_queue.window_s(0.005) == pytest.approx(1.0)  # the fill is at most one 5 ms step
    assert CPU_RULE.window_s(0.1) == MIN_WINDOW_S  # a synchronous device has no queue to fill


@pytest.mark.parametrize("step_s", STEP_TIMES)
def test_the_gpu_warmup_is_whole_windows_of_at_least_three_seconds(step_s: float) -> None:
    k = steps_for_window(step_s, device="gpu")
    budget = warmup_cap(50, step_s, device="gpu")
    assert budget % k == 0 and budget >= k  # whole windows: the steady point is found among them
    assert budget * step_s >= 3.0 - 1e-9  # seconds of work, not the CPU-sized cap of 50 steps
    assert (budget - k) * step_s < 3.0  # and no more windows than that takes


def test_an_unknown_device_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="known: cpu, gpu"):
        window_rule("tpu")


# --- real phase runs on a queued fake device


WORK_S, SYNC_S = 3e-3, 0.5e-3  # a step's device work; a synchronisation's round trip


class QueuedDevice:
    """Runs launched work in order, one item after another, on the wall clock, while the host
    goes on; a synchronisation waits for the queue to drain plus a round trip. So a synchronised
    step takes ~3.5 ms and a pipelined one 3 ms, however slow the (shared) host is."""

    def __init__(self) -> None:
        self.free_at = 0.0

    def launch(self, work_s: float) -> None:
        self.free_at = max(time.perf_counter(), self.free_at) + work_s

    def synchronize(self) -> None:
        time.sleep(max(0.0, self.free_at - time.perf_counter()) + SYNC_S)


class QueuedAdapter:
    """An adapter whose steps launch 3 ms of work on a :class:`QueuedDevice` and synchronise only
    when the meter asks. Keeps every call's meter."""

    contract_version = 2
    can_train = True

    def __init__(self) -> None:
        self.device = QueuedDevice()
        self.meters: list[StepMeter] = []

    def _step(self, meter: StepMeter, samples: int) -> None:
        with meter.step(samples) as sync:
            self.device.launch(WORK_S)
            if sync is not False:
                self.device.synchronize()

    def evaluate(self, model, data, meter):
        self.meters.append(meter)
        for _ in data.order:
            self._step(meter, data.batch_size)
        return np.zeros((len(data.order) * data.batch_size, 3), dtype=np.float32)

    def fine_tune(self, model, data, config, meter):
        self.meters.append(meter)
        for epoch in data.order:
            for idx in epoch:
                self._step(meter, len(idx))
            meter.end_epoch(model)
        return FineTuneResult(model, [0.0] * data.num_steps)


X = np.zeros((64, 4, 4, 1), dtype=np.float32)


def _windows_of_last_call(adapter: QueuedAdapter, details: dict) -> list[float]:
    meter = adapter.meters[-1]  # the windows' call
    k, warm = details["window_steps"], details["window_rule"]["warmup_budget_steps"]
    pre = warm % k
    return window_durations(meter, k, start=pre)


def test_gpu_inference_windows_last_at_least_a_second_though_synchronised_steps_overstate_them() -> None:
    adapter = QueuedAdapter()
    _, details = inference_throughput(adapter, None, X, 8, 3, Settings(windows=2), device="gpu")
    rule = details["window_rule"]
    assert rule["device"] == "gpu" and rule["window_s_target"] == GPU_MIN_WINDOW_S
    assert "empty queue" in rule["why"]
    # the probe's synchronised steps say ~3.5 ms; the pipelined sizing window says ~3 ms
    assert rule["step_s_pipelined"] < rule["step_s_probe"]
    assert rule["step_s_used"] == rule["step_s_pipelined"]
    # windows sized from the probe alone would have been short: k steps of 3 ms pipelined
    assert steps_for_window(rule["step_s_probe"], device="gpu") * WORK_S < GPU_MIN_WINDOW_S
    windows = _windows_of_last_call(adapter, details)
    assert len(windows) >= 2 + 3  # three warm-up windows, then the two measured
    assert min(windows) >= GPU_MIN_WINDOW_S, windows
    assert rule["window_s_measured_min"] >= GPU_MIN_WINDOW_S
    assert rule["warmup_budget_steps"] % details["window_steps"] == 0
    assert rule["warmup_budget_steps"] * WORK_S >= 3.0 - 0.05


def test_cpu_inference_windows_keep_the_50_ms_rule() -> None:
    adapter = QueuedAdapter()
    _, details = inference_throughput(adapter, None, X, 8, 3, Settings(windows=2, warmup_cap=10))
    rule = details["window_rule"]
    assert rule["device"] == "cpu" and "step_s_pipelined" not in rule  # no sizing pass on a CPU
    assert details["window_steps"] == steps_for_window(rule["step_s_probe"])  # ~15 steps of 3.5 ms
    assert rule["warmup_budget_steps"] <= 10  # the cap holds
    windows = _windows_of_last_call(adapter, details)
    assert min(windows) >= details["window_steps"] * WORK_S  # K steps of device work
    assert float(np.median(windows)) < 0.5 * GPU_MIN_WINDOW_S  # ~50 ms, not 1 s
    assert len(adapter.meters) == 2  # the probe and the windows' call


def test_gpu_training_windows_last_at_least_a_second() -> None:
    adapter = QueuedAdapter()
    y = np.zeros(len(X), dtype=np.int64)
    recipe = TrainData(X, y, train_order(len(y), 8, 1, 0))
    _, value, details = train_throughput(adapter, None, recipe, FineTuneConfig(), WORK_S + SYNC_S,
                                         Settings(windows=2), device="gpu")
    assert value.value > 0
    assert details["window_rule"]["device"] == "gpu"
    assert len(adapter.meters) == 2  # the sizing call, then the windows' call
    assert min(_windows_of_last_call(adapter, details)) >= GPU_MIN_WINDOW_S


def test_window_steps_given_by_the_user_are_kept_on_a_gpu() -> None:
    adapter = QueuedAdapter()
    _, details = inference_throughput(adapter, None, X, 8, 3, Settings(windows=2, window_steps=40), device="gpu")
    assert details["window_steps"] == 40
    assert details["window_rule"]["window_steps_from"] == "--window-steps"
    assert len(adapter.meters) == 2  # no sizing pass: the user chose the window


# --- on a real GPU (skipped where there is none)


def _nvidia_gpus() -> bool:
    from harness.measure import gpu_info

    return bool(gpu_info.query_gpus())


@pytest.mark.slow
@pytest.mark.skipif(not _nvidia_gpus(), reason="needs an NVIDIA GPU: nvidia-smi is missing or lists none here")
def test_a_real_gpu_cell_gets_windows_of_at_least_a_second(tmp_path):
    import json
    import os
    import subprocess
    import sys

    from conftest import ROOT

    proc = subprocess.run([sys.executable, "-m", "harness.cli", "bench", "--device", "gpu", "-f", "torch", "-m", "mlp",
                           "-t", "digits", "--epochs", "1", "--windows", "2", "--results-dir", str(tmp_path),
                           "--run-id", "gpuwin"], cwd=ROOT, env={**os.environ, "NO_COLOR": "1"},
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = json.loads((tmp_path / "gpuwin" / "results.jsonl").read_text().splitlines()[0])
    if record["status"] != "ok" and "sees only" in (record.get("error") or {}).get("message", ""):
        pytest.skip("torch here is not a CUDA build: " + record["error"]["message"])
    assert record["status"] == "ok", record.get("error")
    measurement = record["environment"]["measurement"]
    for phase in ("inference", "training"):
        rule = measurement[phase]["window_rule"]
        assert rule["device"] == "gpu", (phase, rule)
        assert rule["window_s_measured_min"] >= GPU_MIN_WINDOW_S, (phase, rule)
    assert measurement["fine_tune"]["compile"]["compile_s"] == record["metrics"]["compile_s"]["value"]


def test_the_gpu_warmup_is_bounded_when_windows_are_fixed_small() -> None:
    """--window-steps 1 with microsecond steps: 3 s of estimated work would be millions of steps
    (each really costing a synchronisation and a contention mark); the warm-up stops at
    MAX_WARMUP_STEPS, in whole windows."""
    from harness.measure.meter import GPU_RULE, MAX_WARMUP_STEPS

    assert GPU_RULE.warmup_steps(cap=1, step_s=1e-6, window_steps=1) == MAX_WARMUP_STEPS
    steps = GPU_RULE.warmup_steps(cap=1, step_s=1e-6, window_steps=7)
    assert steps <= MAX_WARMUP_STEPS and steps % 7 == 0
    # rule-sized windows (>= 1 s) are untouched: ceil(3 s / 1.1 s) = 3 windows
    assert GPU_RULE.warmup_steps(cap=50, step_s=1e-3, window_steps=1100) == 3 * 1100
