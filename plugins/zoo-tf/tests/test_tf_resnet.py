"""zoo-tf's ResNets against the NumPy reference: logits, exact export of parameters and BatchNorm
statistics, BatchNorm modes under each freeze policy, torch's running-variance update, the three
variants, and bf16. Small ResNets on tiny inputs; the full-size ones are compared with
torchvision and Keras's own ResNet50 in tests/test_resnet_parity.py."""

from __future__ import annotations


import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="TensorFlow is not installed (pip install 'zoo-tf[cpu]')")

from zoo.batching import eval_order  # noqa: E402
from zoo.contract import EvalData, FineTuneConfig, TrainData  # noqa: E402
from zoo.init import init_weights  # noqa: E402
from zoo.testing import NullMeter  # noqa: E402
from zoo.models import ResNetSpec, builtin_model  # noqa: E402
from zoo.models.spec import conv2d_reference  # noqa: E402
from zoo_tf.adapter import TFFramework  # noqa: E402

#: A small torchvision-style ResNet (7x7/2 stem + max-pool) and a small Keras-style one
#: (bottleneck, stride on the first 1x1, conv biases, Keras's BatchNorm eps and momentum).
MINI = {
    "mini-basic": ResNetSpec(name="mini-basic", description="", block="basic", stage_blocks=(1, 1),
                             stage_widths=(8, 16), stem_width=8),
    "mini-keras": ResNetSpec(name="mini-keras", description="", block="bottleneck", stage_blocks=(1, 2),
                             stage_widths=(4, 8), stem_width=8, stride_in="1x1", conv_bias=True, bn_eps=1.001e-5,
                             bn_momentum=0.01),
}
FW = TFFramework()



def start_weights(spec, shape, seed=0):
    """Seeded init with non-trivial BatchNorm statistics and affine parameters, and conv biases
    0.1-0.3 away from zero (so that L2 weight decay, not rounding noise, sets their gradient: a
    conv bias in front of a training-mode BatchNorm has loss gradient 0)."""
    weights = init_weights(spec, shape, 10, seed=seed)
    rng = np.random.default_rng(seed + 1)
    for name, value in weights.items():
        kind = name.rsplit(".", 1)[1]
        if kind in ("scale", "var"):
            weights[name] = rng.uniform(0.5, 1.5, value.shape).astype(np.float32)
        elif kind == "mean" or (kind == "bias" and not name.startswith("head.")):
            weights[name] = (rng.choice([-1, 1], value.shape) * rng.uniform(0.1, 0.3, value.shape)).astype(np.float32)
    return weights


def load(fw, spec, weights, shape, freeze="none", precision="fp32"):
    return fw.load_pretrained(spec=spec, weights=weights, input_shape=shape, num_classes=10, device="cpu",
                              precision=precision, freeze=freeze)


def images(n, shape, seed=0):
    return np.random.default_rng(seed).uniform(0.0, 1.0, (n, *shape)).astype(np.float32)


def logits(fw, model, x):
    return fw.evaluate(model, EvalData(x, eval_order(len(x), 4)), NullMeter())[: len(x)]


@pytest.mark.parametrize("name,shape", [("mini-basic", (13, 13, 3)), ("mini-keras", (17, 15, 3)),
                                        ("resnet20", (32, 32, 3))])
def test_resnet_logits_match_numpy_reference(name, shape):
    """Odd sizes: every stride-2 conv and the max-pool see odd inputs (symmetric padding shows)."""
    spec = MINI.get(name) or builtin_model(name)
    weights = start_weights(spec, shape)
    x = images(6, shape)
    err = np.abs(logits(FW, load(FW, spec, weights, shape), x) - spec.reference_forward(weights, x)).max()
    assert err <= 1e-4, err


def test_export_round_trips_parameters_and_statistics_exactly():
    spec, shape = MINI["mini-keras"], (16, 16, 3)
    weights = start_weights(spec, shape)
    exported = FW.export_weights(load(FW, spec, weights, shape))
    assert exported.keys() == weights.keys()
    for key, value in weights.items():
        assert exported[key].dtype == np.float32 and np.array_equal(exported[key], value), key


def one_step(fw, spec, weights, x, y, freeze, config=None):
    model = load(fw, spec, weights, x.shape[1:], freeze)
    config = config or FineTuneConfig(freeze=freeze)
    return model, fw.fine_tune(model, TrainData(x, y, ((np.arange(len(x)),),)), config, NullMeter())


