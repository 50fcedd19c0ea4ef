"""zoo-bench plugin that benchmarks the zoo's NumPy reference as an inference-only framework."""

from zoo import hookimpl
from zoo_numpy.adapter import NumpyFramework


@hookimpl
def zoo_frameworks():
    return [NumpyFramework()]
