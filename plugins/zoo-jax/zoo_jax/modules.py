"""Flax modules for the zoo's model families, and canonical <-> Flax weight conversion.

We use the classic ``flax.linen`` API: a module is a stateless description and the parameters
are a plain pytree passed to ``apply``, which makes the name mapping explicit and keeps the
jitted steps pure functions of their arguments (``flax.nnx`` holds state in objects instead).

Flax's layouts equal the canonical ones (dense ``[in, out]``, conv HWIO, NHWC inputs), so
conversion only maps names: canonical ``"conv1.kernel"`` is ``params["conv1"]["kernel"]``.
The adapter keeps parameters flat, keyed by canonical name, and nests them only inside
:func:`apply`.
"""

from __future__ import annotations

from typing import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from zoo.models import CNNSpec, MLPSpec, ModelSpec

FlatParams = dict[str, jax.Array]


class MLP(nn.Module):
    spec: MLPSpec
    num_classes: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = x.reshape((x.shape[0], -1))  # NHWC row-major, as the canonical flatten
        for i, units in enumerate(self.spec.hidden, start=1):
            h = nn.relu(nn.Dense(units, dtype=jnp.float32, name=f"fc{i}")(h))
        return nn.Dense(self.num_classes, dtype=jnp.float32, name="head")(h)


class CNN(nn.Module):
    spec: CNNSpec
    num_classes: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = x
        for conv in self.spec.convs:
            p, k, s = conv.padding, conv.kernel_size, conv.stride
            # Explicit symmetric pairs: 'SAME' pads the end more than the start at stride 2.
            h = nn.Conv(
                conv.out_channels, (k, k), strides=(s, s), padding=((p, p), (p, p)),
                dtype=jnp.float32, name=conv.name,
            )(h)
            h = nn.relu(h)
        return nn.Dense(self.num_classes, dtype=jnp.float32, name="head")(h.mean(axis=(1, 2)))


def build_module(spec: ModelSpec, num_classes: int) -> nn.Module:
    """The Flax module for ``spec``; raise ``ValueError`` for a family zoo-jax cannot build."""
    if isinstance(spec, MLPSpec):
        return MLP(spec, num_classes)
    if isinstance(spec, CNNSpec):
        return CNN(spec, num_classes)
    raise ValueError(f"zoo-jax cannot build model family {spec.family!r}; it builds 'mlp' and 'cnn'")


def _flax_path(canonical: str) -> tuple[str, str]:
    """``"fc1.kernel"`` -> ``("fc1", "kernel")``: the path in Flax's ``params`` collection."""
    layer, kind = canonical.rsplit(".", 1)
    return layer, kind


def flax_shapes(module: nn.Module, input_shape: tuple[int, int, int]) -> dict[str, tuple[int, ...]]:
    """Canonical name -> shape of every parameter the Flax module creates (no compute)."""
    variables = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, *input_shape), jnp.float32))
    return {
        f"{layer}.{kind}": tuple(leaf.shape)
        for layer, leaves in variables["params"].items()
        for kind, leaf in leaves.items()
    }


def canonical_to_flat(
    module: nn.Module, weights: Mapping[str, np.ndarray], input_shape: tuple[int, int, int]
) -> dict[str, np.ndarray]:
    """Check ``weights`` against the module's own parameters and return float32 copies."""
    expected = flax_shapes(module, input_shape)
    if set(expected) != set(weights):
        raise ValueError(
            f"canonical names do not match the Flax module: missing {sorted(set(expected) - set(weights))}, "
            f"unexpected {sorted(set(weights) - set(expected))}"
        )
    out = {}
    for name, value in weights.items():
        array = np.array(value, dtype=np.float32)  # a copy: the caller's arrays stay theirs
        if array.shape != expected[name]:
            raise ValueError(f"{name}: Flax expects {expected[name]}, got {array.shape}")
        out[name] = array
    return out


def apply(module: nn.Module, flat: Mapping[str, jax.Array], x: jax.Array) -> jax.Array:
    """Logits of ``module`` for the NHWC batch ``x`` with flat canonical parameters."""
    params: dict[str, dict[str, jax.Array]] = {}
    for name, value in flat.items():
        layer, kind = _flax_path(name)
        params.setdefault(layer, {})[kind] = value
    return module.apply({"params": params}, x)
