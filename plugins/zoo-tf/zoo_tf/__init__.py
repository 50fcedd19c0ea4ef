"""zoo-bench plugin for TensorFlow/Keras. Importing this module imports neither TensorFlow
nor Keras (that takes seconds); the adapter imports them inside its methods."""

from zoo import hookimpl
from zoo_tf.adapter import TFFramework


@hookimpl
def zoo_frameworks():
    return [TFFramework()]
