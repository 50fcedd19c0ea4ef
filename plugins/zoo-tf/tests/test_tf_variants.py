"""The contract's newer features in the TF adapter, in-process on tiny inputs: ``meter.end_epoch``
after each epoch, the ``graph``/``xla``/``eager`` variants (same float32 numbers), and
precision ``bf16`` (bfloat16 backbone, float32 variables, head, logits and loss).

The variant is given to the constructor (``TFFramework(variant=...)``), so no test has to call
``prepare`` (it sets TensorFlow's process-wide settings; see test_tf_plugin.py for it)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="TensorFlow is not installed (pip install 'zoo-tf[cpu]')")

from zoo.batching import eval_order, train_order  # noqa: E402
from zoo.contract import EvalData, FineTuneConfig, TrainData  # noqa: E402
from zoo.init import init_weights  # noqa: E402
from zoo.testing import NullMeter  # noqa: E402
from zoo.models import CORE_MODELS, ModelSpec  # noqa: E402
from zoo.tasks.digits import load_digits_task  # noqa: E402
from zoo_tf.adapter import TFFramework  # noqa: E402

SPECS = {spec.name: spec for spec in CORE_MODELS}  # the MLP and the CNN; ResNets: test_tf_resnet.py
VARIANTS = list(TFFramework.variants)  # graph (default), xla, eager
#: bf16 tolerance on logits against the float64 reference: max abs error <= BF16_REL * max|logit|
#: + BF16_ABS. bfloat16 keeps 8 significant bits (relative rounding 2**-9 ~ 2e-3 per value); the
#: zoo's models measure 3e-3 to 4e-3 x max|logit|, so this leaves a factor of ~5.
BF16_REL, BF16_ABS = 2e-2, 2e-2
#: What fp32 must beat (the contract's logit tolerance) and bf16 must not (bf16 is really on).
FP32_TOL = 1e-4


class CountingMeter:
    """Counts steps; at each ``end_epoch`` records the step count, and what ``evaluate`` and
    ``export_weights`` give for the handle it was passed."""

    def __init__(self, fw: TFFramework, x_eval: np.ndarray):
        self.fw, self.x_eval = fw, x_eval
        self.steps = 0
        self.open = 0
        self.ends: list[tuple[int, np.ndarray, dict[str, np.ndarray]]] = []

    @contextlib.contextmanager
    def step(self, samples: int) -> Iterator[None]:
        self.open += 1
        yield
        self.open -= 1
        self.steps += 1

    def end_epoch(self, model) -> None:
        assert self.open == 0, "end_epoch was called inside a meter.step"
        logits = self.fw.evaluate(model, EvalData(self.x_eval, eval_order(len(self.x_eval), 8)), NullMeter())
        self.ends.append((self.steps, logits[: len(self.x_eval)], self.fw.export_weights(model)))



def load(fw: TFFramework, spec: ModelSpec, weights, input_shape, precision: str = "fp32", freeze: str = "none"):
    return fw.load_pretrained(
        spec=spec,
        weights=weights,
        input_shape=input_shape,
        num_classes=10,
        device="cpu",
        precision=precision,
        freeze=freeze,
    )


def images(n: int, shape, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 1.0, size=(n, *shape)).astype(np.float32)


def logits_of(fw: TFFramework, model, x: np.ndarray, batch: int = 4) -> np.ndarray:
    return fw.evaluate(model, EvalData(x, eval_order(len(x), batch)), NullMeter())[: len(x)]


# --- meter.end_epoch


@pytest.mark.parametrize("variant", ["graph", "eager"])  # the epoch loop is the same code for xla
def test_end_epoch_is_called_after_each_epoch_with_an_evaluable_handle(variant):
    spec, fw = SPECS["mlp"], TFFramework(variant=variant)
    weights = init_weights(spec, (8, 8, 1), 10, seed=0)
    x = images(24, (8, 8, 1), seed=1)
    y = np.random.default_rng(2).integers(0, 10, size=len(x)).astype(np.int64)
    order = train_order(len(x), 8, epochs=3, seed=0)  # 3 epochs of 3 steps
    meter = CountingMeter(fw, x[:5])
    model = load(fw, spec, weights, (8, 8, 1))
    result = fw.fine_tune(model, TrainData(x, y, order), FineTuneConfig(learning_rate=1e-2), meter)
    assert [steps for steps, _, _ in meter.ends] == [3, 6, 9]  # once per epoch, after its last step
    for epoch, (_, logits, exported) in enumerate(meter.ends):
        # the handle's logits are those of the weights at that point
        err = np.abs(logits - spec.reference_forward(exported, x[:5])).max()
        assert err < FP32_TOL, f"epoch {epoch}: {err:.2e}"
    assert np.abs(meter.ends[0][1] - meter.ends[1][1]).max() > 1e-3  # it kept training in between
    np.testing.assert_array_equal(meter.ends[-1][1], logits_of(fw, result.model, x[:5], batch=8))
    assert len(result.losses) == 9


# --- variants: the same float32 numbers


@pytest.mark.parametrize("shape", [(8, 8, 1), (9, 9, 3)], ids=["8x8x1", "odd-9x9x3"])
@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("variant", ["xla", "eager"])
def test_variant_logits_match_numpy_reference(variant, name, shape):
    spec, fw = SPECS[name], TFFramework(variant=variant)
    weights = init_weights(spec, shape, 10, seed=3)
    x = images(10, shape, seed=4)
    model = load(fw, spec, weights, shape)
    assert model.variant == variant
    logits = fw.evaluate(model, EvalData(x, eval_order(len(x), 4)), NullMeter())
    assert logits.dtype == np.float32 and logits.shape == (12, 10)
    err = np.abs(logits[:10] - spec.reference_forward(weights, x)).max()
    assert err < FP32_TOL, f"{variant} {name} {shape}: max abs logit error {err:.2e}"


#: For comparing one Adam step between variants. At t=1 the update is lr * g / (|g| + eps): with
#: the default eps=1e-8 a gradient entry within rounding of zero (float32 sums in another order)
#: can move by anything up to lr, so eps=1e-3 keeps the comparison well-conditioned (an update
#: error of at most lr * |dg| / eps) while still comparing every gradient and the whole update.
STEP_CONFIG = FineTuneConfig(learning_rate=1e-2, eps=1e-3)


def one_adam_step(variant: str, spec: ModelSpec, precision: str = "fp32", config: FineTuneConfig = STEP_CONFIG):
    """Returns (start weights, losses, weights after one step, the model handle)."""
    fw = TFFramework(variant=variant)
    weights = init_weights(spec, (8, 8, 1), 10, seed=6)
    x = images(16, (8, 8, 1), seed=7)
    y = np.random.default_rng(8).integers(0, 10, size=len(x)).astype(np.int64)
    model = load(fw, spec, weights, (8, 8, 1), precision)
    result = fw.fine_tune(model, TrainData(x, y, ((np.arange(16),),)), config, NullMeter())
    return weights, result.losses, fw.export_weights(result.model), result.model


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("variant", ["xla", "eager"])
def test_variant_adam_step_matches_graph(variant, name):
    # every parameter of the whole network moves (by up to lr = 1e-2)
    start, graph_losses, graph, _ = one_adam_step("graph", SPECS[name])
    _, losses, after, _ = one_adam_step(variant, SPECS[name])
    np.testing.assert_allclose(losses, graph_losses, rtol=1e-5)
    for key, value in graph.items():
        assert np.abs(value - start[key]).max() > 1e-3, f"{key} did not move"
        np.testing.assert_allclose(after[key], value, rtol=1e-5, atol=1e-7, err_msg=f"{variant} {key}")


# --- bf16


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("variant", VARIANTS)
def test_bf16_logits_match_reference_within_bf16_tolerance(variant, name):
    spec, fw, shape = SPECS[name], TFFramework(variant=variant), (9, 9, 3)
    weights = init_weights(spec, shape, 10, seed=3)
    x = images(10, shape, seed=4)
    reference = spec.reference_forward(weights, x)
    logits = fw.evaluate(load(fw, spec, weights, shape, "bf16"), EvalData(x, eval_order(len(x), 4)), NullMeter())
    assert logits.dtype == np.float32 and logits.shape == (12, 10)
    err = np.abs(logits[:10] - reference).max()
    bound = BF16_REL * np.abs(reference).max() + BF16_ABS
    assert err <= bound, f"bf16 {variant} {name}: max abs logit error {err:.2e} > {bound:.2e}"
    assert err > FP32_TOL, f"bf16 {variant} {name}: error {err:.2e} is float32-sized; is bf16 on?"
    fp32 = logits_of(fw, load(fw, spec, weights, shape, "fp32"), x)
    assert np.abs(fp32 - reference).max() < FP32_TOL  # the same check fails nothing in fp32


def graph_ops(fn, *args) -> list[tuple[str, str]]:
    """(op type, dtype name) of the compute ops of a tf.function's graph for ``args``."""
    import tensorflow as tf

    graph = fn.get_concrete_function(*args).graph
    kinds = {"Conv2D", "MatMul", "BiasAdd", "Relu", "Mean", "SparseSoftmaxCrossEntropyWithLogits"}
    return [(op.type, tf.as_dtype(op.get_attr("T")).name) for op in graph.get_operations() if op.type in kinds]


