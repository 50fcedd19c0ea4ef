"""The zoo's EfficientNet-Lite (:class:`zoo.models.EfficientNetLiteSpec`) as a Keras functional graph.

Built from the spec's own block list (``mbconv_blocks``); every layer is named by its canonical
prefix (``blocks.3.depthwise``, ``blocks.3.depthwise_bn``, ``head.fc1``), so canonical
``blocks.3.depthwise.kernel`` (role ``depthwise_kernel``) is the ``kernel`` of the
``DepthwiseConv2D`` layer ``blocks.3.depthwise`` (:data:`zoo_tf.modules.ROLE_ATTRIBUTES`; Keras's
depthwise layout ``[k, k, C, 1]`` is the canonical one).

* Padding: ``padding="same"`` on every conv: on the TensorFlow backend that is TensorFlow's
  ``SAME``, asymmetric at stride 2 exactly as the published network and the reference pad.
* BatchNorm: :class:`zoo_tf.resnet.TorchBatchNorm` with ``epsilon=spec.bn_eps`` (1e-3) and
  ``momentum=1 - spec.bn_momentum`` (0.99); a layer frozen by
  :func:`zoo_tf.modules.set_trainable` runs in inference mode even with ``training=True``.
* ReLU6 is ``layers.ReLU(max_value=6)``.
* Precision ``bf16``: convs, BatchNorm outputs, ReLU6 and additions use the backbone's
  ``mixed_bfloat16`` policy; the global average pool and every head layer (the hidden
  ``Dense(1024, ReLU)`` and, in :func:`zoo_tf.modules.build_model`, the classifier) are float32.
"""

from __future__ import annotations

from zoo.models import EfficientNetLiteSpec
from zoo.models.efficientnet import STEM_WIDTH, TOP_WIDTH
from zoo_tf.modules import DTYPE, FORMAT, keras  # keras, on the TensorFlow backend
from zoo_tf.resnet import TorchBatchNorm

layers = keras.layers


def _bn_act(spec: EfficientNetLiteSpec, bn: str, h, dtype: str, act: bool = True):
    h = TorchBatchNorm(axis=-1, momentum=1.0 - spec.bn_momentum, epsilon=spec.bn_eps, dtype=dtype, name=bn)(h)
    return layers.ReLU(max_value=6.0, dtype=dtype, name=f"{bn}_relu6")(h) if act else h


def _conv(name: str, filters: int, kernel: int, stride: int, dtype: str):
    return layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, data_format=FORMAT,
                         dtype=dtype, name=name)


def efficientnet_lite_pooled(spec: EfficientNetLiteSpec, inputs: keras.KerasTensor, dtype: str) -> keras.KerasTensor:
    """The backbone of ``spec`` (layers of dtype policy ``dtype``), its float32 global average
    pool and the head's hidden float32 ``Dense+ReLU`` layers: what the classifier sees (the
    builder :data:`zoo_tf.adapter.FAMILIES` names for the efficientnet-lite family)."""
    h = _bn_act(spec, "stem.bn", _conv("stem.conv", STEM_WIDTH, 3, 2, dtype)(inputs), dtype)
    for b in spec.mbconv_blocks():
        out = h
        if b.expand_ratio != 1:
            out = _bn_act(spec, f"{b.name}.expand_bn", _conv(f"{b.name}.expand", b.hidden, 1, 1, dtype)(out), dtype)
        out = layers.DepthwiseConv2D(b.kernel_size, strides=b.stride, padding="same", use_bias=False,
                                     data_format=FORMAT, dtype=dtype, name=f"{b.name}.depthwise")(out)
        out = _bn_act(spec, f"{b.name}.depthwise_bn", out, dtype)
        out = _conv(f"{b.name}.project", b.out_channels, 1, 1, dtype)(out)
        out = _bn_act(spec, f"{b.name}.project_bn", out, dtype, act=False)
        h = layers.Add(dtype=dtype, name=f"{b.name}_add")([out, h]) if b.residual else out
    h = _bn_act(spec, "top.bn", _conv("top.conv", TOP_WIDTH, 1, 1, dtype)(h), dtype)
    h = layers.GlobalAveragePooling2D(data_format=FORMAT, dtype=DTYPE, name="avgpool")(h)  # float32 mean
    for j, units in enumerate(spec.head_hidden, start=1):
        h = layers.Dense(units, activation="relu", dtype=DTYPE, name=f"head.fc{j}")(h)
    return h
