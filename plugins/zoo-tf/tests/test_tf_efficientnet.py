"""zoo-tf's EfficientNet-Lite against the NumPy reference on tiny inputs: TF ``SAME`` padding
(asymmetric at stride 2, on even and odd sizes), depthwise kernels by role, ReLU6, BatchNorm in
inference mode with non-trivial statistics, the seed head, exact export, and bf16. The real
ImageNet weights are checked in every framework in tests/test_efficientnet_parity.py."""

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from zoo.batching import eval_order  # noqa: E402
from zoo.contract import EvalData, Runtime  # noqa: E402
from zoo.init import init_weights  # noqa: E402
from zoo.models import EfficientNetLiteSpec  # noqa: E402
from zoo.testing import NullMeter  # noqa: E402
from zoo_tf.adapter import TFFramework  # noqa: E402

#: Every block kind of Lite0 (expand 1 and 6, kernels 3 and 5, strides 1 and 2, residuals), narrow.
MINI = EfficientNetLiteSpec(name="mini-lite", description="", width=0.25, head_hidden=(16,))


def random_batchnorm(weights, seed=1):
    rng = np.random.default_rng(seed)
    out = dict(weights)
    for name, value in weights.items():
        kind = name.rsplit(".", 1)[1]
        if kind in ("scale", "var") and not name.startswith("head."):
            out[name] = rng.uniform(0.5, 1.5, value.shape).astype(np.float32)
        elif kind in ("mean", "bias") and not name.startswith("head."):
            out[name] = rng.uniform(-0.3, 0.3, value.shape).astype(np.float32)
    return out


@pytest.fixture(scope="module")
def fw():
    adapter = TFFramework()
    adapter.prepare(Runtime("cpu", "fp32", threads=2, seed=0))
    return adapter


@pytest.mark.parametrize("size", [32, 29])
def test_logits_match_the_reference_with_same_padding(fw, size):
    shape = (size, size, 3)
    weights = random_batchnorm(init_weights(MINI, shape, 7, seed=0))
    x = np.random.default_rng(2).normal(size=(3, *shape)).astype(np.float32)
    model = fw.load_pretrained(MINI, weights, shape, 7, "cpu", "fp32", "backbone")
    got = fw.evaluate(model, EvalData(x, eval_order(3, 3)), NullMeter())[:3]
    want = MINI.reference_forward(weights, x)
    assert np.abs(got - want).max() <= 1e-4 * max(1.0, np.abs(want).max())
    exported = fw.export_weights(model)
    assert all(np.array_equal(exported[k], weights[k]) for k in weights)  # depthwise layout round-trips


def test_bf16_logits_stay_close_to_the_reference(fw):
    shape = (32, 32, 3)
    weights = random_batchnorm(init_weights(MINI, shape, 7, seed=0))
    x = np.random.default_rng(2).normal(size=(2, *shape)).astype(np.float32)
    model = fw.load_pretrained(MINI, weights, shape, 7, "cpu", "bf16", "backbone")
    got = fw.evaluate(model, EvalData(x, eval_order(2, 2)), NullMeter())[:2]
    want = MINI.reference_forward(weights, x)
    assert got.dtype == np.float32
    assert np.abs(got - want).max() <= 0.1 * np.abs(want).max()
