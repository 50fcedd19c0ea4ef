"""Small convolutional net: conv layers with ReLU (explicit symmetric zero padding), global
average pooling, dense head. Global pooling before the head keeps it free of the NHWC/NCHW
flatten-order trap. One input: an NHWC float32 image (the :class:`~zoo.models.spec.ModelSpec`
default).

Canonical parameters: ``{conv.name}.kernel [kh, kw, in, out]`` (HWIO, role ``conv_kernel``),
``{conv.name}.bias`` (``bias``), then ``head.kernel [channels, classes]``, ``head.bias``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Mapping

import numpy as np

from zoo.models.spec import ModelSpec, ParamSpec, conv2d_reference, dense_reference, head_params, relu


@dataclass(frozen=True)
class ConvLayer:
    """One convolution followed by ReLU. ``padding`` is added symmetrically on each side."""

    name: str
    out_channels: int
    kernel_size: int = 3
    stride: int = 1
    padding: int = 1


@dataclass(frozen=True)
class CNNSpec(ModelSpec):
    family: ClassVar[str] = "cnn"
    convs: tuple[ConvLayer, ...] = ()

    def parameters(self, input_shape: tuple[int, ...], num_classes: int) -> list[ParamSpec]:
        params = []
        channels = input_shape[2]
        for conv in self.convs:
            k = conv.kernel_size
            params += [
                ParamSpec(f"{conv.name}.kernel", (k, k, channels, conv.out_channels), role="conv_kernel"),
                ParamSpec(f"{conv.name}.bias", (conv.out_channels,), role="bias"),
            ]
            channels = conv.out_channels
        return params + head_params(channels, num_classes)

    def forward_flops(self, input_shape: tuple[int, ...], num_classes: int) -> int:
        """Floating-point operations of one example's forward pass (2 per multiply-add; the
        pooling and ReLUs are not counted)."""
        h, w, c = input_shape
        flops = 0
        for conv in self.convs:
            h = (h + 2 * conv.padding - conv.kernel_size) // conv.stride + 1
            w = (w + 2 * conv.padding - conv.kernel_size) // conv.stride + 1
            flops += 2 * h * w * conv.kernel_size**2 * c * conv.out_channels
            c = conv.out_channels
        return flops + 2 * c * num_classes

    def reference_forward(self, weights: Mapping[str, np.ndarray], x: np.ndarray) -> np.ndarray:
        h = x.astype(np.float64)
        for conv in self.convs:
            h = relu(
                conv2d_reference(
                    h, weights[f"{conv.name}.kernel"], weights[f"{conv.name}.bias"], conv.stride, conv.padding
                )
            )
        pooled = h.mean(axis=(1, 2))
        return dense_reference(pooled, weights["head.kernel"], weights["head.bias"])
