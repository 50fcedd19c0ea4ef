"""The fine-tune check: one step compared with the NumPy reference (loss, torch's first Adam
step at sampled entries, frozen parameters), and a short schedule (step and loss counts,
``meter.end_epoch``, evaluate and export agreeing afterwards)."""

from __future__ import annotations

import numpy as np

from zoo.batching import train_order
from zoo.checks import check_epoch_ends
from zoo.contract import FineTuneConfig, FineTuneResult, Meter, TrainData
from zoo.models.inputs import batch_form, select
from zoo.models.spec import ModelSpec
from zoo.checks import check_losses
from zoo.testing.checks import evaluate, export, max_error, supported_models
from zoo.testing.context import LOGIT_TOLERANCE, Context, Failed, RecordingMeter, run_subject
from zoo.testing.reference import check_data, first_adam_step, reference_loss, sample_gradients, start_weights
from zoo.testing.report import NOT_APPLICABLE, CheckResult

#: Whether this zoo's Meter protocol has ``end_epoch`` (adapters call it after each epoch).
EPOCH_HOOK = hasattr(Meter, "end_epoch")
#: Batch size of the fine-tune checks (one compiled step shape for all of them).
STEP_BATCH = 16


def state(spec: ModelSpec) -> frozenset[str]:
    """Non-trainable state of the model (BatchNorm running statistics), if its family has any."""
    names = getattr(spec, "state_names", None)
    checked = check_data(spec)
    return frozenset(names(checked.input_shape, checked.classes)) if names else frozenset()


def updated_state(spec: ModelSpec, freeze: str) -> frozenset[str]:
    """The state a fine-tune under ``freeze`` updates (running statistics of trained BatchNorms)."""
    names = getattr(spec, "updated_state_names", None)
    checked = check_data(spec)
    return frozenset(names(freeze, checked.input_shape, checked.classes)) if names else frozenset()


def check_fine_tune(ctx: Context) -> list[CheckResult]:
    if not ctx.adapter.can_train:
        return [CheckResult("fine-tune", "", NOT_APPLICABLE, "inference-only (can_train = False): the host never "
                            "calls fine_tune and shows the training columns as n/a")]
    specs, results = supported_models(ctx, "fine-tune")
    for spec in specs:
        results.append(run_subject(ctx, "fine-tune", f"{spec.name}: adam step", lambda: _one_step(ctx, spec, "none")))
        results.append(run_subject(ctx, "fine-tune", f"{spec.name}: freeze backbone",
                                   lambda: _one_step(ctx, spec, "backbone")))
        results.append(run_subject(ctx, "fine-tune", f"{spec.name}: schedule", lambda: _schedule(ctx, spec)))
    return results


