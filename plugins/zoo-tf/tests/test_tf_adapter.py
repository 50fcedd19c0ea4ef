"""The TF adapter computes the reference model, loads and exports weights exactly, and trains
with torch's Adam formula; in-process, on tiny inputs."""

from __future__ import annotations


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

FW = TFFramework()
SPECS = {spec.name: spec for spec in CORE_MODELS}  # the MLP and the CNN; ResNets: test_tf_resnet.py



def load(spec: ModelSpec, weights, input_shape, freeze: str = "none"):
    return FW.load_pretrained(
        spec=spec,
        weights=weights,
        input_shape=input_shape,
        num_classes=10,
        device="cpu",
        precision="fp32",
        freeze=freeze,
    )


def images(n: int, shape, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 1.0, size=(n, *shape)).astype(np.float32)


@pytest.mark.parametrize("shape", [(8, 8, 1), (9, 9, 3)], ids=["8x8x1", "odd-9x9x3"])
@pytest.mark.parametrize("name", sorted(SPECS))
def test_logits_match_numpy_reference(name, shape):
    # 9x9 makes the stride-2 conv see an odd size (asymmetric SAME padding would show); three
    # channels make the MLP's NHWC flatten order matter.
    spec = SPECS[name]
    weights = init_weights(spec, shape, 10, seed=3)
    x = images(10, shape, seed=4)
    model = load(spec, weights, shape)
    logits = FW.evaluate(model, EvalData(x, eval_order(len(x), 4)), NullMeter())
    assert logits.dtype == np.float32 and logits.shape == (12, 10)  # last batch padded by 2
    err = np.abs(logits[:10] - spec.reference_forward(weights, x)).max()
    assert err < 1e-4, f"{name} {shape}: max abs logit error {err:.2e}"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_export_weights_round_trips_exactly(name):
    spec = SPECS[name]
    weights = init_weights(spec, (8, 8, 1), 10, seed=5)
    exported = FW.export_weights(load(spec, weights, (8, 8, 1)))
    assert exported.keys() == weights.keys()
    for key, value in weights.items():
        assert exported[key].dtype == np.float32
        np.testing.assert_array_equal(exported[key], value, err_msg=key)


def test_load_pretrained_names_misshaped_weights():
    spec = SPECS["mlp"]
    weights = init_weights(spec, (8, 8, 1), 10, seed=0)
    weights["head.kernel"] = weights["head.kernel"][:, :5]
    with pytest.raises(ValueError, match="head.kernel"):
        load(spec, weights, (8, 8, 1))


# --- Adam: a fine-tune with the backbone frozen trains a linear softmax head on fixed
# features, which NumPy can follow exactly.


def head_features(spec: ModelSpec, weights, x: np.ndarray) -> np.ndarray:
    """The backbone's output (pooled or last hidden features): the reference forward pass with
    an identity head."""
    width = weights["head.kernel"].shape[0]
    return spec.reference_forward({**weights, "head.kernel": np.eye(width), "head.bias": np.zeros(width)}, x)


def head_gradients(feats: np.ndarray, y: np.ndarray, kernel: np.ndarray, bias: np.ndarray):
    """Gradients of the mean softmax cross-entropy with respect to the head."""
    logits = feats @ kernel + bias
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    p /= len(y)
    return feats.T @ p, p.sum(axis=0)


def numpy_adam_head(feats, y, weights, batches, config: FineTuneConfig, keras_epsilon: bool = False):
    """torch.optim.Adam on the head, in float64; ``keras_epsilon`` switches to Keras's formula."""
    params = {k: weights[k].astype(np.float64) for k in ("head.kernel", "head.bias")}
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(p) for k, p in params.items()}
    b1, b2, lr, eps = config.beta1, config.beta2, config.learning_rate, config.eps
    for t, idx in enumerate(batches, start=1):
        grads = dict(zip(params, head_gradients(feats[idx], y[idx], params["head.kernel"], params["head.bias"])))
        for k, g in grads.items():
            g = g + config.weight_decay * params[k]
            m[k] = b1 * m[k] + (1 - b1) * g
            v[k] = b2 * v[k] + (1 - b2) * g * g
            if keras_epsilon:
                params[k] -= lr * np.sqrt(1 - b2**t) / (1 - b1**t) * m[k] / (np.sqrt(v[k]) + eps)
            else:
                params[k] -= lr * (m[k] / (1 - b1**t)) / (np.sqrt(v[k] / (1 - b2**t)) + eps)
    return params


