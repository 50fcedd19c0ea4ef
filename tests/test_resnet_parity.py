"""ResNets across frameworks: published topologies give their source model's own logits in every
plugin, one Adam step gives the same parameters and BatchNorm statistics, and the frozen-backbone
recipe gives the same accuracy. Every installed built-in plugin takes part.

Sources: torchvision's ResNet-18/50 (``tests/torchvision_mirror.py``, torchvision's names and
topology in plain torch.nn; PyPI's torchvision does not import beside the CPU torch wheel), saved
as a ``state_dict`` and as timm-named safetensors, and ``keras.applications.ResNet50(weights=None)``
saved with ``save_weights``; each with random kernels and non-trivial BatchNorm statistics.

BatchNorm running variance: torch moves it towards the *unbiased* batch variance, Keras and
Flax towards the biased one; zoo-tf and zoo-jax follow torch (``n / (n - 1)``, n = batch x H x W),
so running statistics are compared with the same tolerance as parameters.
"""

from __future__ import annotations


import numpy as np
import pytest

from conftest import INSTALLED_FRAMEWORKS as INSTALLED
from zoo.testing import NullMeter
from conftest import needs_two_frameworks as needs_two
from zoo.batching import eval_order, train_order
from zoo.checkpoints import load_checkpoint
from zoo.contract import EvalData, FineTuneConfig, TrainData
from zoo.importers import import_weights
from zoo.init import init_weights, with_new_head
from zoo.models import ResNetSpec, builtin_model
from zoo.models.spec import conv2d_reference, maxpool2d_reference, relu
from zoo.tasks.images import load_cifar_shaped

torch = pytest.importorskip("torch")
import torchvision_mirror as tvm  # noqa: E402

RESNET18 = builtin_model("resnet18")


def load(adapter, spec, weights, shape, classes, freeze="none"):
    return adapter.load_pretrained(spec=spec, weights=weights, input_shape=shape, num_classes=classes,
                                   device="cpu", precision="fp32", freeze=freeze)


def logits(adapter, model, x, batch=2):
    return adapter.evaluate(model, EvalData(x, eval_order(len(x), batch)), NullMeter())[: len(x)]


def rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Max abs difference relative to the tensor's scale (a per-element rtol means nothing at zeros)."""
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


# -- published topologies: the source model's own logits, in every plugin ----------------------

def torchvision_source(build, tmp_path, fmt):
    torch.manual_seed(0)
    model = tvm.randomise_batchnorm(build(num_classes=5))
    x = np.random.default_rng(1).normal(size=(2, 64, 64, 3)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    if fmt == "torchvision":
        path = tmp_path / "model.pth"
        torch.save(model.state_dict(), path)
    else:  # timm's model.safetensors: torchvision's names, no num_batches_tracked
        from safetensors.torch import save_file

        path = tmp_path / "model.safetensors"
        save_file({k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}, str(path))
    return path, x, want


def keras_source(tmp_path):
    """keras.applications.ResNet50 itself, built here once (the TF adapter has set up TensorFlow)."""
    pytest.importorskip("zoo_tf")
    from zoo_tf.modules import keras  # imports keras on the TensorFlow backend

    model = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3), classes=5, classifier_activation=None)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            for variable, (low, high) in zip((layer.gamma, layer.beta, layer.moving_mean, layer.moving_variance),
                                             ((0.5, 1.5), (-0.2, 0.2), (-0.5, 0.5), (0.5, 2.0))):
                variable.assign(rng.uniform(low, high, n))
        elif isinstance(layer, keras.layers.Conv2D):
            layer.bias.assign(rng.uniform(-0.1, 0.1, layer.bias.shape))
    path = tmp_path / "resnet50.weights.h5"
    model.save_weights(path)
    x = rng.normal(size=(2, 64, 64, 3)).astype(np.float32)
    return path, x, np.asarray(model(x, training=False))


@needs_two
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # Keras's save_weights, numpy 2
@pytest.mark.parametrize("source,model", [("torchvision", "resnet18"), ("torchvision", "resnet50"),
                                          ("hf", "resnet18"), ("keras", "resnet50-keras")])
