"""The measured phases of one cell. Each phase is timed by the host with a :class:`StepMeter`
and returns its metrics; the adapter only runs the steps it is handed.

Throughput phases (inference, training) follow one method for every framework: run a warm-up
of at most ``warmup_cap`` steps plus ``windows`` windows of ``K`` steps, detect after the fact
where the step times became steady (:func:`~harness.measure.meter.steady_start`), and report the
windows that follow it. ``K`` is chosen so that a window lasts at least
:data:`~harness.measure.meter.MIN_WINDOW_S`.
"""

from __future__ import annotations

import gc
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from itertools import cycle, islice
from typing import Any, Callable, Iterator

import numpy as np

from zoo.batching import eval_order
from zoo.checks import ContractViolation, check_epoch_ends, check_logits, check_losses, check_step_count
from zoo.contract import EvalData, FineTuneConfig, Framework, TrainData
from zoo.models.inputs import rows

from harness.plan.cells import Settings
from harness.measure import contention
from harness.measure.meter import StepMeter, steady_start, steps_for_window, window_durations, window_throughputs
from harness.results.metrics import BUILTIN
from harness.results.records import Metric
from harness.measure.stats import percentile


def metric(name: str, value) -> Metric:
    """A built-in metric's record entry; unit and direction come from the catalogue."""
    return BUILTIN.metric(name, value)


@dataclass
class Evaluator:
    """Test-set accuracy of a model handle, computed by the host from the adapter's logits."""

    adapter: Framework
    x: Any  # the batch form: one array, or one per declared input
    y: np.ndarray
    batch_size: int
    num_classes: int

    def __call__(self, model: Any, meter: StepMeter | None = None) -> float:
        data = EvalData(self.x, eval_order(rows(self.x), self.batch_size))
        expected = len(data.order) * data.batch_size
        logits = check_logits(self.adapter.evaluate(model, data, meter or StepMeter()), expected, self.num_classes,
                              "evaluate")
        return float((logits[: len(self.y)].argmax(axis=1) == self.y).mean())