def _one_step(ctx: Context, spec: ModelSpec, freeze: str) -> str:
    """One Adam step from the checkpoint: the loss is the reference loss of the starting weights,
    sampled entries move exactly as torch's Adam moves them, frozen parameters do not move."""
    checked = check_data(spec)
    data, shape, classes = checked.data, checked.input_shape, checked.classes
    x_train = batch_form(data.train_inputs)
    idx = np.sort(np.random.default_rng(ctx.seed).permutation(len(data.y_train))[:STEP_BATCH])
    x, y = select(x_train, idx), data.y_train[idx]
    config = FineTuneConfig(learning_rate=1e-3, weight_decay=1e-2, freeze=freeze)
    weights, source = start_weights(spec, ctx.seed)
    meter = RecordingMeter()
    result = ctx.call("fine_tune", ctx.load(spec, weights, shape, classes, freeze=freeze),
                      TrainData(x_train, data.y_train, ((idx,),)), config, meter)
    if not isinstance(result, FineTuneResult):
        raise Failed(f"fine_tune returned {type(result).__name__}, expected zoo.contract.FineTuneResult(model, losses)")
    meter.expect("fine_tune", 1, [STEP_BATCH])
    loss = check_losses(result.losses, 1)[0]
    ref = reference_loss(spec, weights, x, y)
    exact = not state(spec)  # with BatchNorm, training mode is not the reference (inference) forward
    if exact and abs(loss - ref) > 1e-4 * max(1.0, ref):
        raise Failed(f"the step's loss is {loss:.6f}, but the softmax cross-entropy of the starting weights on "
                     f"that batch is {ref:.6f}: return the loss computed before the update, from the logits "
                     "and integer labels, averaged over the batch")
    after = export(ctx, spec, result.model, shape, classes)
    trainable = spec.trainable_names(freeze, shape, classes)
    may_change = trainable | updated_state(spec, freeze)
    for name in sorted(set(weights) - may_change):
        if not np.array_equal(after[name], weights[name]):
            raise Failed(f"{name} changed although freeze={freeze!r} keeps it fixed: give frozen parameters no "
                         "gradient and no optimiser state")
    lr = config.learning_rate
    for name in sorted(trainable):
        moved = float(np.abs(after[name].astype(np.float64) - weights[name]).max())
        if moved > lr * (1 + 1e-3) + 1e-6:
            raise Failed(f"{name} moved by up to {moved:.2e} in one step, but torch's Adam moves no entry by more "
                         f"than the learning rate {lr:g} in its first step: use torch.optim.Adam's formula with "
                         "config.learning_rate (not SGD; weight decay added to the gradient, not decoupled as in "
                         "AdamW)")
    if all(np.array_equal(after[n], weights[n]) for n in trainable):
        raise Failed("no trainable parameter changed after one step: return the trained model in FineTuneResult.model")
    frozen = f"{len(set(weights) - may_change)} frozen parameters unchanged; " if freeze != "none" else ""
    if not exact:
        return (f"finite loss {loss:.4f}; {frozen}no entry moved more than the learning rate (BatchNorm runs in "
                "training mode, so loss and step are not compared with the inference-mode reference)")
    key = ("gradients", spec.name)  # the same start and batch for every freeze policy: compute once
    trainable_all = spec.trainable_names("none", shape, classes)
    if key not in ctx.cache:
        ctx.cache[key] = sample_gradients(spec, weights, x, y, sorted(trainable_all), seed=ctx.seed + 7)
    checked, wrong = 0, []
    for name, entries in ctx.cache[key].items():
        if name not in trainable:
            continue
        for i, g in entries:
            p = float(weights[name].reshape(-1)[i])
            if abs(g + config.weight_decay * p) < 1e-4:
                continue  # too close to zero for float32 to agree on the sign
            checked += 1
            expected, got = first_adam_step(p, g, config), float(after[name].reshape(-1)[i])
            if abs(got - expected) > 0.01 * lr:
                wrong.append(f"{name}[{i}]: {p:+.6f} -> {got:+.6f}, expected {expected:+.6f}")
    if wrong:
        raise Failed(f"{len(wrong)} of {checked} sampled entries did not take torch's first Adam step "
                     f"(lr {lr:g}, weight decay {config.weight_decay:g}), e.g. {wrong[0]}: use torch.optim.Adam's "
                     "formula (eps outside the square root; weight decay added to the gradient as L2, not AdamW)")
    return (f"loss {loss:.4f} = reference; {frozen}{checked} sampled entries took torch's first Adam step "
            f"(weight decay {config.weight_decay:g}; {source})")


def _schedule(ctx: Context, spec: ModelSpec) -> str:
    """Several epochs: one meter.step and one loss per step, meter.end_epoch after each epoch with
    a handle that evaluate accepts, and evaluate and export_weights agree about the trained model."""
    checked = check_data(spec)
    data, shape, classes = checked.data, checked.input_shape, checked.classes
    n, x = 64, select(batch_form(data.test_inputs), slice(0, 40))
    train = TrainData(select(batch_form(data.train_inputs), slice(0, n)), data.y_train[:n],
                      train_order(n, STEP_BATCH, epochs=2, seed=ctx.seed))
    weights, _ = start_weights(spec, ctx.seed)
    at_epoch_end: list[np.ndarray] = []
    meter = RecordingMeter(
        on_epoch_end=lambda handle: at_epoch_end.append(evaluate(ctx, handle, x, 64, classes)))
    result = ctx.call("fine_tune", ctx.load(spec, weights, shape, classes), train,
                      FineTuneConfig(learning_rate=1e-3, weight_decay=1e-2), meter)
    meter.expect("fine_tune", train.num_steps, [STEP_BATCH] * train.num_steps)
    check_losses(result.losses, train.num_steps)
    epochs = ""
    if EPOCH_HOOK:
        check_epoch_ends(meter.epochs_ended, len(train.order), contract_version=2)
        if meter.epoch_in_step:
            raise Failed(f"fine_tune called meter.end_epoch {meter.epoch_in_step} times inside a step: call it "
                         "once after each epoch's last step, outside meter.step")
        epochs = ", meter.end_epoch after each"
    after = export(ctx, spec, result.model, shape, classes)
    if all(np.array_equal(after[k], weights[k]) for k in weights):
        raise Failed("the weights did not change in 8 steps: return the trained model in FineTuneResult.model")
    final = evaluate(ctx, result.model, x, 64, classes)[:40]
    err = max_error(final, spec.reference_forward(after, x))
    if err > LOGIT_TOLERANCE:
        raise Failed(f"after fine_tune, evaluate's logits are {err:.1e} away from the reference forward pass of "
                     "export_weights' weights: both must see the trained model")
    if at_epoch_end and (err := max_error(at_epoch_end[-1][:40], final)) > LOGIT_TOLERANCE:
        raise Failed(f"evaluating the handle given to meter.end_epoch after the last epoch differs by {err:.1e} from "
                     "evaluating the returned model: pass the trained model's current handle")
    return (f"2 epochs x 4 steps: 8 meter.steps, 8 finite losses{epochs}; evaluate and export_weights agree "
            "afterwards")
