"""zoo-jax's contract additions: ``meter.end_epoch`` handles, precision ``bf16`` (backbone in
bfloat16, head, logits, loss, parameters and optimiser state in float32), and variants.

bf16 tolerance against the float64 NumPy reference: max |logit error| <= 2e-2 * max|logit| + 2e-2.
bfloat16 keeps 8 significant bits (unit roundoff 2^-9 ~ 2e-3 relative); the zoo's models chain
three roundings per layer (inputs, weights, outputs), and measured errors are 2e-3 to 1e-2 abs
(2-6e-3 relative), so the bound has a ~3x margin. bf16 must also really be active: the error
must exceed 1e-4, which float32 stays far below (~5e-7).
"""

from __future__ import annotations

import contextlib
import functools
import re

import numpy as np
import pytest

jax = pytest.importorskip("jax")

from zoo.batching import eval_order, train_order  # noqa: E402
from zoo.contract import EvalData, FineTuneConfig, Runtime, TrainData  # noqa: E402
from zoo.init import init_weights  # noqa: E402
from zoo.models import CORE_MODELS  # noqa: E402
from zoo.tasks.digits import load_digits_task  # noqa: E402
from zoo_jax.adapter import JaxFramework  # noqa: E402

SPECS = list(CORE_MODELS)  # the MLP and the CNN; ResNets: test_jax_resnet.py
MODELS = {spec.name: spec for spec in SPECS}
CLASSES = 10


class EpochMeter:
    """Counts steps; at each epoch end evaluates the handle at once (as the host may) and keeps it."""

    def __init__(self, x_eval: np.ndarray | None = None):
        self.steps = 0
        self.x_eval = x_eval
        self.handles: list = []
        self.steps_at_end: list[int] = []
        self.logits_at_end: list[np.ndarray] = []

    @contextlib.contextmanager
    def step(self, samples: int):
        yield
        self.steps += 1

    def end_epoch(self, model) -> None:
        self.handles.append(model)
        self.steps_at_end.append(self.steps)
        if self.x_eval is not None:
            self.logits_at_end.append(logits(model, self.x_eval))


class LegacyMeter:
    """A meter written before ``end_epoch`` existed."""

    @contextlib.contextmanager
    def step(self, samples: int):
        yield


def load(spec, weights, precision="fp32", input_shape=(8, 8, 1), freeze="none"):
    return JaxFramework().load_pretrained(
        spec=spec, weights=weights, input_shape=input_shape, num_classes=CLASSES,
        device="cpu", precision=precision, freeze=freeze,
    )


def logits(model, x: np.ndarray, batch_size: int = 16) -> np.ndarray:
    return JaxFramework().evaluate(model, EvalData(x, eval_order(len(x), batch_size)), EpochMeter())[: len(x)]


def small_data(epochs: int, steps: int = 3, batch: int = 8, seed: int = 0) -> TrainData:
    rng = np.random.default_rng(seed)
    n = steps * batch
    return TrainData(rng.random((n, 8, 8, 1), dtype=np.float32), rng.integers(0, CLASSES, n),
                     train_order(n, batch, epochs=epochs, seed=seed))


# -- end_epoch ---------------------------------------------------------------------------------

