"""Residual networks with BatchNorm: the CIFAR ResNet-20, torchvision's ResNet-18 and ResNet-50,
and Keras's ResNet50 (a different topology, kept as its own model).

One :class:`ResNetSpec` describes them all; :meth:`ResNetSpec.stem` and
:meth:`ResNetSpec.residual_blocks` give the exact layer list that every framework builds and
that :meth:`ResNetSpec.reference_forward` runs in float64 NumPy.

Canonical parameter names (close to torchvision's ``state_dict``; layouts as everywhere in
zoo: conv HWIO, dense ``[in, out]``)::

    conv1.kernel                          stem convolution [k, k, C, stem_width]
    conv1.bias                            only where conv_bias (the Keras variant)
    bn1.scale  bn1.bias                   BatchNorm affine parameters (torch weight/bias,
    bn1.mean   bn1.var                    Keras gamma/beta) and running statistics (torch
                                          running_mean/running_var, Keras moving_*)
    layer{s}.{b}.conv{i}.kernel           stage s = 1.., block b = 0.., conv i = 1..2 (basic)
    layer{s}.{b}.bn{i}.{scale,bias,mean,var}                          or 1..3 (bottleneck)
    layer{s}.{b}.downsample.conv.kernel   projection shortcut (torchvision downsample.0)
    layer{s}.{b}.downsample.bn.{scale,bias,mean,var}                  (torchvision downsample.1)
    head.kernel [channels, classes]       dense head after global average pooling (torch fc)
    head.bias

Roles: conv kernels ``conv_kernel``, conv biases ``bias``, BatchNorm ``.scale``/``.bias``
``norm_scale``/``norm_bias``, ``.mean``/``.var`` ``bn_mean``/``bn_var``; the head as in every
family (:func:`zoo.models.spec.head_params`). One input: an NHWC float32 image.
``.mean`` and ``.var`` are non-trainable state (``ParamSpec.trainable=False``). ``.var`` is the
running variance used as is at inference (torch keeps an unbiased estimate while training,
Keras and Flax a biased one: that matters only for the running update, see docs/model-zoo.md).

Topology, in every framework:

* ``imagenet`` stem (ResNet-18/50): 7x7 conv stride 2 with symmetric padding 3, BatchNorm,
  ReLU, then 3x3 max-pool stride 2 with padding 1. The reference pads the pool with ``-inf``
  (torch, Flax); Keras pads with zeros first (``ZeroPadding2D``), which is identical here
  because the pool's input has passed a ReLU (every value >= 0) and each window holds at least
  one real element.
* ``cifar`` stem (ResNet-20): 3x3 conv stride 1 padding 1, BatchNorm, ReLU, no pool.
* Basic block: 3x3 conv (stride s) - BN - ReLU - 3x3 conv - BN, plus the shortcut, then ReLU.
* Bottleneck block (expansion 4): 1x1 - BN - ReLU - 3x3 - BN - ReLU - 1x1 - BN, plus the
  shortcut, then ReLU. ``stride_in="3x3"`` puts the stride on the 3x3 conv (torchvision's
  "ResNet v1.5"); ``stride_in="1x1"`` puts it on the first 1x1 conv (the original v1 and
  ``keras.applications.ResNet50``). The two have identical parameter shapes, so weights of one
  load silently into the other and compute something else: that is why the Keras network is a
  separate model, ``resnet50-keras``, and why every importer names its topology.
* Shortcut: identity, or, where the block changes the shape (stride or channels), a projection
  ``downsample``: 1x1 conv with the block's stride, then BN.
* Stage strides 1, 2, 2, ...; global average pooling; dense head.

The CIFAR ResNet-20 uses projection shortcuts (He et al.'s option B) rather than the paper's
parameter-free option A (strided identity padded with zero channels): option B is the same
``downsample`` unit as ResNet-18/50, so each framework builds all ResNets with one code path and
every importer's naming holds; it costs 2,560 extra kernel weights (plus two BatchNorms).

BatchNorm settings are fields of the spec, in torch's convention: ``bn_momentum`` is the weight
of the *new* batch statistic (torch ``momentum=0.1`` is Keras/Flax ``momentum=0.9``), ``bn_eps``
is added to the variance (torch 1e-5, Keras ResNet50 1.001e-5; the framework defaults differ:
Keras 1e-3). Adapters must pass both explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Mapping

import numpy as np

from zoo.models.spec import (
    ModelSpec,
    ParamSpec,
    batchnorm_reference,
    conv2d_reference,
    dense_reference,
    head_params,
    maxpool2d_reference,
    relu,
)

BLOCKS = ("basic", "bottleneck")
STEMS = ("imagenet", "cifar")
STRIDE_IN = ("3x3", "1x1")


@dataclass(frozen=True)
class ConvBN:
    """A convolution (``{conv}.kernel``, optional ``{conv}.bias``) followed by BatchNorm
    (``{bn}.scale/.bias/.mean/.var``), then a ReLU when ``relu`` is true. Padding is symmetric."""

    conv: str
    bn: str
    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int
    padding: int
    relu: bool = True


@dataclass(frozen=True)
class ResidualBlock:
    """``convs`` in order, plus the shortcut: ``downsample`` (projection) or identity; then
    ``relu(main + shortcut)``. The last conv of ``convs`` has ``relu=False``."""

    name: str  # "layer2.0"
    convs: tuple[ConvBN, ...]
    downsample: ConvBN | None


@dataclass(frozen=True)
class ResNetSpec(ModelSpec):
    family: ClassVar[str] = "resnet"
    block: str = "basic"  # one of BLOCKS
    stage_blocks: tuple[int, ...] = (2, 2, 2, 2)
    stage_widths: tuple[int, ...] = (64, 128, 256, 512)  # bottleneck: inner width (output x4)
    stem: str = "imagenet"  # one of STEMS
    stem_width: int = 64
    stride_in: str = "3x3"  # bottleneck only: which conv of a downsampling block has the stride
    conv_bias: bool = False  # every conv has a bias (Keras ResNet50)
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1  # torch convention: new = (1 - m) * old + m * batch
    #: The topology this spec reproduces exactly, for messages and model cards.
    reference_impl: str = ""

    def __post_init__(self) -> None:
        for field_name, value, allowed in (("block", self.block, BLOCKS), ("stem", self.stem, STEMS),
                                           ("stride_in", self.stride_in, STRIDE_IN)):
            if value not in allowed:
                raise ValueError(f"ResNetSpec {self.name!r}: {field_name} {value!r}; choose one of {allowed}")
        if len(self.stage_blocks) != len(self.stage_widths) or not self.stage_blocks:
            raise ValueError(f"ResNetSpec {self.name!r}: stage_blocks and stage_widths differ in length")

    @property
    def expansion(self) -> int:
        return 4 if self.block == "bottleneck" else 1

    @property
    def features(self) -> int:
        """Channels after the last stage: the head's fan-in."""
        return self.stage_widths[-1] * self.expansion

    # -- structure ----------------------------------------------------------------------------

    def stem_conv(self, in_channels: int) -> ConvBN:
        if self.stem == "imagenet":
            return ConvBN("conv1", "bn1", in_channels, self.stem_width, 7, 2, 3)
        return ConvBN("conv1", "bn1", in_channels, self.stem_width, 3, 1, 1)

    @property
    def stem_pool(self) -> tuple[int, ...] | None:
        """``(size, stride, padding)`` of the stem's max-pool, or ``None``."""
        return (3, 2, 1) if self.stem == "imagenet" else None

    def residual_blocks(self) -> list[ResidualBlock]:
        blocks = []
        channels = self.stem_width
        for s, (count, width) in enumerate(zip(self.stage_blocks, self.stage_widths), start=1):
            for b in range(count):
                stride = 2 if (s > 1 and b == 0) else 1
                out = width * self.expansion
                prefix = f"layer{s}.{b}"
                if self.block == "basic":
                    convs = (
                        ConvBN(f"{prefix}.conv1", f"{prefix}.bn1", channels, width, 3, stride, 1),
                        ConvBN(f"{prefix}.conv2", f"{prefix}.bn2", width, width, 3, 1, 1, relu=False),
                    )
                else:
                    s1, s3 = (1, stride) if self.stride_in == "3x3" else (stride, 1)
                    convs = (
                        ConvBN(f"{prefix}.conv1", f"{prefix}.bn1", channels, width, 1, s1, 0),
                        ConvBN(f"{prefix}.conv2", f"{prefix}.bn2", width, width, 3, s3, 1),
                        ConvBN(f"{prefix}.conv3", f"{prefix}.bn3", width, out, 1, 1, 0, relu=False),
                    )
                downsample = None
                if stride != 1 or channels != out:
                    downsample = ConvBN(f"{prefix}.downsample.conv", f"{prefix}.downsample.bn",
                                        channels, out, 1, stride, 0, relu=False)
                blocks.append(ResidualBlock(prefix, convs, downsample))
                channels = out
        return blocks

    def _conv_params(self, unit: ConvBN) -> list[ParamSpec]:
        k = unit.kernel_size
        params = [ParamSpec(f"{unit.conv}.kernel", (k, k, unit.in_channels, unit.out_channels), role="conv_kernel")]
        if self.conv_bias:
            params.append(ParamSpec(f"{unit.conv}.bias", (unit.out_channels,), role="bias"))
        c = (unit.out_channels,)
        return params + [
            ParamSpec(f"{unit.bn}.scale", c, role="norm_scale"),
            ParamSpec(f"{unit.bn}.bias", c, role="norm_bias"),
            ParamSpec(f"{unit.bn}.mean", c, trainable=False, role="bn_mean"),
            ParamSpec(f"{unit.bn}.var", c, trainable=False, role="bn_var"),
        ]

    def parameters(self, input_shape: tuple[int, ...], num_classes: int) -> list[ParamSpec]:
        params = self._conv_params(self.stem_conv(input_shape[2]))
        for block in self.residual_blocks():
            for unit in block.convs:
                params += self._conv_params(unit)
            if block.downsample is not None:
                params += self._conv_params(block.downsample)
        return params + head_params(self.features, num_classes)

    def blocks(self, input_shape: tuple[int, ...], num_classes: int) -> list[tuple[str, tuple[str, ...]]]:
        """The residual blocks (``layer1.0`` ... ``layer4.1``); the stem is not counted by
        ``last-N``."""
        names = [p.name for p in self.parameters(input_shape, num_classes)]
        return [(b.name, tuple(n for n in names if n.startswith(b.name + "."))) for b in self.residual_blocks()]

    # -- reference ----------------------------------------------------------------------------

    def _conv_bn(self, w: Mapping[str, np.ndarray], unit: ConvBN, x: np.ndarray) -> np.ndarray:
        bias = w[f"{unit.conv}.bias"] if self.conv_bias else None
        h = conv2d_reference(x, w[f"{unit.conv}.kernel"], bias, unit.stride, unit.padding)
        h = batchnorm_reference(h, w[f"{unit.bn}.scale"], w[f"{unit.bn}.bias"], w[f"{unit.bn}.mean"],
                                w[f"{unit.bn}.var"], self.bn_eps)
        return relu(h) if unit.relu else h

    def reference_forward(self, weights: Mapping[str, np.ndarray], x: np.ndarray) -> np.ndarray:
        """Logits in float64 with every BatchNorm in inference mode (running statistics)."""
        h = self._conv_bn(weights, self.stem_conv(x.shape[3]), x.astype(np.float64))
        if self.stem_pool is not None:
            h = maxpool2d_reference(h, *self.stem_pool)
        for block in self.residual_blocks():
            shortcut = h if block.downsample is None else self._conv_bn(weights, block.downsample, h)
            out = h
            for unit in block.convs:
                out = self._conv_bn(weights, unit, out)
            h = relu(out + shortcut)
        pooled = h.mean(axis=(1, 2))
        return dense_reference(pooled, weights["head.kernel"], weights["head.bias"])

    # -- cost ---------------------------------------------------------------------------------

    def forward_flops(self, input_shape: tuple[int, ...], num_classes: int) -> int:
        """Floating-point operations of one example's forward pass: 2 per multiply-add of the
        convolutions and the head (BatchNorm, ReLU, pooling and additions are not counted),
        the convention of :mod:`zoo.models.flops`."""
        h, w, c = input_shape

        def conv(unit: ConvBN, h: int, w: int) -> tuple[int, ...]:
            oh = (h + 2 * unit.padding - unit.kernel_size) // unit.stride + 1
            ow = (w + 2 * unit.padding - unit.kernel_size) // unit.stride + 1
            return 2 * oh * ow * unit.kernel_size**2 * unit.in_channels * unit.out_channels, oh, ow

        flops, h, w = conv(self.stem_conv(c), h, w)
        if self.stem_pool is not None:
            size, stride, pad = self.stem_pool
            h, w = (h + 2 * pad - size) // stride + 1, (w + 2 * pad - size) // stride + 1
        for block in self.residual_blocks():
            bh, bw = h, w
            for unit in block.convs:
                f, bh, bw = conv(unit, bh, bw)
                flops += f
            if block.downsample is not None:
                flops += conv(block.downsample, h, w)[0]
            h, w = bh, bw
        return flops + 2 * self.features * num_classes


