"""The zoo's EfficientNet-Lite (:class:`zoo.models.EfficientNetLiteSpec`) as a Flax linen module.

Built from the spec's own block list (``mbconv_blocks``); every submodule is named by its
canonical prefix, so ``blocks.3.depthwise.kernel`` is ``params["blocks.3.depthwise"]["kernel"]``
and ``top.bn.var`` is ``batch_stats["top.bn"]["var"]`` (:mod:`zoo_jax.modules` maps the names).

* Padding: ``"SAME"`` on every conv: XLA's ``SAME`` is TensorFlow's, asymmetric at stride 2
  (the extra row/column at the end), as the published network and the reference pad.
* Depthwise convs (:class:`DepthwiseConv`) hold their kernel in the canonical (and Keras) layout
  ``[k, k, C, M]`` and reshape it to XLA's grouped-conv layout ``[k, k, 1, C * M]`` inside the
  call, so weights convert without copying, as for every other zoo-jax layer.
* BatchNorm: :class:`zoo_jax.resnet.BatchNorm` (torch's running-variance update), eps
  ``spec.bn_eps``; only the layers in ``train_bn`` use batch statistics with ``train=True``.
* Precision: ``dtype`` is the compute dtype of the convs and ReLU6; BatchNorm computes in float32;
  the pool accumulates in float32 and the whole head (hidden Dense+ReLU, classifier) is float32.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from zoo.models import EfficientNetLiteSpec
from zoo.models.efficientnet import STEM_WIDTH, TOP_WIDTH
from zoo_jax.resnet import BatchNorm


class DepthwiseConv(nn.Module):
    """Depthwise convolution, no bias, ``SAME`` padding; kernel ``[k, k, C, multiplier]``."""

    kernel_size: int
    stride: int
    multiplier: int = 1
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k, channels = self.kernel_size, x.shape[-1]
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (k, k, channels, self.multiplier), jnp.float32)
        rhs = kernel.reshape(k, k, 1, channels * self.multiplier).astype(self.dtype)
        return jax.lax.conv_general_dilated(
            x.astype(self.dtype), rhs, (self.stride, self.stride), "SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=channels)


class EfficientNetLite(nn.Module):
    spec: EfficientNetLiteSpec
    num_classes: int
    dtype: Any = jnp.float32  # the backbone's compute dtype
    #: BatchNorm layers that normalise with batch statistics when called with ``train=True``.
    train_bn: frozenset[str] = frozenset()

    def _bn(self, name: str, h: jax.Array, train: bool, act: bool = True) -> jax.Array:
        h = BatchNorm(self.spec.bn_momentum, self.spec.bn_eps, self.dtype, name=name)(
            h, use_running_average=not (train and name in self.train_bn))
        return nn.relu6(h) if act else h

    def _conv(self, name: str, features: int, kernel: int, stride: int, h: jax.Array) -> jax.Array:
        return nn.Conv(features, (kernel, kernel), strides=(stride, stride), padding="SAME", use_bias=False,
                       dtype=self.dtype, param_dtype=jnp.float32, name=name)(h)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        h = self._bn("stem.bn", self._conv("stem.conv", STEM_WIDTH, 3, 2, x.astype(self.dtype)), train)
        for b in self.spec.mbconv_blocks():
            out = h
            if b.expand_ratio != 1:
                out = self._bn(f"{b.name}.expand_bn", self._conv(f"{b.name}.expand", b.hidden, 1, 1, out), train)
            out = DepthwiseConv(b.kernel_size, b.stride, dtype=self.dtype, name=f"{b.name}.depthwise")(out)
            out = self._bn(f"{b.name}.depthwise_bn", out, train)
            out = self._conv(f"{b.name}.project", b.out_channels, 1, 1, out)
            out = self._bn(f"{b.name}.project_bn", out, train, act=False)
            h = out + h if b.residual else out
        h = self._bn("top.bn", self._conv("top.conv", TOP_WIDTH, 1, 1, h), train)
        features = h.mean(axis=(1, 2), dtype=jnp.float32)
        for j, units in enumerate(self.spec.head_hidden, start=1):
            features = nn.relu(nn.Dense(units, dtype=jnp.float32, param_dtype=jnp.float32, name=f"head.fc{j}")(features))
        return nn.Dense(self.num_classes, dtype=jnp.float32, param_dtype=jnp.float32, name="head")(features)


def efficientnet_lite(spec: EfficientNetLiteSpec, num_classes: int, dtype: Any, train_bn: frozenset[str]) -> nn.Module:
    """The builder :data:`zoo_jax.families.FAMILIES` names for the efficientnet-lite family."""
    return EfficientNetLite(spec, num_classes, dtype, frozenset(train_bn))
