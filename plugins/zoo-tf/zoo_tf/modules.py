"""Keras models for the zoo's model families, and canonical <-> Keras weight conversion.

Keras already uses the canonical layout of every role (dense kernels ``[in, out]``, conv kernels
HWIO, depthwise kernels ``[kh, kw, C, mult]``, embedding tables ``[rows, dim]``, NHWC images), so
converting weights copies arrays unchanged. What this module makes explicit:

* names: canonical ``conv1.kernel`` is a variable of the layer named ``conv1``, and *which*
  variable follows from the parameter's role (:data:`ROLE_ATTRIBUTES`: a kernel is ``kernel``, a
  BatchNorm's scale, shift and statistics are ``gamma``, ``beta``, ``moving_mean``,
  ``moving_variance``, an embedding table is ``embeddings``), looked up and shape-checked one by
  one;
* inputs: one ``keras.Input`` per declared input (:class:`zoo.models.InputSpec`), of its shape,
  dtype and name; an image model has one, ``image``, float32 NHWC;
* padding: each conv is ``ZeroPadding2D(p)`` then ``Conv2D(padding="valid")``. Keras's
  ``padding="same"`` pads asymmetrically when the stride is 2 (the extra row and column at the
  end), so it would not be the symmetric padding of the reference;
* data format and dtype policy are fixed on every layer, so a user's ``~/.keras/keras.json``
  (``channels_first``) or global dtype policy (``mixed_float16``) cannot change the model;
* precision ``bf16`` (see :mod:`zoo.contract`) is per-layer Keras dtype policies, never the
  global one: the backbone's ``Conv2D`` and ``Dense`` layers (and the zero padding in front of a
  conv, which is exact in any dtype) get ``mixed_bfloat16`` -- float32 variables, read as
  bfloat16, so the matmul/conv, its bias add and its ReLU compute in bfloat16 -- while the
  flatten, the global average pooling and the head get ``float32``: Keras casts the pooling's
  bfloat16 input up to float32, so the mean, the head and the logits (hence the loss) are float32.

The ResNets are built in :mod:`zoo_tf.resnet`. Importing this module imports Keras and
TensorFlow: the adapter imports it inside its methods.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence

if "keras" not in sys.modules:  # the backend is chosen once, when keras is first imported
    os.environ["KERAS_BACKEND"] = "tensorflow"

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

from zoo.models import CNNSpec, InputSpec, MLPSpec, ModelSpec  # noqa: E402
from zoo.models.inputs import batch_form  # noqa: E402

if keras.backend.backend() != "tensorflow":
    raise ImportError(
        f"keras was already imported with the {keras.backend.backend()!r} backend in this process; "
        "zoo-tf needs KERAS_BACKEND=tensorflow set before keras is first imported"
    )

FORMAT = "channels_last"  # NHWC, the canonical image layout
DTYPE = "float32"  # variables, logits; the compute dtype of everything outside the backbone
#: The Keras dtype policy of the backbone's layers, by zoo precision.
BACKBONE_POLICY = {"fp32": "float32", "bf16": "mixed_bfloat16"}
#: parameter role -> the attribute of its Keras layer that holds it.
ROLE_ATTRIBUTES = {
    "dense_kernel": "kernel", "conv_kernel": "kernel", "depthwise_kernel": "kernel", "bias": "bias",
    "embedding": "embeddings", "norm_scale": "gamma", "norm_bias": "beta", "bn_mean": "moving_mean",
    "bn_var": "moving_variance",
}
#: What runs in bfloat16 at precision bf16 (where the model has it), for ``info().details``.
BF16_OPS = ("Conv2D", "Dense (backbone)")


def mlp_features(spec: MLPSpec, x: keras.KerasTensor, backbone: str) -> keras.KerasTensor:
    """The MLP's hidden layers on NHWC images ``x``, flattened row-major as the reference does."""
    h = layers.Flatten(data_format=FORMAT, dtype=DTYPE, name="flatten")(x)  # NHWC row-major
    for i, units in enumerate(spec.hidden, start=1):
        h = layers.Dense(units, activation="relu", dtype=backbone, name=f"fc{i}")(h)
    return h