def test_imported_weights_give_the_source_models_logits_in_every_plugin(adapters, source, model, tmp_path):
    if source == "keras":
        path, x, want = keras_source(tmp_path)
    else:
        path, x, want = torchvision_source(tvm.resnet18 if model == "resnet18" else tvm.resnet50, tmp_path, source)
    imported = import_weights(source, path)
    assert imported.model == model
    spec = builtin_model(model)
    errors = {}
    for name, adapter in adapters.items():
        got = logits(adapter, load(adapter, spec, imported.weights, x.shape[1:], 5), x)
        errors[name] = float(np.abs(got - want).max())
    print(f"{source} {model}: max |logit error| {errors} (max |logit| {np.abs(want).max():.1f})")
    assert max(errors.values()) <= 1e-4, errors


@needs_two
def test_shipped_resnet20_checkpoint_reaches_its_recorded_accuracy_in_every_plugin(adapters):
    """``resnet20-cifarshaped0to4`` (where ``zoo bench -m resnet20 -t cifar-shaped`` starts):
    BatchNorm in inference mode with the checkpoint's running statistics, in every framework."""
    entry, weights = load_checkpoint("resnet20-cifarshaped0to4")
    data = load_cifar_shaped(entry.num_classes)
    spec = builtin_model(entry.model)
    reference = spec.reference_forward(weights, data.x_test[:50])
    for name, adapter in adapters.items():
        out = logits(adapter, load(adapter, spec, weights, entry.input_shape, entry.num_classes), data.x_test, 100)
        assert np.abs(out[:50] - reference).max() <= 1e-4, name
        assert (out.argmax(1) == data.y_test).mean() == pytest.approx(entry.accuracy, abs=2e-3), name


# -- one Adam step ------------------------------------------------------------------------------

