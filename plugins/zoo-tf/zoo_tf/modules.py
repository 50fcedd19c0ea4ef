"""Keras models for the zoo's model families, and canonical <-> Keras weight conversion.

Keras already uses the canonical layout (dense kernels ``[in, out]``, conv kernels HWIO, NHWC
images), so converting weights copies arrays unchanged. What this module makes explicit:

* names: canonical ``conv1.kernel`` is the ``kernel`` variable of the layer named ``conv1``
  (``fc2.bias`` of ``fc2``, ``head.kernel`` of ``head``), looked up and shape-checked one by one;
* padding: each conv is ``ZeroPadding2D(p)`` then ``Conv2D(padding="valid")``. Keras's
  ``padding="same"`` pads asymmetrically when the stride is 2 (the extra row and column at the
  end), so it would not be the symmetric padding of the reference;
* data format and dtype are fixed on every layer, so a user's ``~/.keras/keras.json``
  (``channels_first``) or global dtype policy (``mixed_float16``) cannot change the model.

Importing this module imports Keras and TensorFlow: the adapter imports it inside its methods.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

if "keras" not in sys.modules:  # the backend is chosen once, when keras is first imported
    os.environ["KERAS_BACKEND"] = "tensorflow"

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

from zoo.models import CNNSpec, MLPSpec, ModelSpec  # noqa: E402

if keras.backend.backend() != "tensorflow":
    raise ImportError(
        f"keras was already imported with the {keras.backend.backend()!r} backend in this process; "
        "zoo-tf needs KERAS_BACKEND=tensorflow set before keras is first imported"
    )

FORMAT = "channels_last"  # NHWC, the canonical image layout
DTYPE = "float32"


def build_model(spec: ModelSpec, input_shape: tuple[int, int, int], num_classes: int) -> keras.Model:
    """A Keras functional model of ``spec`` for NHWC inputs of ``input_shape``."""
    inputs = keras.Input(shape=input_shape, dtype=DTYPE, name="images")
    if isinstance(spec, MLPSpec):
        h = layers.Flatten(data_format=FORMAT, dtype=DTYPE, name="flatten")(inputs)  # NHWC row-major
        for i, units in enumerate(spec.hidden, start=1):
            h = layers.Dense(units, activation="relu", dtype=DTYPE, name=f"fc{i}")(h)
    elif isinstance(spec, CNNSpec):
        h = inputs
        for conv in spec.convs:
            if conv.padding:
                h = layers.ZeroPadding2D(conv.padding, data_format=FORMAT, dtype=DTYPE, name=f"{conv.name}_pad")(h)
            h = layers.Conv2D(
                conv.out_channels,
                conv.kernel_size,
                strides=conv.stride,
                padding="valid",
                data_format=FORMAT,
                activation="relu",
                dtype=DTYPE,
                name=conv.name,
            )(h)
        h = layers.GlobalAveragePooling2D(data_format=FORMAT, dtype=DTYPE, name="pool")(h)
    else:
        raise ValueError(f"zoo-tf cannot build model family {spec.family!r}")
    outputs = layers.Dense(num_classes, dtype=DTYPE, name="head")(h)
    return keras.Model(inputs, outputs, name=spec.name)


def canonical_variables(
    model: keras.Model, spec: ModelSpec, input_shape: tuple[int, int, int], num_classes: int
) -> dict[str, keras.Variable]:
    """canonical name -> Keras variable, for every parameter of ``spec``; checks that the shapes
    agree and that the model has no other weights."""
    variables = {}
    for param in spec.parameters(input_shape, num_classes):
        layer_name, attr = param.name.rsplit(".", 1)  # "conv1.kernel" -> layer conv1, its .kernel
        variable = getattr(model.get_layer(layer_name), attr)
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
    """Copies of every variable as canonical float32 arrays."""
    return {name: np.array(v.numpy(), dtype=np.float32) for name, v in variables.items()}


def set_trainable(model: keras.Model, variables: Mapping[str, keras.Variable], trainable: frozenset[str]) -> None:
    """Mark exactly the ``trainable`` canonical parameters as trainable; a layer none of whose
    parameters train is frozen as a whole."""
    by_layer: dict[str, list[str]] = {}
    for name in variables:
        by_layer.setdefault(name.rsplit(".", 1)[0], []).append(name)
    for layer_name, names in by_layer.items():
        model.get_layer(layer_name).trainable = any(n in trainable for n in names)  # also sets its variables
        for name in names:
            variables[name].trainable = name in trainable
