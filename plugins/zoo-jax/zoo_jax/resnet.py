"""The zoo's ResNets (:class:`zoo.models.ResNetSpec`) as a Flax linen module.

Built from the spec's own layer list (``stem_conv``, ``stem_pool``, ``residual_blocks``); every
submodule is named by its canonical prefix, so ``layer1.0.conv1.kernel`` is
``params["layer1.0.conv1"]["kernel"]`` and ``layer1.0.bn1.mean`` is
``batch_stats["layer1.0.bn1"]["mean"]`` (the collections Flax's own ``nn.BatchNorm`` uses).

* Padding: explicit symmetric pairs for every conv and for the max-pool (``nn.max_pool`` pads
  with ``-inf``, as the reference and torch do); ``'SAME'`` would pad the end more at stride 2.
* BatchNorm (:class:`BatchNorm`): ``epsilon=spec.bn_eps``; running statistics move by
  ``spec.bn_momentum`` towards the batch's mean and *unbiased* variance, as torch's do. A layer
  normalises with batch statistics only when the module is called with ``train=True`` *and* the
  layer is in ``train_bn`` (its scale trains); otherwise it uses its running statistics.
* Precision: ``dtype`` is the compute dtype of the convs (float32 parameters cast to it); a
  BatchNorm computes in float32 and returns ``dtype``, so ReLUs, additions and the max-pool run in
  ``dtype``; the global mean pool accumulates in float32 and the head computes in float32.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from zoo.models import ConvBN, ResNetSpec


class BatchNorm(nn.Module):
    """BatchNorm over the channel axis of NHWC inputs, with torch's running-variance update.

    Flax's ``nn.BatchNorm`` (and Keras's) moves the running variance towards the batch's biased
    variance; torch uses the unbiased one, ``var * n / (n - 1)`` with ``n = batch * height *
    width``. Normalisation uses the biased variance in all three. This layer follows torch, so
    running statistics agree across frameworks after a fine-tune that trains BatchNorm."""

    momentum: float  # torch's convention: the weight of the new batch statistic
    epsilon: float
    dtype: Any = jnp.float32  # output dtype; the computation is float32

    @nn.compact
    def __call__(self, x: jax.Array, use_running_average: bool) -> jax.Array:
        channels = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (channels,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (channels,), jnp.float32)
        ra_mean = self.variable("batch_stats", "mean", jnp.zeros, (channels,), jnp.float32)
        ra_var = self.variable("batch_stats", "var", jnp.ones, (channels,), jnp.float32)
        x = x.astype(jnp.float32)
        if use_running_average:
            mean, var = ra_mean.value, ra_var.value
        else:
            mean = x.mean(axis=(0, 1, 2))
            var = jnp.square(x - mean).mean(axis=(0, 1, 2))  # biased, for normalising
            if not self.is_initializing():
                n = x.size // channels
                m = self.momentum
                ra_mean.value = (1.0 - m) * ra_mean.value + m * mean
                ra_var.value = (1.0 - m) * ra_var.value + m * var * (n / (n - 1))
        y = (x - mean) * (scale * jax.lax.rsqrt(var + self.epsilon)) + bias
        return y.astype(self.dtype)


class ResNet(nn.Module):
    spec: ResNetSpec
    num_classes: int
    dtype: Any = jnp.float32  # the backbone's compute dtype
    #: BatchNorm layers that normalise with batch statistics (and update their running ones)
    #: when called with ``train=True``: those whose scale trains.
    train_bn: frozenset[str] = frozenset()

    def _conv_bn(self, unit: ConvBN, x: jax.Array, train: bool) -> jax.Array:
        p, k, s = unit.padding, unit.kernel_size, unit.stride
        h = nn.Conv(unit.out_channels, (k, k), strides=(s, s), padding=((p, p), (p, p)), use_bias=self.spec.conv_bias,
                    dtype=self.dtype, param_dtype=jnp.float32, name=unit.conv)(x)
        h = BatchNorm(self.spec.bn_momentum, self.spec.bn_eps, self.dtype, name=unit.bn)(
            h, use_running_average=not (train and unit.bn in self.train_bn))
        return nn.relu(h) if unit.relu else h

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        h = self._conv_bn(self.spec.stem_conv(x.shape[-1]), x.astype(self.dtype), train)
        if self.spec.stem_pool is not None:
            size, stride, p = self.spec.stem_pool
            h = nn.max_pool(h, (size, size), strides=(stride, stride), padding=((p, p), (p, p)))
        for block in self.spec.residual_blocks():
            shortcut = h if block.downsample is None else self._conv_bn(block.downsample, h, train)
            out = h
            for unit in block.convs:
                out = self._conv_bn(unit, out, train)
            h = nn.relu(out + shortcut)
        features = h.mean(axis=(1, 2), dtype=jnp.float32)
        return nn.Dense(self.num_classes, dtype=jnp.float32, param_dtype=jnp.float32, name="head")(features)


def resnet(spec: ResNetSpec, num_classes: int, dtype: Any, train_bn: frozenset[str]) -> nn.Module:
    """The builder :data:`zoo_jax.adapter.FAMILIES` names for the resnet family."""
    return ResNet(spec, num_classes, dtype, frozenset(train_bn))
