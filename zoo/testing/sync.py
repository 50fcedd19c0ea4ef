"""Synchronisation sanity: a timed step must not end before the work it times.

The host times each step with ``meter.step`` and never looks inside. A framework that dispatches
work asynchronously (JAX, CUDA streams, lazy graphs) returns from a call long before the result
exists; unless the adapter waits inside the step (``jax.block_until_ready``,
``torch.cuda.synchronize``, reading the value back to NumPy), the steps look nearly free and the
work is paid later, outside any step: throughput would be fiction.

So the check times heavy work twice: the steps, with a recording meter, and the whole call
(until its result is in NumPy) with a stopwatch. In an honest adapter the steps account for
nearly all of the call (typically > 90 %); in one that forgets to synchronise they account for a
few percent. The work is sized (batch x8) until one call takes long enough to measure; after an
untimed warm-up call (compilation), the best share of up to three calls (more calls only while
it is below the threshold, for a busy machine) is held against a threshold of 50 %.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from zoo.batching import eval_order, train_order
from zoo.contract import EvalData, FineTuneConfig, TrainData
from zoo.init import init_weights
from zoo.models.inputs import batch_form
from zoo.models.spec import ModelSpec
from zoo.testing.context import Context, Failed, RecordingMeter, run_subject
from zoo.testing.reference import random_inputs, shape_label
from zoo.testing.report import NOT_APPLICABLE, SKIPPED, CheckResult

#: Steps must account for at least this share of the call's wall time.
MIN_STEP_SHARE = 0.5
#: Work per call is grown (batch size x8) until one call takes at least this long.
MIN_CALL_S = 0.05
#: Classes and batches per call; the input shape is the model's ``example_shapes().heavy``
#: (32x32x3 for image models).
CLASSES, BATCHES = 10, 4
BATCH_SIZES = (8, 64, 512)
TIMED_CALLS = 3

SYNC_HINT = ("synchronise inside `with meter.step(...)`: wait for the step's result before the block ends "
             "(jax.block_until_ready(out), torch.cuda.synchronize(), tf.test.experimental.sync_devices(); a copy to "
             "NumPy also waits but adds a device-to-host copy to the step)")


def check_sync(ctx: Context) -> list[CheckResult]:
    spec = heavy_model(ctx)
    if spec is None:
        return [CheckResult("sync", "", SKIPPED, "needs a model that the adapter supports and loads")]
    results = [run_subject(ctx, "sync", "evaluate", lambda: _evaluate_share(ctx, spec))]
    if ctx.adapter.can_train:
        results.append(run_subject(ctx, "sync", "fine_tune", lambda: _fine_tune_share(ctx, spec)))
    else:
        results.append(CheckResult("sync", "fine_tune", NOT_APPLICABLE, "inference-only (can_train = False)"))
    return results


def heavy_model(ctx: Context) -> ModelSpec | None:
    """The supported model with the most arithmetic per example: a CNN if there is one."""
    usable = [s for s, reason in ctx.supported() if not reason and s.name not in ctx.load_failed]
    usable.sort(key=lambda s: s.family != "cnn")
    return usable[0] if usable else None


def step_share(call: Callable[[RecordingMeter], Any],
               finish: Callable[[Any], Any]) -> tuple[float, float, RecordingMeter]:
    """Run ``call`` once with a fresh meter, then ``finish`` its result (bring it to NumPy).
    Returns the steps' share of the whole wall time, the wall time, and the meter."""
    meter = RecordingMeter()
    start = time.perf_counter()
    finish(call(meter))
    wall = time.perf_counter() - start
    return (meter.total_s / wall if wall > 0 else 1.0), wall, meter


def _measure(make_call: Callable[[int], tuple[Callable, Callable, int]], what: str, shape: tuple[int, ...]) -> str:
    """Grow the batch until a call is long enough, then keep the best share of a few calls."""
    for batch in BATCH_SIZES:
        call, finish, steps = make_call(batch)
        finish(call(RecordingMeter()))  # warm-up: compile for this shape, untimed
        share, wall, meter = step_share(call, finish)
        if wall >= MIN_CALL_S or batch == BATCH_SIZES[-1]:
            break
    meter.expect(what, steps, [batch] * steps)
    shares = [share]
    while max(shares) < MIN_STEP_SHARE and len(shares) < TIMED_CALLS:  # a busy machine gets more tries
        shares.append(step_share(call, finish)[0])
    best = max(shares)
    found = (f"timed steps cover {100 * best:.0f}% of the {wall * 1e3:.0f} ms {what} took "
             f"({steps} batches of {batch} at {shape_label(shape)}; threshold {100 * MIN_STEP_SHARE:.0f}%)")
    if best < MIN_STEP_SHARE:
        raise Failed(f"{found}: the steps end before the work they time, so throughput would be overstated; "
                     + SYNC_HINT)
    return found


def heavy_inputs(spec: ModelSpec, n: int, seed: int) -> Any:
    """``n`` random examples of the model's declared inputs at its heavy shape, in the batch form."""
    return batch_form(random_inputs(spec.inputs(spec.example_shapes().heavy), n, seed=seed))


def _evaluate_share(ctx: Context, spec: ModelSpec) -> str:
    shape = spec.example_shapes().heavy
    weights = init_weights(spec, shape, CLASSES, seed=ctx.seed)
    model = ctx.load(spec, weights, shape, CLASSES)

    def make_call(batch: int):
        data = EvalData(heavy_inputs(spec, batch * BATCHES, ctx.seed), eval_order(batch * BATCHES, batch))
        return (lambda meter: ctx.call("evaluate", model, data, meter)), np.asarray, BATCHES

    return _measure(make_call, "evaluate", shape)


def _fine_tune_share(ctx: Context, spec: ModelSpec) -> str:
    shape = spec.example_shapes().heavy
    weights = init_weights(spec, shape, CLASSES, seed=ctx.seed)
    config = FineTuneConfig(learning_rate=1e-3, weight_decay=1e-2)

    def make_call(batch: int):
        n = batch * BATCHES
        rng = np.random.default_rng(ctx.seed)
        data = TrainData(heavy_inputs(spec, n, ctx.seed), rng.integers(0, CLASSES, n).astype(np.int64),
                         train_order(n, batch, epochs=1, seed=ctx.seed))
        model = ctx.load(spec, weights, shape, CLASSES)

        def finish(result: Any) -> None:  # everything the host reads back: losses and weights
            [float(v) for v in result.losses]
            ctx.call("export_weights", result.model)

        return (lambda meter: ctx.call("fine_tune", model, data, config, meter)), finish, BATCHES

    return _measure(make_call, "fine_tune", shape)
