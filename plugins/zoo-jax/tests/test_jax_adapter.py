"""zoo-jax against the NumPy reference: same logits, exact weight round trip, torch's Adam step,
frozen parameters untouched, real training on digits, lazy import, thread control."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
from importlib import metadata

import numpy as np
import pytest

pytest.importorskip("jax")

from zoo.batching import eval_order, train_order  # noqa: E402
from zoo.contract import EvalData, FineTuneConfig, Runtime, TrainData  # noqa: E402
from zoo.init import init_weights  # noqa: E402
from zoo.testing import NullMeter  # noqa: E402
from zoo.models import CORE_MODELS  # noqa: E402
from zoo.tasks.digits import load_digits_task  # noqa: E402
from zoo_jax.adapter import JaxFramework  # noqa: E402

#: The small MLP and CNN (the ResNets are tested in test_jax_resnet.py).
SPECS = list(CORE_MODELS)
MODELS = {spec.name: spec for spec in SPECS}
CLASSES = 10



def load(spec, weights, input_shape=(8, 8, 1), freeze="none"):
    return JaxFramework().load_pretrained(
        spec=spec, weights=weights, input_shape=input_shape, num_classes=CLASSES,
        device="cpu", precision="fp32", freeze=freeze,
    )


def logits(model, x: np.ndarray, batch_size: int = 16) -> np.ndarray:
    return JaxFramework().evaluate(model, EvalData(x, eval_order(len(x), batch_size)), NullMeter())[: len(x)]


@pytest.mark.parametrize("input_shape", [(8, 8, 1), (9, 9, 1), (7, 7, 3)])  # odd sizes: stride-2 padding
@pytest.mark.parametrize("name", sorted(MODELS))
def test_logits_match_numpy_reference(name, input_shape):
    spec = MODELS[name]
    weights = init_weights(spec, input_shape, CLASSES, seed=1)
    x = np.random.default_rng(2).random((37, *input_shape), dtype=np.float32)  # 37: a padded last batch
    out = logits(load(spec, weights, input_shape), x)
    assert out.dtype == np.float32 and out.shape == (37, CLASSES)
    np.testing.assert_allclose(out, spec.reference_forward(weights, x), rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_export_round_trips_loaded_weights_exactly(name):
    spec = MODELS[name]
    weights = init_weights(spec, (8, 8, 1), CLASSES, seed=3)
    exported = JaxFramework().export_weights(load(spec, weights))
    assert exported.keys() == weights.keys()
    for key, value in weights.items():
        assert exported[key].dtype == np.float32
        np.testing.assert_array_equal(exported[key], value, err_msg=key)


def test_load_rejects_misshaped_weights_naming_the_parameter():
    spec = MODELS["cnn"]
    weights = init_weights(spec, (8, 8, 1), CLASSES, seed=0)
    weights["conv2.kernel"] = weights["conv2.kernel"].transpose(3, 2, 0, 1)  # torch's OIHW
    with pytest.raises(ValueError, match="conv2.kernel"):
        load(spec, weights)


def _features(spec, weights, x: np.ndarray) -> np.ndarray:
    """The head's input in float64: the reference forward with an identity head."""
    width = weights["head.kernel"].shape[0]
    identity = {**weights, "head.kernel": np.eye(width), "head.bias": np.zeros(width)}
    return spec.reference_forward(identity, x)


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_one_adam_step_on_head_matches_torch_formula(name, weight_decay):
    spec = MODELS[name]
    weights = init_weights(spec, (8, 8, 1), CLASSES, seed=4)
    rng = np.random.default_rng(5)
    x = rng.random((16, 8, 8, 1), dtype=np.float32)
    y = rng.integers(0, CLASSES, 16)
    config = FineTuneConfig(learning_rate=1e-2, weight_decay=weight_decay, freeze="backbone")
    data = TrainData(x, y, order=((np.arange(16),),))
    fw = JaxFramework()
    result = fw.fine_tune(load(spec, weights, freeze="backbone"), data, config, NullMeter())
    new = fw.export_weights(result.model)

    feats = _features(spec, weights, x)
    z = feats @ weights["head.kernel"] + weights["head.bias"]
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    delta = (p - np.eye(CLASSES)[y]) / len(x)  # d(mean CE)/dz
    loss = -np.log(p[np.arange(len(x)), y]).mean()
    grads = {"head.kernel": feats.T @ delta, "head.bias": delta.sum(0)}
    for key, g in grads.items():
        w0 = weights[key].astype(np.float64)
        g = g + weight_decay * w0  # torch Adam's weight_decay: L2 in the gradient
        # t=1: m_hat = g, v_hat = g^2, so the step is lr * g / (|g| + eps).
        expected = w0 - config.learning_rate * g / (np.abs(g) + config.eps)
        np.testing.assert_allclose(new[key], expected, rtol=1e-5, atol=1e-7, err_msg=key)
    assert result.losses == pytest.approx([loss], rel=1e-5)
    for key in weights:
        if not key.startswith("head."):
            assert np.array_equal(new[key], weights[key]), f"frozen {key} changed"


