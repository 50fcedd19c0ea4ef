"""The measured phases of one cell. Each phase is timed by the host with a :class:`StepMeter`
and returns its metrics; the adapter only runs the steps it is handed.

Throughput phases (inference, training) follow one method for every framework: run a warm-up
plus ``windows`` windows of ``K`` steps, detect after the fact where the step times became steady
(:func:`~harness.measure.meter.steady_start`), and report the windows that follow it. ``K`` and
the warm-up follow the device's :class:`~harness.measure.meter.WindowRule`: on a CPU a window
lasts at least 50 ms and the warm-up is at most ``warmup_cap`` steps; on a GPU a window lasts at
least 1 s (sized from one pipelined window) and the warm-up is whole windows, at least 3 s.

``compile_s`` (training) and the inference compile time are defined one way for every framework
(:class:`~harness.measure.meter.FirstStep`): from the start of the adapter's call to the end of
its first step, minus one steady step, so work an adapter does before its first timed step
(tracing, building the optimiser, staging the split) counts as well as compilation at first call.
"""

from __future__ import annotations

import gc
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from itertools import cycle, islice
from typing import Any, Callable, Iterator

import numpy as np

from zoo.batching import eval_order
from zoo.checks import ContractViolation, check_epoch_ends, check_logits, check_losses, check_step_count
from zoo.contract import EvalData, FineTuneConfig, Framework, TrainData
from zoo.models.inputs import rows

from harness.plan.cells import Settings
from harness.measure import contention
from harness.measure.meter import (
    FirstStep,
    StepMeter,
    pipelined_step_s,
    steady_start,
    window_durations,
    window_rule,
    window_throughputs,
)
from harness.results.metrics import BUILTIN
from harness.results.records import Metric
from harness.measure.stats import percentile


def metric(name: str, value) -> Metric:
    """A built-in metric's record entry; unit and direction come from the catalogue."""
    return BUILTIN.metric(name, value)


#: What ``compile_s`` includes, as recorded beside it.
TRAIN_COMPILE_INCLUDES = (
    "from the start of the fine_tune call to the end of its first timed step, minus one steady step "
    "(median of the recipe's steady steps): the adapter's work before that step (building or tracing the "
    "step function, e.g. tf.function; building the optimiser; staging the split on the device) plus the "
    "first step's extra time (compilation at first call: jax.jit, torch.compile, tf:xla; autotuning; "
    "CUDA module loading)")
#: What the inference compile time includes, as recorded beside it.
INFER_COMPILE_INCLUDES = (
    "from the start of an evaluate call to the end of its first timed step, minus one steady step "
    "(median of the inference probe's synchronised steps after its first): building or tracing the "
    "forward, staging the test split on the device, and the first step's compilation at first call")


@dataclass
class Evaluator:
    """Test-set accuracy of a model handle, computed by the host from the adapter's logits.

    Keeps where the first step of its first call fell (``first_call``): the cell's first evaluate
    call (at the recipe's first epoch end, or the evaluate phase of an inference-only adapter) is
    the one that builds and compiles the forward, which the inference compile time is made of."""

    adapter: Framework
    x: Any  # the batch form: one array, or one per declared input
    y: np.ndarray
    batch_size: int
    num_classes: int
    first_call: FirstStep | None = field(default=None, init=False)

    def __call__(self, model: Any, meter: StepMeter | None = None) -> float:
        data = EvalData(self.x, eval_order(rows(self.x), self.batch_size))
        expected = len(data.order) * data.batch_size
        meter = meter or StepMeter()
        t0 = time.perf_counter()
        logits = check_logits(self.adapter.evaluate(model, data, meter), expected, self.num_classes, "evaluate")
        if self.first_call is None:
            self.first_call = FirstStep.of(t0, meter)
        return float((logits[: len(self.y)].argmax(axis=1) == self.y).mean())