@pytest.mark.parametrize("name", sorted(SPECS))
def test_bf16_runs_backbone_convs_and_dense_in_bf16_and_head_and_loss_in_float32(name):
    spec, fw = SPECS[name], TFFramework()
    weights = init_weights(spec, (8, 8, 1), 10, seed=0)
    model = load(fw, spec, weights, (8, 8, 1), "bf16")
    x, y = images(8, (8, 8, 1), seed=1), np.zeros(8, np.int64)
    fw.fine_tune(model, TrainData(x, y, ((np.arange(8),),)), FineTuneConfig(), NullMeter())
    logits_of(fw, model, x, batch=8)
    ((step, _optimizer), forward) = model.compiled.values()
    forward_ops = graph_ops(forward, x)
    big = [(op, dtype) for op, dtype in forward_ops if op in ("Conv2D", "MatMul")]
    # the backbone's convs/dense in bf16, then the head's MatMul in float32
    assert big[:-1] and all(dtype == "bfloat16" for _, dtype in big[:-1]), big
    assert big[-1] == ("MatMul", "float32"), big
    assert {op for op, _ in big[:-1]} == ({"Conv2D"} if spec.family == "cnn" else {"MatMul"})
    assert ("Mean", "float32") in forward_ops or spec.family == "mlp"  # global pooling in float32
    assert ("SparseSoftmaxCrossEntropyWithLogits", "float32") in graph_ops(step, x, y)  # float32 loss
    fw.precision = "bf16"  # as prepare(Runtime(precision="bf16")) sets it
    ops = fw.info().details["bf16_ops"]
    assert ops == ["Conv2D", "Dense (backbone)"]
    # the info names every bf16 op kind this model runs
    assert ("Conv2D" if spec.family == "cnn" else "Dense (backbone)") in ops