@pytest.mark.parametrize("freeze", ["none", "last-1", "backbone"])
def test_batchnorm_trains_exactly_where_its_scale_trains(freeze):
    """Statistics change exactly for ``updated_state_names``; a frozen BatchNorm layer is not
    trainable, so Keras runs it in inference mode inside fine_tune (a frozen backbone's loss is
    the reference's inference-mode loss)."""
    spec, shape = MINI["mini-keras"], (16, 16, 3)  # 3 blocks: last-1 trains one of them
    weights = start_weights(spec, shape)
    x, y = images(8, shape, seed=1), np.arange(8) % 10
    model, result = one_step(FW, spec, weights, x, y, freeze)
    after = FW.export_weights(result.model)
    updated = spec.updated_state_names(freeze, shape, 10)
    changed = {k for k in spec.state_names(shape, 10) if not np.array_equal(after[k], weights[k])}
    assert changed == updated
    from zoo_tf.resnet import TorchBatchNorm

    batchnorms = [layer for layer in model.model.layers if isinstance(layer, TorchBatchNorm)]
    assert {layer.name for layer in batchnorms if layer.trainable} == {k.rsplit(".", 1)[0] for k in updated}
    if freeze == "backbone":
        ref = spec.reference_forward(weights, x)
        p = np.exp(ref - ref.max(1, keepdims=True))
        loss = -np.log(p[np.arange(8), y] / p.sum(1)).mean()
        assert result.losses[0] == pytest.approx(loss, rel=1e-5)


def test_training_batchnorm_updates_running_statistics_with_the_unbiased_variance():
    """The stem BatchNorm after one step, from NumPy: new = (1 - m) * old + m * batch statistic,
    the variance unbiased (n / (n - 1), n = batch x H x W) as torch does, not Keras's biased one."""
    spec, shape = MINI["mini-keras"], (6, 6, 3)
    weights = start_weights(spec, shape)
    x, y = images(2, shape, seed=2), np.array([1, 2])
    after = FW.export_weights(one_step(FW, spec, weights, x, y, "none")[1].model)
    unit, m = spec.stem_conv(3), spec.bn_momentum
    h = conv2d_reference(x, weights["conv1.kernel"], weights["conv1.bias"], unit.stride, unit.padding)
    n = h.shape[0] * h.shape[1] * h.shape[2]  # 2 x 3 x 3 = 18: n / (n - 1) = 1.06
    mean, var = h.mean(axis=(0, 1, 2)), h.var(axis=(0, 1, 2)) * n / (n - 1)
    np.testing.assert_allclose(after["bn1.mean"], (1 - m) * weights["bn1.mean"] + m * mean, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(after["bn1.var"], (1 - m) * weights["bn1.var"] + m * var, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("variant", ["xla", "eager"])
def test_variants_train_batchnorm_like_graph(variant):
    """The running-statistics assignments happen inside XLA and in eager mode as in the graph."""
    spec, shape = MINI["mini-basic"], (16, 16, 3)
    weights = start_weights(spec, shape)
    x, y = images(8, shape, seed=3), np.arange(8) % 10
    # eps 1e-3: well-conditioned (test_tf_variants.STEP_CONFIG); weight decay: see start_weights
    config = FineTuneConfig(eps=1e-3, weight_decay=1e-2)
    graph = FW.export_weights(one_step(FW, spec, weights, x, y, "none", config)[1].model)
    after = FW.export_weights(one_step(TFFramework(variant=variant), spec, weights, x, y, "none", config)[1].model)
    for key, value in graph.items():  # within 1e-5 of each tensor's scale
        assert np.abs(after[key] - value).max() <= 1e-5 * np.abs(value).max(), f"{variant} {key}"


def test_bf16_runs_the_resnet_convs_in_bfloat16_with_float32_batchnorm_and_head():
    spec, shape = MINI["mini-basic"], (16, 16, 3)  # 7x7 stem, max-pool, downsample
    weights = start_weights(spec, shape)
    x = images(8, shape)
    ref = spec.reference_forward(weights, x)
    model = load(FW, spec, weights, shape, precision="bf16")
    out = logits(FW, model, x)
    assert out.dtype == np.float32
    err = np.abs(out - ref).max()
    assert 1e-4 < err <= 2e-2 * np.abs(ref).max() + 2e-2, err
    result = FW.fine_tune(model, TrainData(x, np.arange(8) % 10, ((np.arange(8),),)), FineTuneConfig(), NullMeter())
    assert np.isfinite(result.losses).all()
    assert all(v.dtype == "float32" for v in model.model.weights)  # BatchNorm statistics included
    import tensorflow as tf

    (forward,) = [fn for key, fn in model.compiled.items() if key[0] == "forward"]
    graph = forward.get_concrete_function(x[:4]).graph
    ops = [(op.type, tf.as_dtype(op.get_attr("T")).name) for op in graph.get_operations() if op.type in ("Conv2D", "MatMul")]
    assert all(dtype == "bfloat16" for op, dtype in ops if op == "Conv2D") and ops[-1] == ("MatMul", "float32"), ops