def fine_tune_recipe(adapter: Framework, model: Any, train: TrainData, config: FineTuneConfig,
                     evaluate: Evaluator, target: float) -> tuple[Any, dict[str, Metric], dict[str, Any]]:
    """The task's recipe, end to end: wall time on the training clock (evaluation at each epoch's
    end is excluded), time-to-accuracy, the accuracy curve, and ``compile_s``: from the start of
    the fine_tune call to the end of its first step, minus one steady step (details ``compile``
    split it into the work before the first step and the first step's extra time)."""
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
    first = FirstStep.of(t0, meter)
    out = {
        "fine_tune_wall_s": metric("fine_tune_wall_s", wall),
        "first_step_s": metric("first_step_s", durations[0]),
        "compile_s": metric("compile_s", first.compile_s(steady)),
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
               "steps": train.num_steps, "steady_step_s": steady,
               "compile": first.details(steady, TRAIN_COMPILE_INCLUDES)}
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
                unit_name: str, name: str = "infer_throughput",
                device: str = "cpu") -> tuple[Metric, dict[str, Any]]:
    """Windows of ``k`` steps, synchronised only at each window's end so asynchronous frameworks
    pipeline as they would for a user, after a warm-up; both sized by ``device``'s
    :class:`~harness.measure.meter.WindowRule` (``details["window_rule"]`` records it).

    On a GPU the synchronised probe step overstates a pipelined one, so one window sized from the
    probe is run first (a separate call, synchronised only at its end) and ``k`` is sized from its
    per-step time. The warm-up budget (:func:`warmup_cap`) is spent as whole windows where it holds
    any (the steady point is then detected among them, after the fact) and a shorter pre-window
    for the rest; on a CPU it never exceeds ``settings.warmup_cap``, however short the step."""
    rule = window_rule(device)
    step_s, sizing = probe_step_s, {}
    with gc_paused():
        if rule.asynchronous and not settings.window_steps:
            first_k = rule.steps(probe_step_s)
            sizer = StepMeter(sync_every=first_k)
            run(first_k, sizer)
            pipelined = pipelined_step_s(sizer)
            sizing = {"sizing_steps": first_k, "step_s_pipelined": pipelined}
            step_s = pipelined if pipelined > 0 else probe_step_s
        k = settings.window_steps or rule.steps(step_s)
        budget = rule.warmup_steps(settings.warmup_cap, step_s, k)
        warm_windows, pre = divmod(budget, k)
        start_mark = contention.sample()
        meter = StepMeter(sync_every=k, sync_offset=pre, mark=contention.sample)
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
    measured = durations[skip:skip + len(rates)]
    rule_used = {**rule.details(), "step_s_probe": probe_step_s, **sizing, "step_s_used": step_s,
                 "window_steps_from": "--window-steps" if settings.window_steps else "rule",
                 "window_s_expected": k * step_s, "window_s_measured_min": float(min(measured)),
                 "window_s_measured_median": float(np.median(measured)), "warmup_budget_steps": budget}
    return BUILTIN.from_samples(name, rates), {"warmup_steps": first, "window_steps": k, "windows": len(rates),
                                               "window_rule": rule_used, **({"contention": cpu} if cpu else {})}


def warmup_cap(cap: int, step_s: float, budget_s: float | None = None, device: str = "cpu",
               window_steps: int = 0) -> int:
    """The warm-up budget in steps on ``device`` (:meth:`WindowRule.warmup_steps`). CPU: at most
    ``cap`` and about ``budget_s`` (default 2 s) of work, at least ``min(cap, 3)``. GPU: whole
    windows of ``window_steps`` (default: the rule's) steps, at least ``budget_s`` (default 3 s)
    of work, whatever ``cap``."""
    rule = window_rule(device)
    if budget_s is not None:
        rule = replace(rule, warmup_s=budget_s)
    return rule.warmup_steps(cap, step_s, window_steps or rule.steps(step_s))


def inference_throughput(adapter: Framework, model: Any, x: Any, batch_size: int, num_classes: int,
                         settings: Settings, device: str = "cpu",
                         first_evaluate: FirstStep | None = None) -> tuple[Metric, dict[str, Any]]:
    """Forward passes at the task's batch size over the test images, cycled as needed, in
    windows sized for ``device``.

    ``details["compile"]`` is the inference compile time (:data:`INFER_COMPILE_INCLUDES`) of
    ``first_evaluate``, the cell's first evaluate call (:attr:`Evaluator.first_call`); without it,
    of this phase's probe call, whose forward an earlier evaluate call may have built already
    (``details["compile"]["source"]`` says which)."""
    batches = eval_order(rows(x), batch_size)
    probe = StepMeter()
    probe_batches = tuple(islice(cycle(batches), 3))  # three steps even when the test set has fewer batches
    t0 = time.perf_counter()
    check_logits(adapter.evaluate(model, EvalData(x, probe_batches), probe), 3 * batch_size, num_classes, "evaluate")
    probe_s = float(np.median(probe.durations_s))
    steady = float(np.median(probe.durations_s[1:]))  # after the call's first step, the forward is warm

    def run(steps: int, meter: StepMeter) -> None:
        order = tuple(islice(cycle(batches), steps))
        check_logits(adapter.evaluate(model, EvalData(x, order), meter), steps * batch_size, num_classes, "evaluate")

    value, details = _throughput(run, probe_s, settings, "inference", "infer_throughput", device=device)
    if first_evaluate is not None:
        first, source = first_evaluate, "the cell's first evaluate call"
    else:
        first = FirstStep.of(t0, probe)
        source = ("this phase's probe call (no earlier call was passed in: an earlier evaluate call may have "
                  "built the forward already)")
    details["compile"] = {**first.details(steady, INFER_COMPILE_INCLUDES), "source": source}
    return value, details


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
                     probe_step_s: float, settings: Settings,
                     device: str = "cpu") -> tuple[Any, Metric, dict[str, Any]]:
    """Training steps on the recipe's batches (cycled), in one fine_tune call with a fresh
    optimiser, after the recipe run, in windows sized for ``device`` (on a GPU one more
    fine_tune call sizes them first). Returns the model handle the last fine_tune gave back."""
    batches = [idx for epoch in recipe.order for idx in epoch]
    handle = {"model": model}

    def run(steps: int, meter: StepMeter) -> None:
        data = replace(recipe, order=(tuple(islice(cycle(batches), steps)),))
        handle["model"] = adapter.fine_tune(handle["model"], data, config, meter).model
        if len(meter.starts) != steps:
            raise ContractViolation(f"fine_tune timed {len(meter.starts)} of {steps} steps")

    value, details = _throughput(run, probe_step_s, settings, "training", "train_throughput", device=device)
    return handle["model"], value, details