@pytest.mark.parametrize("freeze", ["none", "backbone"])
def test_end_epoch_once_per_epoch_with_the_current_model_that_stays_valid(freeze):
    spec = MODELS["mlp"]
    weights = init_weights(spec, (8, 8, 1), CLASSES, seed=0)
    x_eval = np.random.default_rng(9).random((20, 8, 8, 1), dtype=np.float32)
    data = small_data(epochs=3)
    fw = JaxFramework()
    meter = EpochMeter(x_eval)
    result = fw.fine_tune(load(spec, weights, freeze=freeze), data, FineTuneConfig(learning_rate=1e-2), meter)

    assert meter.steps_at_end == [3, 6, 9]  # after the last step of each epoch, once each
    # The handle was the model *at that epoch's end*: training on only the first e epochs
    # (a prefix of the same run, same fresh-optimiser start) gives the same logits.
    for e in (1, 2):
        prefix = TrainData(data.x, data.y, data.order[:e])
        alone = fw.fine_tune(load(spec, weights, freeze=freeze), prefix, FineTuneConfig(learning_rate=1e-2), EpochMeter())
        np.testing.assert_allclose(meter.logits_at_end[e - 1], logits(alone.model, x_eval), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(meter.logits_at_end[-1], logits(result.model, x_eval))
    assert not np.allclose(meter.logits_at_end[0], meter.logits_at_end[-1])  # it did train
    # Later steps donated the training buffers; the handles kept by the host still work, unchanged.
    for handle, seen in zip(meter.handles, meter.logits_at_end):
        np.testing.assert_array_equal(logits(handle, x_eval), seen)
        assert all(not v.is_deleted() for v in handle.params.values())
        fw.export_weights(handle)
    # ... and still hold the frozen parameters as loaded.
    if freeze == "backbone":
        for handle in meter.handles:
            np.testing.assert_array_equal(fw.export_weights(handle)["fc1.kernel"], weights["fc1.kernel"])


def test_meter_without_end_epoch_still_trains():
    spec = MODELS["mlp"]
    result = JaxFramework().fine_tune(load(spec, init_weights(spec, (8, 8, 1), CLASSES, seed=0)),
                                      small_data(epochs=2), FineTuneConfig(), LegacyMeter())
    assert len(result.losses) == 6


# -- bf16 --------------------------------------------------------------------------------------

def bf16_bound(reference: np.ndarray) -> float:
    return 2e-2 * float(np.abs(reference).max()) + 2e-2


@pytest.mark.parametrize("input_shape", [(8, 8, 1), (9, 9, 3)])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_bf16_logits_match_reference_to_bf16_accuracy_and_bf16_is_active(name, input_shape):
    spec = MODELS[name]
    weights = init_weights(spec, input_shape, CLASSES, seed=1)
    x = np.random.default_rng(2).random((37, *input_shape), dtype=np.float32)
    reference = spec.reference_forward(weights, x)
    with jax.default_matmul_precision("highest"):  # as prepare() sets it: must not upcast bf16
        out = logits(load(spec, weights, "bf16", input_shape), x)
        fp32 = logits(load(spec, weights, "fp32", input_shape), x)
    assert out.dtype == np.float32 and out.shape == (37, CLASSES)
    error = float(np.abs(out - reference).max())
    assert error <= bf16_bound(reference), f"bf16 error {error:.2e} above {bf16_bound(reference):.2e}"
    assert error > 1e-4, f"bf16 error {error:.2e} is float32-sized: is bf16 really active?"
    assert float(np.abs(fp32 - reference).max()) < 1e-5


def _ops(hlo: str) -> list[tuple[str, str]]:
    """(op, operand and result types) of every dot_general and convolution in StableHLO text."""
    return [(m.group(1), m.group(2)) for m in re.finditer(r"stablehlo\.(dot_general|convolution)\b.*?: \(([^\n]*)", hlo)]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_bf16_program_runs_backbone_in_bf16_and_head_params_state_loss_in_fp32(name):
    """What jax asks XLA for, under matmul precision "highest": every backbone dot/conv (forward
    and backward) has bfloat16 operands and result; the head's three (forward, kernel gradient,
    input gradient) are float32; parameters, optimiser state and loss come out float32."""
    import jax.numpy as jnp

    from zoo_jax.steps import forward, make_optimizer, train_step

    spec = MODELS[name]
    model = load(spec, init_weights(spec, (8, 8, 1), CLASSES, seed=0), "bf16")
    config = FineTuneConfig()
    opt_state = make_optimizer(config).init(model.params)
    x, y = jnp.zeros((4, 8, 8, 1), jnp.float32), jnp.zeros((4,), jnp.int32)
    with jax.default_matmul_precision("highest"):
        step = train_step.lower(model.module, config, model.params, {}, opt_state, {}, x, y)
        infer = forward.lower(model.module, model.params, x)
    layers = sum(1 for k in model.params if k.endswith(".kernel")) - 1  # backbone layers
    for hlo, n_backbone, n_head in ((infer.as_text(), layers, 1), (step.as_text(), None, 3)):
        ops = _ops(hlo)
        assert "HIGHEST" in hlo or "highest" in hlo
        bf16 = [o for o in ops if "bf16" in o[1]]
        f32 = [o for o in ops if "bf16" not in o[1]]
        assert all("f32" not in types for _, types in bf16), bf16  # no mixed (upcast) dots
        assert all(types.count("f32") == 3 for _, types in f32), f32  # two operands and the result
        assert len(f32) == n_head, f32
        if n_backbone is not None:
            assert len(bf16) == n_backbone
        else:
            assert len(bf16) == 3 * layers - 1  # forward, weight and input gradient (none into x)
    out = jax.eval_shape(functools.partial(train_step, model.module, config), model.params, {}, opt_state, {}, x, y)
    dtypes = {str(leaf.dtype) for leaf in jax.tree.leaves(out[:3]) if jnp.issubdtype(leaf.dtype, jnp.floating)}
    assert dtypes == {"float32"}, dtypes  # parameters and Adam's moments
    assert out[3].dtype == jnp.float32  # the loss
    assert all(v.dtype == jnp.float32 for v in model.params.values())


def test_bf16_fine_tune_on_digits_learns_with_float32_params():
    task = load_digits_task()
    fw = JaxFramework()
    data = TrainData(task.x_train, task.y_train, train_order(len(task.x_train), 32, epochs=4, seed=0))
    for spec in SPECS:
        weights = init_weights(spec, (8, 8, 1), CLASSES, seed=0)
        meter = EpochMeter()
        with jax.default_matmul_precision("highest"):
            result = fw.fine_tune(load(spec, weights, "bf16"), data, FineTuneConfig(), meter)
            out = logits(result.model, task.x_test, 64)
        assert len(result.losses) == data.num_steps and len(meter.handles) == 4
        assert all(v.dtype == np.float32 for v in result.model.params.values())
        assert np.mean(result.losses[-20:]) < 0.5 * np.mean(result.losses[:20]), spec.name
        accuracy = (out.argmax(1) == task.y_test).mean()
        assert accuracy > 0.85, f"{spec.name} bf16: test accuracy {accuracy:.3f}"


# -- plan, info, variants ------------------------------------------------------------------------

def test_supports_bf16_and_reports_bf16_ops_and_variant():
    fw = JaxFramework()
    for spec in SPECS:
        for device in ("cpu", "gpu"):
            assert fw.supports(spec, device, "bf16").ok
    assert not fw.supports(SPECS[0], "cpu", "fp16").ok
    assert list(fw.variants)[0] == "jit"
    fw.prepare(Runtime(device="cpu", precision="bf16", threads=2, seed=0))
    details = fw.info().details
    assert details["variant"] == "jit"
    assert any("conv" in op for op in details["bf16_ops"]) and any("dense" in op for op in details["bf16_ops"])
    assert not any("head" in op and "backbone" not in op for op in details["bf16_ops"])
    fw.prepare(Runtime(device="cpu", precision="fp32", threads=2, seed=0, variant="jit"))
    assert fw.info().details["bf16_ops"] == []
    with pytest.raises(ValueError, match="nojit"):
        fw.prepare(Runtime(device="cpu", precision="fp32", threads=2, seed=0, variant="nojit"))


def test_sync_variant_turns_cpu_async_dispatch_off_and_is_refused_on_gpu():
    import jax

    fw = JaxFramework()
    try:
        fw.prepare(Runtime(device="cpu", precision="fp32", threads=2, seed=0, variant="sync"))
        assert fw.info().details["cpu_async_dispatch"] is False and fw.info().details["variant"] == "sync"
        with pytest.raises(ValueError, match="only changes how XLA:CPU dispatches"):
            fw.prepare(Runtime(device="gpu", precision="fp32", threads=2, seed=0, variant="sync"))
    finally:
        fw.prepare(Runtime(device="cpu", precision="fp32", threads=2, seed=0, variant="jit"))
    assert jax.config.values["jax_cpu_enable_async_dispatch"] is True
