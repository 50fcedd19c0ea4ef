"""The NumPy reference defines "the same model"; check it against independent arithmetic."""

import numpy as np
import pytest

from zoo.init import init_weights, with_new_head
from zoo.models import BUILTIN_MODELS, CNNSpec, ConvLayer, MLPSpec
from zoo.models.spec import conv2d_reference


def naive_conv(x, k, b, stride, pad):
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    n, h, w, cin = x.shape
    kh, kw, _, cout = k.shape
    oh, ow = (h - kh) // stride + 1, (w - kw) // stride + 1
    out = np.zeros((n, oh, ow, cout))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, i * stride:i * stride + kh, j * stride:j * stride + kw, :]
            out[:, i, j, :] = np.tensordot(patch, k, axes=([1, 2, 3], [0, 1, 2])) + b
    return out


@pytest.mark.parametrize("stride,pad,size", [(1, 1, 8), (2, 1, 8), (2, 1, 9), (1, 0, 7), (2, 2, 5)])
def test_conv_reference_matches_naive_loop(stride, pad, size):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, size, size, 3))
    k = rng.normal(size=(3, 3, 3, 4))
    b = rng.normal(size=4)
    np.testing.assert_allclose(conv2d_reference(x, k, b, stride, pad), naive_conv(x, k, b, stride, pad), atol=1e-12)


def test_mlp_flattens_nhwc_row_major():
    spec = MLPSpec(name="t", description="", hidden=())
    x = np.arange(2 * 2 * 2 * 3, dtype=np.float64).reshape(2, 2, 2, 3)
    kernel = np.eye(12)[:, :12]
    out = spec.reference_forward({"head.kernel": kernel, "head.bias": np.zeros(12)}, x)
    np.testing.assert_array_equal(out, x.reshape(2, 12))


def test_cnn_parameter_shapes_are_canonical_hwio():
    spec = CNNSpec(name="t", description="", convs=(ConvLayer("conv1", 4, 3, 2, 1),))
    shapes = {p.name: p.shape for p in spec.parameters((9, 9, 3), 7)}
    assert shapes == {"conv1.kernel": (3, 3, 3, 4), "conv1.bias": (4,), "head.kernel": (4, 7), "head.bias": (7,)}


@pytest.mark.parametrize("spec", BUILTIN_MODELS, ids=lambda s: s.name)
def test_new_head_keeps_backbone_and_resizes_head(spec):
    src = init_weights(spec, (8, 8, 1), 5, seed=3)
    new = with_new_head(spec, src, (8, 8, 1), 10, seed=4)
    for name, value in src.items():
        if not name.startswith("head."):
            assert new[name] is value
    assert new["head.kernel"].shape[-1] == 10 and new["head.bias"].shape == (10,)
    assert spec.trainable_names("backbone", (8, 8, 1), 10) == {"head.kernel", "head.bias"}


def test_check_weights_names_every_problem():
    spec = BUILTIN_MODELS[0]
    weights = init_weights(spec, (8, 8, 1), 10, seed=0)
    weights.pop("fc1.bias")
    weights["head.kernel"] = weights["head.kernel"][:, :3]
    weights["extra"] = np.zeros(1)
    with pytest.raises(ValueError) as exc:
        spec.check_weights(weights, (8, 8, 1), 10)
    msg = str(exc.value)
    assert "missing fc1.bias" in msg and "unexpected extra" in msg and "head.kernel: shape" in msg


def test_init_is_seeded():
    spec = BUILTIN_MODELS[1]
    a, b = init_weights(spec, (8, 8, 1), 10, 1), init_weights(spec, (8, 8, 1), 10, 1)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["conv1.kernel"], init_weights(spec, (8, 8, 1), 10, 2)["conv1.kernel"])
