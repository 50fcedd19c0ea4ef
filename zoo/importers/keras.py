"""Import ``keras.applications.ResNet50`` weights into the canonical layout of ``resnet50-keras``.

Keras's ResNet50 is the original ResNet v1: a downsampling bottleneck block has its stride on the
*first 1x1* conv (and on the shortcut), every conv has a bias, BatchNorm eps is 1.001e-5. That is
a different network from torchvision's ResNet-50 (stride on the 3x3) with identical parameter
shapes, so these weights import only into ``resnet50-keras``; asking for ``resnet50`` is refused.

Two file layouts are read with h5py (no Keras needed):

* **Keras 3** ``model.save_weights("x.weights.h5")`` (checked with Keras 3.15): datasets
  ``layers/<class>_<n>/vars/<i>``, named by layer *class* and a per-class counter in
  ``model.layers`` order (``conv2d``, ``conv2d_1``, ..., ``batch_normalization_52``, ``dense``),
  not by layer name. The importer rebuilds that order for ResNet50 (:func:`keras_layer_order`;
  in a block with a projection Keras orders ``_1, _2, _0, _3`` convs and then the ``_0, _3``
  BatchNorms) and checks every shape; ``tests/test_importers.py`` proves the order against
  Keras itself.
* **Legacy Keras 2 HDF5** (``resnet50_weights_tf_dim_ordering_tf_kernels.h5`` as published by
  keras-applications, what ``zoo fetch resnet50 --source keras`` downloads): root attribute
  ``layer_names``, per-layer attribute ``weight_names`` (``conv1_conv/kernel:0``), matched by
  layer name. A whole-model ``.h5`` (group ``model_weights``) works too. Files from the 2017
  ``deep-learning-models`` release (``res2a_branch2a`` names) and ``include_top=False`` files
  are refused with a message.

Keras variables map as: Conv2D ``kernel, bias`` -> ``.kernel, .bias`` (already HWIO);
BatchNormalization ``gamma, beta, moving_mean, moving_variance`` -> ``.scale, .bias, .mean,
.var``; Dense ``predictions`` -> ``head.kernel [in, out], head.bias``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from zoo.importers.base import ImportedWeights, WeightsImportError, describe_mismatch, file_sha256
from zoo.models import builtin_model

MODEL = "resnet50-keras"
STAGES = (3, 4, 6, 3)  # keras.applications.ResNet50: stack1(64, 3), (128, 4), (256, 6), (512, 3)
_BN_VARS = ("scale", "bias", "mean", "var")  # gamma, beta, moving_mean, moving_variance
_LEGACY_VAR = {"kernel": "kernel", "bias": "bias", "gamma": "scale", "beta": "bias",
               "moving_mean": "mean", "moving_variance": "var"}
TORCHVISION_TOPOLOGY = (
    "Keras's ResNet50 puts the stride of a downsampling block on its first 1x1 conv and has conv "
    "biases; zoo's {model!r} is torchvision's topology (stride on the 3x3, no conv biases). Import "
    "Keras weights into 'resnet50-keras' instead"
)


def canonical_name(keras_layer: str) -> str | None:
    """``conv1_conv`` -> ``conv1``, ``conv3_block2_1_bn`` -> ``layer2.1.bn1``, ``conv2_block1_0_conv``
    -> ``layer1.0.downsample.conv``, ``predictions`` -> ``head``; None for anything else."""
    if keras_layer == "conv1_conv":
        return "conv1"
    if keras_layer == "conv1_bn":
        return "bn1"
    if keras_layer == "predictions":
        return "head"
    m = re.fullmatch(r"conv(\d)_block(\d+)_(\d)_(conv|bn)", keras_layer)
    if not m:
        return None
    stage, block, i, kind = int(m.group(1)) - 1, int(m.group(2)) - 1, int(m.group(3)), m.group(4)
    if i == 0:
        return f"layer{stage}.{block}.downsample.{kind}"
    return f"layer{stage}.{block}.{kind}{i}"


def keras_layer_order() -> list[tuple[str, str]]:
    """``(keras layer name, class)`` of ResNet50's layers that have weights, in ``model.layers`` order."""
    order = [("conv1_conv", "Conv2D"), ("conv1_bn", "BatchNormalization")]
    for s, count in enumerate(STAGES, start=2):
        for b in range(1, count + 1):
            p = f"conv{s}_block{b}"
            seq = ["1_conv", "1_bn", "2_conv", "2_bn"]
            seq += ["0_conv", "3_conv", "0_bn", "3_bn"] if b == 1 else ["3_conv", "3_bn"]
            order += [(f"{p}_{x}", "Conv2D" if x.endswith("conv") else "BatchNormalization") for x in seq]
    return order + [("predictions", "Dense")]


def _h5py():
    try:
        import h5py
    except ImportError:
        raise WeightsImportError("reading Keras .h5 weights needs h5py: pip install h5py "
                                 "(TensorFlow and Keras install it)") from None
    return h5py


def _store(out: dict[str, np.ndarray], layer: str, kind: str, values: list[np.ndarray], source: str) -> None:
    name = canonical_name(layer)
    if name is None:
        raise WeightsImportError(f"{source}: layer {layer!r} is not part of keras.applications.ResNet50")
    if kind == "BatchNormalization":
        keys = [f"{name}.{v}" for v in _BN_VARS]
    else:
        keys = [f"{name}.kernel", f"{name}.bias"]
    if len(values) != len(keys):
        raise WeightsImportError(f"{source}: layer {layer!r} has {len(values)} arrays, expected {len(keys)}")
    for key, value in zip(keys, values):
        out[key] = np.ascontiguousarray(value, dtype=np.float32)