def fine_tune_recipe(adapter: Framework, model: Any, train: TrainData, config: FineTuneConfig,
                     evaluate: Evaluator, target: float) -> tuple[Any, dict[str, Metric], dict[str, Any]]:
    """The task's recipe, end to end: wall time on the training clock (evaluation at each epoch's
    end is excluded), time-to-accuracy, first-step (compile) time, the accuracy curve."""
    curve: list[float] = []
    meter = StepMeter(on_epoch_end=lambda handle: curve.append(evaluate(handle)))
    t0 = time.perf_counter()
    result = adapter.fine_tune(model, train, config, meter)
    wall = time.perf_counter() - t0 - meter.paused_s
    check_step_count(len(meter.starts), train.num_steps)
    check_epoch_ends(len(meter.epoch_ends), len(train.order), adapter.contract_version)
    losses = check_losses(result.losses)
    durations = meter.durations_s
    steady = float(np.median(durations[steady_start(durations, cap=max(1, len(durations) // 2)):]))
    out = {
        "fine_tune_wall_s": metric("fine_tune_wall_s", wall),
        "first_step_s": metric("first_step_s", durations[0]),
        "compile_s": metric("compile_s", max(0.0, durations[0] - steady)),
    }
    if curve:  # contract version 1 adapters do not report epochs: no curve, no time-to-accuracy
        d = BUILTIN["accuracy_curve"]  # the last epoch's accuracy, the curve as its samples (no spread)
        out["accuracy_curve"] = Metric(100.0 * curve[-1], d.unit, d.direction, tuple(100.0 * a for a in curve))
    reached = next((i for i, acc in enumerate(curve) if acc >= target), None) if target else None
    if reached is not None:
        out["time_to_accuracy_s"] = metric("time_to_accuracy_s", meter.epoch_ends[reached] - t0)
    if losses.size:
        out["final_loss"] = metric("final_loss", float(losses[-len(train.order[-1]):].mean()))
    details = {"target_accuracy": target, "epochs_to_target": None if reached is None else reached + 1,
               "steps": train.num_steps, "steady_step_s": steady}
    return result.model, out, details


@contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while timing windows (as ``timeit`` does): a
    collection that lands in one window is a pause of the host process, not the framework's
    speed. Collected before and after; the recipe's wall time keeps it on, as a user has it."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
        gc.collect()


def _throughput(run: Callable[[int, StepMeter], None], probe_step_s: float, settings: Settings,
                unit_name: str, name: str = "infer_throughput") -> tuple[Metric, dict[str, Any]]:
    """Windows of ``k`` steps, synchronised only at each window's end so asynchronous frameworks
    pipeline as they would for a user, after a warm-up of at most ``settings.warmup_cap`` steps.

    The warm-up budget (:func:`warmup_cap`) is spent as whole windows where it holds any (the
    steady point is then detected among them, after the fact) and a shorter pre-window for the
    rest, so the warm-up never exceeds the cap, however short the step."""
    k = settings.window_steps or steps_for_window(probe_step_s)
    budget = warmup_cap(settings.warmup_cap, probe_step_s)
    warm_windows, pre = divmod(budget, k)
    start_mark = contention.sample()
    meter = StepMeter(sync_every=k, sync_offset=pre, mark=contention.sample)
    with gc_paused():
        run(pre + (warm_windows + settings.windows) * k, meter)
    durations = window_durations(meter, k, start=pre)
    skip = steady_start(durations, warm_windows, run=min(3, settings.windows))
    rates = window_throughputs(meter, settings.windows, pre + skip * k, steps_per_window=k)
    if not rates:
        raise ContractViolation(f"{unit_name}: no complete timing window (steps recorded: {len(meter.starts)})")
    first = pre + skip * k  # the measured windows end at steps first + k - 1, first + 2k - 1, ...
    ends = {first + (w + 1) * k - 1 for w in range(len(rates))}
    before = [m for i, m in meter.marks if i == first - 1] or [start_mark]
    marks = before[:1] + [m for i, m in meter.marks if i in ends]
    cpu = contention.summary(contention.windows(marks, settings.threads), marks)
    return BUILTIN.from_samples(name, rates), {"warmup_steps": first, "window_steps": k, "windows": len(rates),
                                               **({"contention": cpu} if cpu else {})}


def warmup_cap(cap: int, step_s: float, budget_s: float = 2.0) -> int:
    """The warm-up budget in steps: at most ``cap`` and about ``budget_s`` of work, at least
    ``min(cap, 3)``."""
    if step_s <= 0:
        return cap
    return int(min(cap, max(3, np.ceil(budget_s / step_s))))


def inference_throughput(adapter: Framework, model: Any, x: Any, batch_size: int, num_classes: int,
                         settings: Settings) -> tuple[Metric, dict[str, Any]]:
    """Forward passes at the task's batch size over the test images, cycled as needed."""
    batches = eval_order(rows(x), batch_size)
    probe = StepMeter()
    probe_batches = tuple(islice(cycle(batches), 3))  # three steps even when the test set has fewer batches
    check_logits(adapter.evaluate(model, EvalData(x, probe_batches), probe), 3 * batch_size, num_classes, "evaluate")
    probe_s = float(np.median(probe.durations_s))

    def run(steps: int, meter: StepMeter) -> None:
        order = tuple(islice(cycle(batches), steps))
        check_logits(adapter.evaluate(model, EvalData(x, order), meter), steps * batch_size, num_classes, "evaluate")

    return _throughput(run, probe_s, settings, "inference", "infer_throughput")


def latency(adapter: Framework, model: Any, x: Any, num_classes: int, settings: Settings) -> dict[str, Metric]:
    """Batch-1 forward passes after a warm-up (a new batch shape may trace or compile)."""
    n = min(settings.latency_samples, rows(x))
    warm = StepMeter()
    adapter.evaluate(model, EvalData(x, eval_order(min(20, n), 1)), warm)
    meter = StepMeter()
    with gc_paused():
        logits = adapter.evaluate(model, EvalData(x, eval_order(n, 1)), meter)
    check_logits(logits, n, num_classes, "latency")
    ms = [d * 1e3 for d in meter.durations_s]
    return {
        "latency_p50_ms": BUILTIN.from_samples("latency_p50_ms", ms),
        "latency_p90_ms": metric("latency_p90_ms", percentile(ms, 90)),
        "latency_p99_ms": metric("latency_p99_ms", percentile(ms, 99)),
    }


def train_throughput(adapter: Framework, model: Any, recipe: TrainData, config: FineTuneConfig,
                     probe_step_s: float, settings: Settings) -> tuple[Any, Metric, dict[str, Any]]:
    """Training steps on the recipe's batches (cycled), in one fine_tune call with a fresh
    optimiser, after the recipe run. Returns the model handle fine_tune gave back."""
    batches = [idx for epoch in recipe.order for idx in epoch]
    handle = {"model": model}

    def run(steps: int, meter: StepMeter) -> None:
        data = replace(recipe, order=(tuple(islice(cycle(batches), steps)),))
        handle["model"] = adapter.fine_tune(handle["model"], data, config, meter).model
        if len(meter.starts) != steps:
            raise ContractViolation(f"fine_tune timed {len(meter.starts)} of {steps} steps")

    value, details = _throughput(run, probe_step_s, settings, "training", "train_throughput")
    return handle["model"], value, details
