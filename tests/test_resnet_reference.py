"""The ResNet specs and their float64 NumPy reference: structure, BatchNorm and max-pool
arithmetic, freeze policies, and logits equal to torchvision's own models.

torchvision: PyPI's torchvision wheels are CUDA builds; beside the CPU torch wheel CI pins they
fail at import ("operator torchvision::nms does not exist") because their compiled ops cannot
load. ``tests/torchvision_mirror.py`` therefore rebuilds torchvision's ResNet in plain torch.nn,
with torchvision's module and state_dict names, and every test here runs on it; the tests marked
``real torchvision`` run the real ``torchvision.models.resnet18/resnet50`` when torchvision imports
(with its op schemas declared if only its compiled ops fail to load) and are skipped otherwise.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from zoo.init import init_weights, with_new_head
from zoo.models import BUILTIN_MODELS, RESNET_MODELS, builtin_model
from zoo.models.spec import batchnorm_reference, maxpool2d_reference

torch = pytest.importorskip("torch")
import torchvision_mirror as tvm  # noqa: E402


def torch_logits(model, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()


def import_state_dict(model, tmp_path, name="m.pth"):
    from zoo.importers.torchvision import import_torchvision

    path = tmp_path / name
    torch.save(model.state_dict(), path)
    return import_torchvision(path)


def test_maxpool_reference_matches_a_loop_and_zero_padding_after_relu():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 7, 6, 3))
    out = maxpool2d_reference(x, 3, 2, 1)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
    naive = np.array([[[[padded[n, 2 * i:2 * i + 3, 2 * j:2 * j + 3, c].max() for c in range(3)]
                        for j in range(out.shape[2])] for i in range(out.shape[1])] for n in range(2)])
    np.testing.assert_array_equal(out, naive)
    relu_x = np.maximum(x, 0)  # Keras pads with zeros: the same after a ReLU
    zero_padded = np.pad(relu_x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    np.testing.assert_array_equal(maxpool2d_reference(relu_x, 3, 2, 1), maxpool2d_reference(zero_padded, 3, 2, 0))
    assert torch.equal(torch.nn.functional.max_pool2d(torch.from_numpy(x).permute(0, 3, 1, 2), 3, 2, 1),
                       torch.from_numpy(out).permute(0, 3, 1, 2))


def test_batchnorm_reference_is_torch_eval_mode():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 4, 4, 5)).astype(np.float32)
    bn = tvm.randomise_batchnorm(torch.nn.BatchNorm2d(5))
    want = bn(torch.from_numpy(x).permute(0, 3, 1, 2)).detach().permute(0, 2, 3, 1).numpy()
    got = batchnorm_reference(x, bn.weight.detach().numpy(), bn.bias.detach().numpy(), bn.running_mean.numpy(),
                              bn.running_var.numpy(), bn.eps)
    np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("name,params,gmacs", [("resnet18", 11_689_512, 1.814), ("resnet50", 25_557_032, 4.089),
                                               ("resnet50-keras", 25_583_592, 3.858)])
def test_parameter_counts_and_flops_are_the_published_ones(name, params, gmacs):
    """torchvision's resnet18/50 and Keras's ResNet50 (trainable) counts; GMACs at 224x224."""
    spec = builtin_model(name)
    trainable = sum(int(np.prod(p.shape)) for p in spec.parameters((224, 224, 3), 1000) if p.trainable)
    assert trainable == params
    assert spec.forward_flops((224, 224, 3), 1000) / 2e9 == pytest.approx(gmacs, abs=1e-3)


def test_canonical_names_follow_torchvision():
    names = [p.name for p in builtin_model("resnet50").parameters((224, 224, 3), 10)]
    assert names[:5] == ["conv1.kernel", "bn1.scale", "bn1.bias", "bn1.mean", "bn1.var"]
    assert "layer1.0.downsample.conv.kernel" in names and "layer1.0.downsample.bn.var" in names
    assert "layer2.0.conv3.kernel" in names and "layer2.1.downsample.conv.kernel" not in names
    assert names[-2:] == ["head.kernel", "head.bias"]
    shapes = {p.name: p.shape for p in builtin_model("resnet50").parameters((224, 224, 3), 10)}
    assert shapes["layer2.0.conv2.kernel"] == (3, 3, 128, 128) and shapes["head.kernel"] == (2048, 10)
    keras = {p.name for p in builtin_model("resnet50-keras").parameters((224, 224, 3), 10)}
    assert "layer1.0.conv1.bias" in keras and "layer1.0.conv1.bias" not in names
    r20 = {p.name: p.shape for p in builtin_model("resnet20").parameters((32, 32, 3), 10)}
    assert r20["conv1.kernel"] == (3, 3, 3, 16) and r20["layer2.0.downsample.conv.kernel"] == (1, 1, 16, 32)
    assert "layer1.0.downsample.conv.kernel" not in r20  # option B only where the shape changes


@pytest.mark.parametrize("name,build,size", [("resnet18", tvm.resnet18, 64), ("resnet50", tvm.resnet50, 64),
                                             ("resnet20", tvm.resnet20, 32)])
def test_reference_matches_torchvision_topology_in_torch(name, build, size, tmp_path):
    """Import a torchvision-named state_dict, run the NumPy reference: fp32 eval logits within 1e-4."""
    torch.manual_seed(0)
    model = tvm.randomise_batchnorm(build(num_classes=7))
    imported = import_state_dict(model, tmp_path)
    assert imported.model == name and imported.num_classes == 7
    x = np.random.default_rng(2).normal(size=(2, size, size, 3)).astype(np.float32)
    got = builtin_model(name).reference_forward(imported.weights, x)
    np.testing.assert_allclose(got, torch_logits(model, x), atol=1e-4, rtol=0)


def test_the_keras_topology_differs_from_torchvision_on_the_same_weights(tmp_path):
    """Why resnet50-keras is its own model: same shapes, stride elsewhere, different logits."""
    torch.manual_seed(0)
    model = tvm.randomise_batchnorm(tvm.resnet50(num_classes=3))
    imported = import_state_dict(model, tmp_path)
    weights = dict(imported.weights)
    keras = builtin_model("resnet50-keras")
    for p in keras.parameters((64, 64, 3), 3):
        if p.name not in weights:  # the conv biases Keras has and torchvision has not
            weights[p.name] = np.zeros(p.shape, np.float32)
    x = np.random.default_rng(3).normal(size=(1, 64, 64, 3)).astype(np.float32)
    diff = np.abs(keras.reference_forward(weights, x) - builtin_model("resnet50").reference_forward(imported.weights, x))
    assert diff.max() > 1e-2


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_reference_matches_the_real_torchvision(name, tmp_path):
    """real torchvision: torchvision.models.resnetXX(weights=None), state_dict -> import -> reference."""
    tv = tvm.import_real_torchvision()
    if tv is None:
        pytest.skip("torchvision is not importable here (see the module docstring)")
    torch.manual_seed(0)
    model = tvm.randomise_batchnorm(getattr(tv.models, name)(weights=None, num_classes=5))
    imported = import_state_dict(model, tmp_path)
    assert imported.model == name
    x = np.random.default_rng(4).normal(size=(2, 64, 64, 3)).astype(np.float32)
    np.testing.assert_allclose(builtin_model(name).reference_forward(imported.weights, x), torch_logits(model, x),
                               atol=1e-4, rtol=0)


def test_resnet50_reference_is_fast_enough_for_ci():
    spec = builtin_model("resnet50")
    weights = init_weights(spec, (64, 64, 3), 10, seed=0)
    x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype(np.float32)
    t0 = time.perf_counter()
    assert spec.reference_forward(weights, x).shape == (2, 10)
    assert time.perf_counter() - t0 < 20


def test_init_makes_batchnorm_an_identity_and_keeps_kernels_seeded():
    spec = builtin_model("resnet20")
    w = init_weights(spec, (32, 32, 3), 10, seed=0)
    assert np.all(w["bn1.scale"] == 1) and np.all(w["bn1.var"] == 1)
    assert np.all(w["bn1.mean"] == 0) and np.all(w["layer1.0.bn2.bias"] == 0)
    assert np.array_equal(w["layer3.2.conv2.kernel"], init_weights(spec, (32, 32, 3), 10, seed=0)["layer3.2.conv2.kernel"])
    assert w["conv1.kernel"].std() > 0
    new = with_new_head(spec, w, (32, 32, 3), 4, seed=1)
    assert new["head.kernel"].shape == (64, 4) and new["layer3.2.bn2.var"] is w["layer3.2.bn2.var"]


def test_freeze_policies():
    spec = builtin_model("resnet18")
    shape, n = (32, 32, 3), 10
    params = spec.parameters(shape, n)
    state = {p.name for p in params if not p.trainable}
    assert state and all(s.endswith((".mean", ".var")) for s in state)
    none = spec.trainable_names("none", shape, n)
    assert none == {p.name for p in params} - state
    assert spec.trainable_names("backbone", shape, n) == {"head.kernel", "head.bias"}
    last2 = spec.trainable_names("last-2", shape, n)
    assert last2 == {p.name for p in params if p.trainable and p.name.startswith(("layer4.", "head."))}
    last3 = spec.trainable_names("last-3", shape, n)
    assert {x for x in last3 - last2} == {x for x in none if x.startswith("layer3.1.")}
    assert "conv1.kernel" not in spec.trainable_names("last-8", shape, n)  # the stem is never a block
    with pytest.raises(ValueError, match="only 8 blocks"):
        spec.trainable_names("last-9", shape, n)
    for bad in ("last-0", "last", "head", "all"):
        with pytest.raises(ValueError, match="unknown freeze policy"):
            spec.trainable_names(bad, shape, n)
    assert spec.updated_state_names("backbone", shape, n) == frozenset()
    assert spec.updated_state_names("last-1", shape, n) == {f"layer4.1.{b}.{s}" for b in ("bn1", "bn2")
                                                            for s in ("mean", "var")}
    assert len(spec.batchnorm_layers(shape, n)) == 1 + 8 * 2 + 3


def test_freeze_last_n_for_the_small_models():
    mlp, cnn = builtin_model("mlp"), builtin_model("cnn")
    assert mlp.trainable_names("last-1", (8, 8, 1), 10) == {"fc2.kernel", "fc2.bias", "head.kernel", "head.bias"}
    assert cnn.trainable_names("last-2", (8, 8, 1), 10) == {"conv2.kernel", "conv2.bias", "conv3.kernel",
                                                             "conv3.bias", "head.kernel", "head.bias"}
    assert cnn.trainable_names("last-3", (8, 8, 1), 10) == cnn.trainable_names("none", (8, 8, 1), 10)


def test_every_builtin_model_has_a_consistent_reference():
    for spec in BUILTIN_MODELS:
        shape = (32, 32, 3)
        w = init_weights(spec, shape, 3, seed=0)
        spec.check_weights(w, shape, 3)
        if spec in RESNET_MODELS and spec.name.startswith("resnet50"):
            continue  # covered above at 64x64
        out = spec.reference_forward(w, np.zeros((1, *shape), np.float32))
        assert out.shape == (1, 3) and np.all(np.isfinite(out))