def fine_tune_head(spec: ModelSpec, steps: int, config: FineTuneConfig):
    weights = init_weights(spec, (8, 8, 1), 10, seed=1)
    x = images(8 * steps, (8, 8, 1), seed=2)
    y = np.random.default_rng(3).integers(0, 10, size=len(x)).astype(np.int64)
    batches = tuple(np.arange(i * 8, (i + 1) * 8) for i in range(steps))
    model = load(spec, weights, (8, 8, 1), freeze="backbone")
    result = FW.fine_tune(model, TrainData(x, y, (batches,)), config, NullMeter())
    assert len(result.losses) == steps
    after = FW.export_weights(result.model)
    for key in weights:
        if not key.startswith("head."):
            np.testing.assert_array_equal(after[key], weights[key], err_msg=f"frozen {key} changed")
    return weights, head_features(spec, weights, x), y, batches, after


@pytest.mark.parametrize("name", sorted(SPECS))
def test_first_adam_step_is_torch_formula(name):
    # At t=1 torch's Adam moves each parameter by lr * g / (|g| + eps).
    config = FineTuneConfig(learning_rate=1e-2, eps=1e-8, freeze="backbone")
    weights, feats, y, batches, after = fine_tune_head(SPECS[name], 1, config)
    gk, gb = head_gradients(feats[batches[0]], y[batches[0]], weights["head.kernel"], weights["head.bias"])
    lr, eps = config.learning_rate, config.eps
    np.testing.assert_allclose(
        after["head.kernel"], weights["head.kernel"] - lr * gk / (np.abs(gk) + eps), rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(
        after["head.bias"], weights["head.bias"] - lr * gb / (np.abs(gb) + eps), rtol=1e-5, atol=1e-7
    )


@pytest.mark.parametrize("name", sorted(SPECS))
def test_adam_steps_match_torch_formula_with_l2_weight_decay(name):
    # eps near the gradients' size, so that where eps sits in the formula shows (Keras's
    # "epsilon hat" would fail), and L2 weight decay added to the gradient.
    config = FineTuneConfig(learning_rate=1e-2, eps=1e-2, weight_decay=0.1, freeze="backbone")
    weights, feats, y, batches, after = fine_tune_head(SPECS[name], 3, config)
    expected = numpy_adam_head(feats, y, weights, batches, config)
    for key, value in expected.items():
        np.testing.assert_allclose(after[key], value, rtol=1e-5, atol=1e-7, err_msg=key)
    keras_style = numpy_adam_head(feats, y, weights, batches, config, keras_epsilon=True)
    assert np.abs(keras_style["head.kernel"] - expected["head.kernel"]).max() > 1e-4  # the test can tell


# --- a real fine-tune


@pytest.mark.parametrize("name", sorted(SPECS))
def test_fine_tune_on_digits_learns(name):
    spec, data = SPECS[name], load_digits_task()
    weights = init_weights(spec, (8, 8, 1), 10, seed=0)
    model = load(spec, weights, (8, 8, 1))
    order = train_order(len(data.x_train), 32, epochs=6, seed=0)
    result = FW.fine_tune(model, TrainData(data.x_train, data.y_train, order), FineTuneConfig(), NullMeter())
    losses = np.array(result.losses).reshape(len(order), -1)
    assert losses[-1].mean() < 0.5 * losses[0].mean()
    logits = FW.evaluate(result.model, EvalData(data.x_test, eval_order(len(data.x_test), 64)), NullMeter())
    accuracy = (logits[: len(data.x_test)].argmax(axis=1) == data.y_test).mean()
    assert accuracy > 0.85, f"{name}: test accuracy {accuracy:.3f}"
    # the train step and the forward pass were each traced once for all those batches
    (step, _optimizer), forward = model.compiled.values()
    assert step.experimental_get_tracing_count() == forward.experimental_get_tracing_count() == 1