def test_fine_tune_on_digits_learns_and_leaves_the_input_model_usable():
    task = load_digits_task()
    fw = JaxFramework()
    data = TrainData(task.x_train, task.y_train, train_order(len(task.x_train), 32, epochs=4, seed=0))
    for spec in SPECS:
        weights = init_weights(spec, (8, 8, 1), CLASSES, seed=0)
        model = load(spec, weights)
        result = fw.fine_tune(model, data, FineTuneConfig(), NullMeter())
        assert len(result.losses) == data.num_steps
        assert np.mean(result.losses[-20:]) < 0.5 * np.mean(result.losses[:20]), spec.name
        accuracy = (logits(result.model, task.x_test, 64).argmax(1) == task.y_test).mean()
        assert accuracy > 0.85, f"{spec.name}: test accuracy {accuracy:.3f}"
        # The step donates its buffers; the handle passed in must still hold the initial weights.
        np.testing.assert_array_equal(fw.export_weights(model)["head.kernel"], weights["head.kernel"])


def test_train_step_compiles_once_across_steps_and_fine_tunes():
    from zoo.models import MLPSpec
    from zoo_jax import steps

    spec = MLPSpec(name="tiny", description="a shape no other test compiles", hidden=(5,))
    weights = init_weights(spec, (8, 8, 1), CLASSES, seed=0)
    rng = np.random.default_rng(0)
    data = TrainData(rng.random((8, 8, 8, 1), dtype=np.float32), rng.integers(0, CLASSES, 8),
                     order=((np.arange(4), np.arange(4, 8)),) * 2)
    for _ in range(2):  # e.g. a warm-up fine-tune and a measured one, each on a fresh load
        JaxFramework().fine_tune(load(spec, weights), data, FineTuneConfig(), NullMeter())
    # both loads build equal modules: one step function, compiled once for every step of both calls
    step = steps.train_step_at(load(spec, weights).module, FineTuneConfig())
    if not hasattr(step, "_cache_size"):
        pytest.skip("this jax has no jit cache introspection")
    assert step._cache_size() == 1


def test_importing_plugin_does_not_import_jax():
    code = "import zoo_jax, sys; assert not {'jax', 'flax', 'optax'} & set(sys.modules), sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_plugin_is_registered_under_the_zoo_entry_point():
    names = {ep.name: ep.value for ep in metadata.entry_points(group="zoo")}
    assert names.get("jax") == "zoo_jax"


def test_subprocess_env_sizes_xla_cpu_intra_op_pool():
    env = dict(JaxFramework().subprocess_env(Runtime(device="cpu", precision="fp32", threads=3, seed=0)))
    assert env == {"XLA_PYTHON_CLIENT_PREALLOCATE": "false", "PJRT_NPROC": "3", "JAX_PLATFORMS": "cpu"}
    if not os.path.isdir("/proc/self/task"):
        pytest.skip("counting threads needs Linux /proc")
    code = (
        "import os, jax.numpy as jnp; (jnp.ones((64, 64)) @ jnp.ones((64, 64))).block_until_ready();"
        "print(*(open(f'/proc/self/task/{t}/comm').read().strip() for t in os.listdir('/proc/self/task')))"
    )
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, check=True,
                         capture_output=True, text=True).stdout.split()
    pool = collections.Counter(out)["tf_XLAEigen"]
    if pool == 0:
        pytest.skip("this jaxlib no longer names its intra-op threads tf_XLAEigen; recheck thread control")
    assert pool == 3, f"XLA:CPU intra-op pool has {pool} threads, expected 3"