def cnn_features(spec: CNNSpec, x: keras.KerasTensor, backbone: str) -> keras.KerasTensor:
    """The CNN's convolutions (explicit symmetric padding) and its float32 global average pool."""
    h = x
    for conv in spec.convs:
        if conv.padding:
            h = layers.ZeroPadding2D(conv.padding, data_format=FORMAT, dtype=backbone, name=f"{conv.name}_pad")(h)
        h = layers.Conv2D(conv.out_channels, conv.kernel_size, strides=conv.stride, padding="valid",
                          data_format=FORMAT, activation="relu", dtype=backbone, name=conv.name)(h)
    return layers.GlobalAveragePooling2D(data_format=FORMAT, dtype=DTYPE, name="pool")(h)  # float32 mean


def build_model(
    spec: ModelSpec, inputs: Sequence[InputSpec], num_classes: int, precision: str,
    features: Callable[[ModelSpec, object, str], keras.KerasTensor],
) -> keras.Model:
    """A Keras functional model of ``spec``: one ``keras.Input`` per declared input (of its
    shape, dtype and name; the model takes the batch form, an array for one input, a dict for
    several), then ``features(spec, x, backbone_policy)`` (the family's builder, from
    :data:`zoo_tf.adapter.FAMILIES`) computing at ``precision`` ("fp32" or "bf16"), then the
    head, which always computes in float32."""
    if precision not in BACKBONE_POLICY:
        raise ValueError(f"zoo-tf has no precision {precision!r}; choose one of {', '.join(BACKBONE_POLICY)}")
    x = batch_form({s.name: keras.Input(shape=s.shape, dtype=s.dtype, name=s.name) for s in inputs})
    h = features(spec, x, BACKBONE_POLICY[precision])
    outputs = layers.Dense(num_classes, dtype=DTYPE, name="head")(h)  # float32 logits, at any precision
    return keras.Model(x, outputs, name=spec.name)


def canonical_variables(
    model: keras.Model, spec: ModelSpec, input_shape: tuple[int, ...], num_classes: int
) -> dict[str, keras.Variable]:
    """canonical name -> Keras variable, for every parameter of ``spec``; checks that the shapes
    agree and that the model has no other weights."""
    variables = {}
    for param in spec.parameters(input_shape, num_classes):
        layer = model.get_layer(param.layer)  # "conv1.kernel" -> the layer conv1; the role says which variable
        variable = getattr(layer, ROLE_ATTRIBUTES[param.role])
        if tuple(variable.shape) != param.shape:
            raise ValueError(f"{param.name}: Keras has shape {tuple(variable.shape)}, expected {param.shape}")
        variables[param.name] = variable
    if len(model.weights) != len(variables):
        extra = sorted({v.path for v in model.weights} - {v.path for v in variables.values()})
        raise ValueError(f"the Keras model has weights with no canonical name: {extra}")
    return variables


def load_canonical(variables: Mapping[str, keras.Variable], weights: Mapping[str, np.ndarray]) -> None:
    """Assign canonical ``weights`` (already checked against the spec) to ``variables``."""
    for name, variable in variables.items():
        variable.assign(np.asarray(weights[name], dtype=np.float32))


def export_canonical(variables: Mapping[str, keras.Variable]) -> dict[str, np.ndarray]:
    """Copies of every variable as canonical float32 arrays (the variables are float32 at every
    precision)."""
    return {name: np.array(v.numpy(), dtype=np.float32) for name, v in variables.items()}


def set_trainable(model: keras.Model, variables: Mapping[str, keras.Variable], trainable: frozenset[str]) -> None:
    """Mark exactly the ``trainable`` canonical parameters as trainable; a layer none of whose
    parameters train is frozen as a whole (a frozen BatchNorm layer then runs in inference mode)."""
    by_layer: dict[str, list[str]] = {}
    for name in variables:
        by_layer.setdefault(name.rsplit(".", 1)[0], []).append(name)
    for layer_name, names in by_layer.items():
        model.get_layer(layer_name).trainable = any(n in trainable for n in names)  # also sets its variables
        for name in names:
            variables[name].trainable = name in trainable