def _read_keras3(f: Any, source: str) -> dict[str, np.ndarray]:
    layers = f["layers"]
    counters: dict[str, int] = {}
    snake = {"Conv2D": "conv2d", "BatchNormalization": "batch_normalization", "Dense": "dense"}
    out: dict[str, np.ndarray] = {}
    order = keras_layer_order()
    for layer, cls in order:
        n = counters.get(cls, 0)
        counters[cls] = n + 1
        group = snake[cls] + (f"_{n}" if n else "")
        if group not in layers or "vars" not in layers[group]:
            raise WeightsImportError(
                f"{source}: no weights for {layer} (Keras 3 group layers/{group}); this is not the "
                "weights file of keras.applications.ResNet50(include_top=True)")
        vars_ = layers[group]["vars"]
        _store(out, layer, cls, [np.asarray(vars_[str(i)]) for i in range(len(vars_))], source)
    extra = [g for g in layers if re.fullmatch(r"(conv2d|batch_normalization|dense)(_\d+)?", g)
             and "vars" in layers[g] and len(layers[g]["vars"])]
    expected = sum(counters.values())
    if len(extra) != expected:
        raise WeightsImportError(
            f"{source}: {len(extra)} Conv2D/BatchNormalization/Dense layers with weights, expected {expected} "
            "for keras.applications.ResNet50: another architecture (ResNet101, ResNet50V2, ...)?")
    return out


def _decode(names: Any) -> list[str]:
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def _read_legacy(f: Any, source: str) -> dict[str, np.ndarray]:
    root = f["model_weights"] if "model_weights" in f else f
    out: dict[str, np.ndarray] = {}
    for layer in _decode(root.attrs["layer_names"]):
        group = root[layer]
        weight_names = _decode(group.attrs.get("weight_names", []))
        if not weight_names:
            continue
        if re.fullmatch(r"(res|bn)\d[a-z].*|bn_conv1|fc1000", layer):
            raise WeightsImportError(
                f"{source}: layer {layer!r} uses the 2017 deep-learning-models naming; use the keras-applications "
                "file (storage.googleapis.com/tensorflow/keras-applications/resnet/...) instead")
        by_var = {}
        for wn in weight_names:
            var = wn.rsplit("/", 1)[-1].split(":")[0]
            if var not in _LEGACY_VAR:
                raise WeightsImportError(f"{source}: unexpected variable {wn!r} in layer {layer!r}")
            by_var[_LEGACY_VAR[var]] = np.asarray(group[wn])
        if set(by_var) == {"kernel", "bias"}:
            kind, values = ("Dense" if by_var["kernel"].ndim == 2 else "Conv2D"), [by_var["kernel"], by_var["bias"]]
        elif set(by_var) == set(_BN_VARS):
            kind, values = "BatchNormalization", [by_var[v] for v in _BN_VARS]
        else:
            raise WeightsImportError(f"{source}: layer {layer!r} has variables {sorted(by_var)}")
        _store(out, layer, kind, values, source)
    return out


def read_keras_resnet50(path: Path) -> tuple[dict[str, np.ndarray], str]:
    """Canonical weights and the format's name, from either Keras layout."""
    h5py = _h5py()
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise WeightsImportError(f"{path}: not an HDF5 file: {exc}") from exc
    with f:
        if "layers" in f and "layer_names" not in f.attrs:
            return _read_keras3(f, str(path)), "keras3 .weights.h5"
        if "layer_names" in f.attrs or "model_weights" in f:
            return _read_legacy(f, str(path)), "legacy keras2 .h5"
    raise WeightsImportError(f"{path}: neither a Keras 3 .weights.h5 nor a legacy Keras .h5 weights file")


def import_keras(path: str | Path, model: str | None = None) -> ImportedWeights:
    path = Path(path)
    if model is not None and model != MODEL:
        if model == "resnet50":
            raise WeightsImportError(TORCHVISION_TOPOLOGY.format(model=model))
        raise WeightsImportError(f"keras.applications.ResNet50 weights import only into {MODEL!r}, not {model!r}")
    weights, fmt = read_keras_resnet50(path)
    if "head.kernel" not in weights:
        raise WeightsImportError(f"{path}: no 'predictions' layer: an include_top=False file; import the "
                                 "include_top=True file (zoo checkpoints carry a head)")
    spec = builtin_model(MODEL)
    cin, ncls = weights["conv1.kernel"].shape[2], weights["head.kernel"].shape[1]
    expected = {p.name: p.shape for p in spec.parameters((224, 224, cin), ncls)}
    problems = describe_mismatch(expected, weights)
    if problems:
        raise WeightsImportError(f"{path} does not fit {MODEL!r}: {problems}")
    return ImportedWeights(
        model=MODEL, weights=weights, num_classes=int(ncls), input_channels=int(cin), source="keras",
        source_file=str(path), source_sha256=file_sha256(path), source_format=fmt,
        notes=("keras.applications.ResNet50 topology: stride on the first 1x1, conv biases, BN eps 1.001e-5",
               "Keras's own model ends in softmax; zoo's head returns logits (classifier_activation=None)"),
    )
