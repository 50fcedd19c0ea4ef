"""The zoo's ResNets (:class:`zoo.models.ResNetSpec`) as Keras functional graphs.

Built from the spec's own layer list (``stem_conv``, ``stem_pool``, ``residual_blocks``); every
layer is named by its canonical prefix (``layer1.0.conv1``, ``layer1.0.bn1``), so canonical
``layer1.0.bn1.scale`` (role ``norm_scale``) is the ``gamma`` of the layer ``layer1.0.bn1``
(:data:`zoo_tf.modules.ROLE_ATTRIBUTES`).

* Padding: ``ZeroPadding2D(p)`` then ``Conv2D(padding="valid")``, the symmetric padding of the
  reference; the stem's max-pool is ``ZeroPadding2D(1)`` then ``MaxPooling2D(3, 2)``: zeros
  instead of torch's ``-inf``, the same here because the pool's input has passed a ReLU.
* BatchNorm (:class:`TorchBatchNorm`): ``epsilon=spec.bn_eps`` (Keras's default is 1e-3) and
  ``momentum=1 - spec.bn_momentum`` (Keras weights the *old* value), and torch's running
  variance update (below). A BatchNorm layer with ``trainable=False`` runs in inference mode even
  when the model is called with ``training=True`` (Keras 3's rule), which is what a frozen layer
  must do; :func:`zoo_tf.modules.set_trainable` freezes exactly the layers whose scale is frozen.
* Precision ``bf16``: convs, ReLUs, additions, padding and the max-pool use the backbone's
  ``mixed_bfloat16`` policy; a ``mixed_bfloat16`` BatchNorm casts its bfloat16 input to float32,
  normalises in float32 with its float32 variables and returns bfloat16. The global average pool
  and the head are float32.
"""

from __future__ import annotations

import math

from zoo.models import ConvBN, ResNetSpec
from zoo_tf.modules import DTYPE, FORMAT, keras  # keras, on the TensorFlow backend

layers, ops = keras.layers, keras.ops


class TorchBatchNorm(layers.BatchNormalization):
    """``BatchNormalization`` whose running variance follows torch's: in training mode the layer
    normalises with the batch's biased variance (as every framework does) but moves the running
    variance towards the *unbiased* one, ``var * n / (n - 1)`` with ``n = batch * height * width``
    (Keras and Flax use the biased one). That keeps running statistics equal across frameworks
    after a fine-tune that trains BatchNorm. Inference mode is Keras's own."""

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable) or mask is not None:
            return super().call(inputs, training=training, mask=mask)
        x = ops.cast(inputs, "float32")  # as Keras does for bfloat16 inputs
        mean, variance = ops.moments(x, axes=self._reduction_axes)
        n = math.prod(x.shape[a] for a in self._reduction_axes)  # static: the zoo's steps have fixed shapes
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(
            self.moving_variance * self.momentum + variance * (n / (n - 1)) * (1.0 - self.momentum))
        out = ops.batch_normalization(x, mean, variance, axis=self.axis, offset=self.beta, scale=self.gamma,
                                      epsilon=self.epsilon)
        return ops.cast(out, self.compute_dtype)


def _conv_bn(spec: ResNetSpec, unit: ConvBN, h, dtype: str):
    if unit.padding:
        h = layers.ZeroPadding2D(unit.padding, data_format=FORMAT, dtype=dtype, name=f"{unit.conv}_pad")(h)
    h = layers.Conv2D(unit.out_channels, unit.kernel_size, strides=unit.stride, padding="valid",
                      use_bias=spec.conv_bias, data_format=FORMAT, dtype=dtype, name=unit.conv)(h)
    h = TorchBatchNorm(axis=-1, momentum=1.0 - spec.bn_momentum, epsilon=spec.bn_eps, dtype=dtype, name=unit.bn)(h)
    return layers.ReLU(dtype=dtype, name=f"{unit.bn}_relu")(h) if unit.relu else h


def resnet_features(spec: ResNetSpec, inputs: keras.KerasTensor, dtype: str) -> keras.KerasTensor:
    """The backbone of ``spec`` on ``inputs`` with layers of dtype policy ``dtype``, up to (not
    including) the global average pool."""
    h = _conv_bn(spec, spec.stem_conv(inputs.shape[-1]), inputs, dtype)
    if spec.stem_pool is not None:
        size, stride, padding = spec.stem_pool
        h = layers.ZeroPadding2D(padding, data_format=FORMAT, dtype=dtype, name="pool_pad")(h)
        h = layers.MaxPooling2D(size, stride, padding="valid", data_format=FORMAT, dtype=dtype, name="pool")(h)
    for block in spec.residual_blocks():
        shortcut = h if block.downsample is None else _conv_bn(spec, block.downsample, h, dtype)
        out = h
        for unit in block.convs:
            out = _conv_bn(spec, unit, out, dtype)
        h = layers.Add(dtype=dtype, name=f"{block.name}_add")([out, shortcut])
        h = layers.ReLU(dtype=dtype, name=f"{block.name}_relu")(h)
    return h


def resnet_pooled(spec: ResNetSpec, inputs: keras.KerasTensor, dtype: str) -> keras.KerasTensor:
    """The backbone of ``spec`` and its float32 global average pool: the features the head sees
    (the builder :data:`zoo_tf.adapter.FAMILIES` names for the resnet family)."""
    h = resnet_features(spec, inputs, dtype)
    return layers.GlobalAveragePooling2D(data_format=FORMAT, dtype=DTYPE, name="avgpool")(h)  # float32 mean