RESNET_MODELS: tuple[ResNetSpec, ...] = (
    ResNetSpec(
        name="resnet20",
        description="CIFAR ResNet-20: 3x3 stem, 3x3 basic blocks (16/32/64), BatchNorm, projection shortcuts",
        block="basic", stage_blocks=(3, 3, 3), stage_widths=(16, 32, 64), stem="cifar", stem_width=16,
        reference_impl="He et al. 2016 CIFAR ResNet-20 with option-B (1x1 conv + BN) shortcuts",
    ),
    ResNetSpec(
        name="resnet18",
        description="torchvision ResNet-18: 7x7/2 stem + max-pool, 2-2-2-2 basic blocks, BatchNorm",
        block="basic", stage_blocks=(2, 2, 2, 2),
        reference_impl="torchvision.models.resnet18 (also timm resnet18)",
    ),
    ResNetSpec(
        name="resnet50",
        description="torchvision ResNet-50 (v1.5: stride on the 3x3): 3-4-6-3 bottleneck blocks, BatchNorm",
        block="bottleneck", stage_blocks=(3, 4, 6, 3), stride_in="3x3",
        reference_impl="torchvision.models.resnet50 (also timm resnet50)",
    ),
    ResNetSpec(
        name="resnet50-keras",
        description="keras.applications.ResNet50 (v1: stride on the first 1x1, conv biases, BN eps 1.001e-5)",
        block="bottleneck", stage_blocks=(3, 4, 6, 3), stride_in="1x1", conv_bias=True,
        bn_eps=1.001e-5, bn_momentum=0.01,  # Keras BatchNormalization(momentum=0.99)
        reference_impl="keras.applications.ResNet50 (classifier_activation=None for logits)",
    ),
)