@pytest.mark.parametrize("variant", VARIANTS)
def test_bf16_keeps_variables_optimizer_state_and_loss_float32(variant):
    spec = SPECS["mlp"]
    start, losses, after, model = one_adam_step(variant, spec, "bf16")
    assert all(v.dtype == "float32" for v in model.model.weights)
    ((_step, optimizer),) = model.compiled.values()
    assert all(slot.dtype == "float32" for slot in optimizer.m + optimizer.v)
    assert all(a.dtype == np.float32 for a in after.values()) and isinstance(losses[0], float)
    # the one step in bf16 moved the parameters like the fp32 step, up to bf16 gradient noise
    _, fp32_losses, fp32_after, _ = one_adam_step("graph", spec)
    assert 0 < abs(losses[0] - fp32_losses[0]) < 2e-2 * abs(fp32_losses[0])
    moved = np.concatenate([np.sign(after[k] - start[k]).ravel() for k in start])
    same = np.concatenate([np.sign(fp32_after[k] - start[k]).ravel() for k in start])
    assert (moved == same).mean() > 0.9


@pytest.mark.parametrize("name", sorted(SPECS))
def test_bf16_fine_tune_on_digits_learns(name):
    spec, data, fw = SPECS[name], load_digits_task(), TFFramework()
    model = load(fw, spec, init_weights(spec, (8, 8, 1), 10, seed=0), (8, 8, 1), "bf16")
    order = train_order(len(data.x_train), 32, epochs=6, seed=0)
    result = fw.fine_tune(model, TrainData(data.x_train, data.y_train, order), FineTuneConfig(), NullMeter())
    losses = np.array(result.losses).reshape(len(order), -1)
    assert losses[-1].mean() < 0.5 * losses[0].mean()
    logits = logits_of(fw, result.model, data.x_test, batch=64)
    accuracy = (logits.argmax(axis=1) == data.y_test).mean()
    assert accuracy > 0.85, f"bf16 {name}: test accuracy {accuracy:.3f}"
