"""zoo-bench plugin for JAX/Flax. Importing this module does not import jax, flax or optax."""

from zoo import hookimpl
from zoo_jax.adapter import JaxFramework


@hookimpl
def zoo_frameworks():
    return [JaxFramework()]
