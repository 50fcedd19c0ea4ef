"""The framework-neutral description of a model: its parameters, their canonical names and
shapes, which of them form the replaceable head, and which a fine-tune may change.

Freeze policies (:meth:`ModelSpec.trainable_names`), the same for every family:

* ``none``: every trainable parameter;
* ``backbone``: the head only (``head.*``);
* ``last-N`` (N >= 1): the head plus the last N *blocks* of :meth:`ModelSpec.blocks`: for the
  MLP and the CNN a block is one layer (``fc2``, ``conv3``); for a ResNet it is one residual
  block (``layer4.1``), and the stem is never part of it (use ``none`` to train the stem).

Non-trainable state (BatchNorm running statistics: roles ``bn_mean``, ``bn_var``,
``ParamSpec.trainable=False``) is never in :meth:`ModelSpec.trainable_names`. A BatchNorm layer
runs in training mode during a fine-tune exactly when its scale (role ``norm_scale``) is
trainable (and then updates its running statistics, :meth:`ModelSpec.updated_state_names`); a
frozen one runs in inference mode.

What a model consumes is declared by :meth:`ModelSpec.inputs` (:mod:`zoo.models.inputs`); what
each parameter is for, by its role (:mod:`zoo.models.params`).
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import numpy as np

from zoo.models.inputs import InputSpec, image_input
from zoo.models.params import HEAD_PREFIX, ParamSpec  # noqa: F401  (re-exported: zoo.models.spec.ParamSpec)

#: Canonical suffixes of a BatchNorm layer's four arrays (the prefix names the layer).
BATCHNORM_SUFFIXES = ("scale", "bias", "mean", "var")
FREEZE_HELP = "none (train everything), backbone (only the new head), or last-N (the head and the last N blocks)"
_LAST_N = re.compile(r"last-([0-9]+)")


@dataclass(frozen=True)
class ExampleShapes:
    """Input shapes the conformance suite (:mod:`zoo.testing`) builds its tiny inputs at:
    ``typical`` (for images the 8x8x1 digits, so real data and checkpoints apply), ``odd`` (sizes
    and channels that expose layout, flatten-order and padding mistakes) and ``heavy`` (enough
    arithmetic per example to time the sync check)."""

    typical: tuple[int, ...]
    odd: tuple[int, ...]
    heavy: tuple[int, ...]


IMAGE_EXAMPLES = ExampleShapes((8, 8, 1), (9, 9, 3), (32, 32, 3))


def parse_freeze(freeze: str) -> tuple[str, int]:
    """``"none"`` -> ``("none", 0)``, ``"backbone"`` -> ``("backbone", 0)``, ``"last-2"`` ->
    ``("last", 2)``; anything else raises ``ValueError`` saying what is accepted."""
    if freeze in ("none", "backbone"):
        return freeze, 0
    match = _LAST_N.fullmatch(freeze)
    if match and int(match.group(1)) >= 1:
        return "last", int(match.group(1))
    raise ValueError(f"unknown freeze policy {freeze!r}; use {FREEZE_HELP}, e.g. last-2")


@dataclass(frozen=True)
class ModelSpec(abc.ABC):
    """A zoo architecture, described once for every framework.

    Subclasses are small frozen dataclasses, one per architecture family (``family`` is what
    a framework adapter dispatches on). The NumPy forward pass in :meth:`reference_forward`
    defines what "the same model" means: every framework's output must match it.

    ``input_shape``, which every method takes, is the task's :attr:`zoo.tasks.Task.input_shape`:
    what the model is sized by (an image's ``(H, W, C)``; for a text model e.g. ``(length,)``).
    What the model consumes is :meth:`inputs`. The base class describes a model of one NHWC
    float32 image (the mlp, cnn and resnet families); a family with other inputs overrides
    :meth:`inputs` and :meth:`example_shapes`.
    """

    family: ClassVar[str] = ""
    name: str
    description: str

    @abc.abstractmethod
    def parameters(self, input_shape: tuple[int, ...], num_classes: int) -> list[ParamSpec]:
        """Every parameter, in a stable order (the order :mod:`zoo.init` draws them in), each
        with its role, for inputs of ``input_shape``."""

    @abc.abstractmethod
    def reference_forward(self, weights: Mapping[str, np.ndarray], x: Any) -> np.ndarray:
        """Logits for the batch ``x``, computed in float64 NumPy. ``x`` is in the batch form of
        :mod:`zoo.models.inputs`: the array of the model's one input (an NHWC image batch), or
        a dict of input name -> array for a model with several inputs."""

    def inputs(self, input_shape: tuple[int, ...]) -> tuple[InputSpec, ...]:
        """The inputs the model consumes for a task of ``input_shape``, in order. By default one
        ``image`` input, NHWC float32 of ``input_shape`` = (H, W, C); a text family returns e.g.
        ``zoo.models.inputs.text_inputs(input_shape[0], self.vocab_size)``."""
        return (image_input(input_shape),)

    def example_shapes(self) -> ExampleShapes:
        """The input shapes the conformance suite tests the model at (:class:`ExampleShapes`)."""
        return IMAGE_EXAMPLES

    def head_names(self, input_shape: tuple[int, ...], num_classes: int) -> list[str]:
        return [p.name for p in self.parameters(input_shape, num_classes) if p.is_head]

    def blocks(self, input_shape: tuple[int, ...], num_classes: int) -> list[tuple[str, tuple[str, ...]]]:
        """The backbone's blocks in forward order, as ``(block name, parameter names)``: what a
        ``last-N`` freeze policy counts. By default one block per layer (``fc1``, ``conv2``);
        families with larger units (ResNet: residual blocks) override it. The head is not a block."""
        groups: dict[str, list[str]] = {}
        for p in self.parameters(input_shape, num_classes):
            if not p.is_head:
                groups.setdefault(p.layer, []).append(p.name)
        return [(layer, tuple(names)) for layer, names in groups.items()]

    def trainable_names(
        self, freeze: str, input_shape: tuple[int, ...], num_classes: int
    ) -> frozenset[str]:
        """The parameters a fine-tune with freeze policy ``freeze`` may change (see the module
        docstring); never non-trainable state such as BatchNorm running statistics."""
        kind, n = parse_freeze(freeze)
        params = [p for p in self.parameters(input_shape, num_classes) if p.trainable]
        if kind == "none":
            return frozenset(p.name for p in params)
        if kind == "backbone":
            return frozenset(p.name for p in params if p.is_head)
        blocks = self.blocks(input_shape, num_classes)
        if n > len(blocks):
            raise ValueError(
                f"freeze policy {freeze!r}: model {self.name!r} has only {len(blocks)} blocks "
                f"({blocks[0][0]} ... {blocks[-1][0]}); use last-{len(blocks)} or none"
            )
        chosen = {name for _, names in blocks[len(blocks) - n:] for name in names}
        return frozenset(p.name for p in params if p.is_head or p.name in chosen)

    def state_names(self, input_shape: tuple[int, ...], num_classes: int) -> frozenset[str]:
        """Non-trainable state (``ParamSpec.trainable=False``), e.g. BatchNorm running statistics."""
        return frozenset(p.name for p in self.parameters(input_shape, num_classes) if not p.trainable)

    def batchnorm_layers(self, input_shape: tuple[int, ...], num_classes: int) -> list[str]:
        """Prefixes of the BatchNorm layers (``bn1``, ``layer1.0.bn2``, ``layer1.0.downsample.bn``):
        the layers with a running mean (role ``bn_mean``)."""
        return [p.layer for p in self.parameters(input_shape, num_classes) if p.role == "bn_mean"]

    def updated_state_names(
        self, freeze: str, input_shape: tuple[int, ...], num_classes: int
    ) -> frozenset[str]:
        """Running statistics a fine-tune under ``freeze`` updates: those of every BatchNorm
        layer whose scale (role ``norm_scale``) is trainable (that layer runs in training mode);
        the others run in inference mode and keep their statistics."""
        trainable = self.trainable_names(freeze, input_shape, num_classes)
        params = self.parameters(input_shape, num_classes)
        training = {p.layer for p in params if p.role == "norm_scale" and p.name in trainable}
        return frozenset(p.name for p in params if p.is_state and p.layer in training)

    def check_weights(
        self, weights: Mapping[str, np.ndarray], input_shape: tuple[int, ...], num_classes: int
    ) -> None:
        """Raise ``ValueError`` naming every missing, unexpected or mis-shaped parameter."""
        expected = {p.name: p.shape for p in self.parameters(input_shape, num_classes)}
        problems = []
        for name in sorted(set(expected) - set(weights)):
            problems.append(f"missing {name} {expected[name]}")
        for name in sorted(set(weights) - set(expected)):
            problems.append(f"unexpected {name}")
        for name in sorted(set(expected) & set(weights)):
            if tuple(weights[name].shape) != expected[name]:
                problems.append(f"{name}: shape {tuple(weights[name].shape)}, expected {expected[name]}")
        if problems:
            raise ValueError(f"weights do not fit model {self.name!r}: " + "; ".join(problems))


def head_params(features: int, num_classes: int) -> list[ParamSpec]:
    """The classification head every family ends with: ``head.kernel [features, classes]``
    (role ``dense_kernel``) and ``head.bias [classes]`` (``bias``); the host replaces it for
    each task (:func:`zoo.init.with_new_head`)."""
    return [ParamSpec("head.kernel", (features, num_classes), role="dense_kernel"),
            ParamSpec("head.bias", (num_classes,), role="bias")]


def dense_reference(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``x @ kernel + bias`` in float64, kernel ``[in, out]``."""
    return x.astype(np.float64) @ kernel.astype(np.float64) + bias.astype(np.float64)


def conv2d_reference(
    x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, stride: int, padding: int
) -> np.ndarray:
    """2-D cross-correlation of NHWC ``x`` with an HWIO ``kernel``, symmetric zero padding
    (``bias=None``: a convolution without bias). One float64 matrix product per kernel tap."""
    x = np.pad(x.astype(np.float64), ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    kh, kw, cin, cout = kernel.shape
    n, h, w, _ = x.shape
    oh = (h - kh) // stride + 1
    ow = (w - kw) // stride + 1
    out = np.zeros((n * oh * ow, cout), dtype=np.float64)
    k = kernel.astype(np.float64)
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i : i + stride * (oh - 1) + 1 : stride, j : j + stride * (ow - 1) + 1 : stride, :]
            out += patch.reshape(-1, cin) @ k[i, j]
    out = out.reshape(n, oh, ow, cout)
    return out if bias is None else out + bias.astype(np.float64)


def batchnorm_reference(
    x: np.ndarray, scale: np.ndarray, bias: np.ndarray, mean: np.ndarray, var: np.ndarray, eps: float
) -> np.ndarray:
    """BatchNorm in inference mode over the last (channel) axis, in float64:
    ``(x - mean) / sqrt(var + eps) * scale + bias``."""
    f64 = np.float64
    inv = scale.astype(f64) / np.sqrt(var.astype(f64) + eps)
    return (x.astype(f64) - mean.astype(f64)) * inv + bias.astype(f64)


def maxpool2d_reference(x: np.ndarray, size: int, stride: int, padding: int) -> np.ndarray:
    """Max pooling of NHWC ``x`` with symmetric padding that never wins (``-inf``), as torch's
    ``MaxPool2d(padding=p)`` and Flax's padded ``max_pool`` do. Keras pads with zeros
    (``ZeroPadding2D``) before its pool instead; that is the same whenever ``x >= 0`` (after a
    ReLU) and ``padding < size`` (every window holds at least one real element)."""
    x = np.pad(x.astype(np.float64), ((0, 0), (padding, padding), (padding, padding), (0, 0)),
               constant_values=-np.inf)
    n, h, w, c = x.shape
    oh = (h - size) // stride + 1
    ow = (w - size) // stride + 1
    out = np.full((n, oh, ow, c), -np.inf)
    for i in range(size):
        for j in range(size):
            out = np.maximum(out, x[:, i : i + stride * (oh - 1) + 1 : stride, j : j + stride * (ow - 1) + 1 : stride, :])
    return out


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)