def randomise_batchnorm(weights: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """Non-trivial BatchNorm parameters and statistics, and biases 0.1-0.3 away from zero (a conv
    bias in front of a training-mode BatchNorm has loss gradient 0: L2 decay then sets it)."""
    rng = np.random.default_rng(seed)
    out = dict(weights)
    for name, value in weights.items():
        kind = name.rsplit(".", 1)[1]
        if kind in ("scale", "var"):
            out[name] = rng.uniform(0.5, 1.5, value.shape).astype(np.float32)
        elif kind == "mean" or (kind == "bias" and not name.startswith("head.")):
            out[name] = (rng.choice([-1, 1], value.shape) * rng.uniform(0.1, 0.3, value.shape)).astype(np.float32)
    return out


def one_step(adapters, spec, weights, x, y, freeze, config):
    shape = x.shape[1:]
    after = {}
    for name, adapter in adapters.items():
        result = adapter.fine_tune(load(adapter, spec, weights, shape, 10, freeze),
                                   TrainData(x, y, ((np.arange(len(x)),),)), config, NullMeter())
        after[name] = adapter.export_weights(result.model)
    return after


#: Small ResNets for the freeze-none step: both block kinds, both stems, the Keras variant's conv
#: biases and BatchNorm settings. See the test's docstring for why not ResNet-18.
MINI = (
    ResNetSpec(name="mini-basic", description="", block="basic", stage_blocks=(1, 1), stage_widths=(8, 16),
               stem_width=8),
    ResNetSpec(name="mini-keras", description="", block="bottleneck", stage_blocks=(1, 1), stage_widths=(4, 8),
               stem="cifar", stem_width=8, stride_in="1x1", conv_bias=True, bn_eps=1.001e-5, bn_momentum=0.01),
)


@needs_two
@pytest.mark.parametrize("spec", MINI, ids=lambda s: s.name)
def test_one_adam_step_training_batchnorm_gives_the_same_parameters_and_statistics(adapters, spec):
    """freeze none: every BatchNorm normalises with batch statistics and updates its running
    mean and (unbiased) variance; parameters and statistics agree within 1e-5 of each tensor's scale.

    Why small ResNets and Adam eps 1e-4: at its first step Adam moves a parameter by
    ``lr * g / (|g| + eps)``, a sign function of the gradient wherever ``|g| >> eps``. In a network
    of 10^5+ parameters some gradients are ~1e-7 (and a conv bias in front of a training-mode
    BatchNorm has gradient exactly 0): with the default eps 1e-8 their float32 rounding noise,
    which differs between frameworks (and between torch float32 and float64), decides a move of
    up to +-lr. eps 1e-4 keeps them in the linear regime, so this compares gradients, not the sign
    of rounding noise. And a ReLU input within float32 noise of zero (~1 in 10^6 activations;
    ResNet-18 at 32x32 from init_weights(seed=0) on the first 8 cifar-shaped images has one, at
    layer3.0.bn1: -8.5e-7 in torch float64, +3.4e-6 in float32) flips which gradient passes: a
    real discontinuity that moves whole tensors by 1e-2 of their scale, made unlikely here by
    networks with ~10^4 activations."""
    shape = (16, 16, 3) if spec.stem == "imagenet" else (8, 8, 3)
    weights = randomise_batchnorm(init_weights(spec, shape, 10, seed=0), seed=1)
    x = np.random.default_rng(2).uniform(0.0, 1.0, (8, *shape)).astype(np.float32)
    y = np.arange(8) % 10
    config = FineTuneConfig(learning_rate=1e-3, eps=1e-4, weight_decay=1e-2, freeze="none")
    after = one_step(adapters, spec, weights, x, y, "none", config)
    updated = spec.updated_state_names("none", shape, 10)
    assert updated == spec.state_names(shape, 10)
    ref_name = INSTALLED[0]
    ref = after[ref_name]
    worst = {name: max((rel_diff(v, ref[k]), k) for k, v in params.items()) for name, params in after.items()}
    print(f"{spec.name} freeze none, worst relative difference from {ref_name}: {worst}")
    for name, params in after.items():
        for key, value in params.items():
            diff = rel_diff(value, ref[key])
            assert diff <= 1e-5, f"{name} vs {ref_name}: {key} differs by {diff:.2e} of its scale"
    for key in updated:  # the statistics really moved (momentum 0.1 or 0.01 of a visible change)
        assert np.abs(ref[key] - weights[key]).max() > 1e-4, key


def calibrated(spec: ResNetSpec, weights: dict[str, np.ndarray], x: np.ndarray) -> dict[str, np.ndarray]:
    """``weights`` with every BatchNorm's running mean and variance set to its input's statistics on
    ``x`` (float64 NumPy), so that inference-mode BatchNorm normalises a randomly initialised
    network (a fresh one has mean 0, var 1: the identity, and the activations grow block by block)."""
    w = dict(weights)

    def conv_bn(unit, h):
        h = conv2d_reference(h, w[f"{unit.conv}.kernel"], w.get(f"{unit.conv}.bias"), unit.stride, unit.padding)
        mean, var = h.mean(axis=(0, 1, 2)), h.var(axis=(0, 1, 2))
        w[f"{unit.bn}.mean"], w[f"{unit.bn}.var"] = mean.astype(np.float32), var.astype(np.float32)
        h = (h - mean) / np.sqrt(var + spec.bn_eps) * w[f"{unit.bn}.scale"] + w[f"{unit.bn}.bias"]
        return relu(h) if unit.relu else h

    h = conv_bn(spec.stem_conv(x.shape[3]), x.astype(np.float64))
    if spec.stem_pool is not None:
        h = maxpool2d_reference(h, *spec.stem_pool)
    for block in spec.residual_blocks():
        shortcut = h if block.downsample is None else conv_bn(block.downsample, h)
        out = h
        for unit in block.convs:
            out = conv_bn(unit, out)
        h = relu(out + shortcut)
    return w


@pytest.fixture(scope="module")
def resnet18_start():
    """ResNet-18 from a seeded NumPy init, BatchNorm statistics calibrated on 64 training images:
    the same canonical starting weights for every framework."""
    data = load_cifar_shaped()
    return calibrated(RESNET18, init_weights(RESNET18, (32, 32, 3), 10, seed=0), data.x_train[:64]), data


@needs_two
def test_one_adam_step_with_frozen_backbone_keeps_batchnorm_in_inference_mode(adapters, resnet18_start):
    """freeze backbone on ResNet-18: the head moves the same way everywhere (default Adam), and
    every backbone array, BatchNorm statistics included, is bit-for-bit unchanged."""
    weights, data = resnet18_start
    config = FineTuneConfig(learning_rate=1e-3, freeze="backbone")
    after = one_step(adapters, RESNET18, weights, data.x_train[:16], data.y_train[:16], "backbone", config)
    assert RESNET18.updated_state_names("backbone", (32, 32, 3), 10) == frozenset()
    ref_name = INSTALLED[0]
    worst = {name: max(rel_diff(params[k], after[ref_name][k]) for k in ("head.kernel", "head.bias"))
             for name, params in after.items()}
    print(f"resnet18 freeze backbone, head's worst relative difference from {ref_name}: {worst}")
    for name, params in after.items():
        for key, value in params.items():
            if key.startswith("head."):
                assert rel_diff(value, after[ref_name][key]) <= 1e-5, (name, key, rel_diff(value, after[ref_name][key]))
            else:
                assert np.array_equal(value, weights[key]), f"{name}: frozen {key} changed"
    assert np.abs(after[ref_name]["head.kernel"] - weights["head.kernel"]).max() > 1e-4


# -- the frozen-backbone recipe -----------------------------------------------------------------

def recipe_start(model: str, resnet18_start) -> dict[str, np.ndarray]:
    if model == "resnet18":  # seeded init, calibrated BatchNorm statistics
        return resnet18_start[0]
    _, source = load_checkpoint("resnet20-cifarshaped0to4")  # the shipped one, with a new head
    return with_new_head(builtin_model(model), source, (32, 32, 3), 10, seed=1)


@needs_two
@pytest.mark.slow
@pytest.mark.parametrize("model,n_train,epochs", [("resnet18", 192, 3), ("resnet20", 512, 5)])
def test_frozen_backbone_recipe_gives_the_same_accuracy_and_predictions(adapters, resnet18_start, model, n_train,
                                                                       epochs):
    """Backbone frozen, the task recipes' optimiser (Adam, lr 1e-3, batch 32) on a subset of
    cifar-shaped for a few epochs in the host's batch order, from the same canonical weights:
    test accuracies agree within 1 point and the predicted classes on 99 % of the test images.
    ResNet-18 starts from a seeded init (its random features do not generalise much on this task:
    low accuracy, but the loss shows the head learned); ResNet-20 from the shipped checkpoint
    pretrained on classes 0-4 (its features transfer: well above chance)."""
    spec, weights, data = builtin_model(model), recipe_start(model, resnet18_start), resnet18_start[1]
    n_test = 200
    x_train, y_train = data.x_train[64:64 + n_train], data.y_train[64:64 + n_train]  # not the calibration images
    x_test, y_test = data.x_test[:n_test], data.y_test[:n_test]
    order = train_order(n_train, 32, epochs, seed=0)
    config = FineTuneConfig(learning_rate=1e-3, freeze="backbone")
    predictions, accuracy = {}, {}
    for name, adapter in adapters.items():
        result = adapter.fine_tune(load(adapter, spec, weights, (32, 32, 3), 10, "backbone"),
                                   TrainData(x_train, y_train, order), config, NullMeter())
        losses = np.reshape(result.losses, (epochs, -1)).mean(axis=1)
        assert losses[-1] < 0.9 * losses[0], (name, losses)
        predictions[name] = logits(adapter, result.model, x_test, 100).argmax(1)
        accuracy[name] = 100.0 * (predictions[name] == y_test).mean()
    print(f"{model} frozen backbone on cifar-shaped, test accuracy %: {accuracy}")
    assert max(accuracy.values()) - min(accuracy.values()) <= 1.0, accuracy
    assert model != "resnet20" or min(accuracy.values()) > 30.0, accuracy  # chance: 10 %
    ref = predictions[INSTALLED[0]]
    for name, pred in predictions.items():
        assert (pred == ref).mean() >= 0.99, f"{name} and {INSTALLED[0]} differ on {(pred != ref).sum()} images"
