"""Flax modules for the zoo's model families, and canonical <-> Flax weight conversion.

We use the classic ``flax.linen`` API: a module is a stateless description and the parameters
are a plain pytree passed to ``apply``, which makes the name mapping explicit and keeps the
jitted steps pure functions of their arguments (``flax.nnx`` holds state in objects instead).

Flax's layouts equal the canonical ones of every role (dense ``[in, out]``, conv HWIO, an
``nn.Embed`` table ``[rows, dim]``, NHWC inputs), so conversion copies arrays unchanged, whatever
their rank, and only maps names: canonical ``"conv1.kernel"`` is ``params["conv1"]["kernel"]``, and a
BatchNorm's running statistics ``"bn1.mean"``/``"bn1.var"`` are ``batch_stats["bn1"]["mean"]``/``["var"]``
(the ResNets, :mod:`zoo_jax.resnet`). The adapter keeps parameters and statistics flat, keyed
by canonical name, and nests them only inside :func:`apply`.

Precision (the contract's ``bf16`` rule): ``dtype`` is the backbone's compute dtype. With
``bfloat16`` the input is cast to bfloat16 at the backbone's entry and every backbone layer is a
Flax layer with ``dtype=bfloat16, param_dtype=float32``: its float32 parameters are cast to
bfloat16 for the computation (matmul/conv, bias add), so ReLU and the CNN's global mean pool
(accumulated in float32 by ``jnp.mean``, as torch does) also see bfloat16. The features are cast
back to float32 before the head, which always computes in float32, so logits and loss are
float32. The parameters themselves, and hence their gradients and the optimiser state, are
float32 in both modes. With ``float32`` no cast is added and the graph is the plain fp32 one.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from zoo.models import CNNSpec, InputSpec, MLPSpec, ModelSpec
from zoo.models.inputs import batch_form
from zoo_jax.families import FAMILIES, builder

FlatParams = dict[str, jax.Array]
#: Canonical suffixes of the arrays in Flax's ``batch_stats`` collection; the rest are ``params``.
STATE_KINDS = ("mean", "var")

#: Contract precision -> the backbone's compute dtype.
COMPUTE_DTYPES = {"fp32": jnp.float32, "bf16": jnp.bfloat16}
#: What runs in bfloat16 at precision ``bf16`` (reported in ``info().details["bf16_ops"]``).
BF16_OPS = ("dense (backbone: matmul + bias)", "conv (backbone: conv + bias)", "relu (backbone)",
            "global mean pool (cnn; float32 accumulation)", "max-pool and residual add (resnet)",
            "batchnorm input and output (resnet; float32 statistics and arithmetic)",
            "bert: every encoder dense (matmul + bias) and both attention matmuls, results cast to float32")


class MLP(nn.Module):
    spec: MLPSpec
    num_classes: int
    dtype: Any = jnp.float32  # the backbone's compute dtype (module doc)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        h = x.reshape((x.shape[0], -1)).astype(self.dtype)  # NHWC row-major, as the canonical flatten
        for i, units in enumerate(self.spec.hidden, start=1):
            h = nn.relu(nn.Dense(units, dtype=self.dtype, param_dtype=jnp.float32, name=f"fc{i}")(h))
        return _head(self.num_classes, h)


class CNN(nn.Module):
    spec: CNNSpec
    num_classes: int
    dtype: Any = jnp.float32  # the backbone's compute dtype (module doc)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        h = x.astype(self.dtype)
        for conv in self.spec.convs:
            p, k, s = conv.padding, conv.kernel_size, conv.stride
            # Explicit symmetric pairs: 'SAME' pads the end more than the start at stride 2.
            h = nn.Conv(
                conv.out_channels, (k, k), strides=(s, s), padding=((p, p), (p, p)),
                dtype=self.dtype, param_dtype=jnp.float32, name=conv.name,
            )(h)
            h = nn.relu(h)
        return _head(self.num_classes, h.mean(axis=(1, 2)))


def _head(num_classes: int, features: jax.Array) -> jax.Array:
    """The head: float32 features in, float32 compute, float32 logits, whatever the backbone's dtype.
    Called inside a compact ``__call__``, so the layer is named ``head`` in the caller's scope."""
    return nn.Dense(num_classes, dtype=jnp.float32, param_dtype=jnp.float32, name="head")(
        features.astype(jnp.float32)
    )


def mlp(spec: MLPSpec, num_classes: int, dtype: Any, train_bn: frozenset[str]) -> nn.Module:
    return MLP(spec, num_classes, dtype)


def cnn(spec: CNNSpec, num_classes: int, dtype: Any, train_bn: frozenset[str]) -> nn.Module:
    return CNN(spec, num_classes, dtype)


def build_module(
    spec: ModelSpec, num_classes: int, precision: str = "fp32", train_bn: frozenset[str] = frozenset()
) -> nn.Module:
    """The Flax module for ``spec``, by :data:`zoo_jax.families.FAMILIES`; ``ValueError`` for a
    family zoo-jax cannot build. ``train_bn``: the BatchNorm layers that use batch statistics in
    training (ResNets)."""
    if precision not in COMPUTE_DTYPES:
        raise ValueError(f"zoo-jax has no precision {precision!r}; it has {', '.join(COMPUTE_DTYPES)}")
    if spec.family not in FAMILIES:
        raise ValueError(f"zoo-jax cannot build model family {spec.family!r}; it builds {', '.join(FAMILIES)}")
    return builder(spec.family)(spec, num_classes, COMPUTE_DTYPES[precision], frozenset(train_bn))


def _flax_path(canonical: str) -> tuple[str, str, str]:
    """``"fc1.kernel"`` -> ``("params", "fc1", "kernel")``, ``"bn1.var"`` -> ``("batch_stats", "bn1",
    "var")``: the collection and path of a canonical name in Flax's variables."""
    layer, kind = canonical.rsplit(".", 1)
    return ("batch_stats" if kind in STATE_KINDS else "params"), layer, kind


def _flatten(collection: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    return {f"{layer}.{kind}": leaf for layer, leaves in collection.items() for kind, leaf in leaves.items()}


def flax_shapes(module: nn.Module, inputs: Sequence[InputSpec]) -> dict[str, tuple[int, ...]]:
    """Canonical name -> shape of every parameter and statistic the Flax module creates for a
    batch of the declared ``inputs`` (each of its own dtype; no compute)."""
    x = batch_form({s.name: jnp.zeros((1, *s.shape), s.dtype) for s in inputs})
    variables = jax.eval_shape(module.init, jax.random.key(0), x)
    return {name: tuple(leaf.shape) for collection in variables.values() for name, leaf in _flatten(collection).items()}


def canonical_to_flat(
    module: nn.Module, weights: Mapping[str, np.ndarray], inputs: Sequence[InputSpec]
) -> dict[str, np.ndarray]:
    """Check ``weights`` against the module's own parameters (for the declared ``inputs``) and
    return float32 copies."""
    expected = flax_shapes(module, inputs)
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


def apply(module: nn.Module, flat: Mapping[str, jax.Array], x: Any) -> jax.Array:
    """Logits of ``module`` in inference mode for the batch ``x`` (the batch form: an NHWC array
    for an image model, a dict name -> array for several inputs) with flat canonical
    parameters (and BatchNorm running statistics)."""
    return module.apply(_nest(flat), x)


def apply_train(module: nn.Module, flat: Mapping[str, jax.Array], x: Any) -> tuple[jax.Array, FlatParams]:
    """Logits in training mode, and the running statistics after the batch (flat canonical
    names; empty for models without BatchNorm)."""
    logits, updated = module.apply(_nest(flat), x, train=True, mutable=["batch_stats"])
    return logits, _flatten(updated.get("batch_stats", {}))


def _nest(flat: Mapping[str, jax.Array]) -> dict[str, dict[str, dict[str, jax.Array]]]:
    variables: dict[str, dict[str, dict[str, jax.Array]]] = {}
    for name, value in flat.items():
        collection, layer, kind = _flax_path(name)
        variables.setdefault(collection, {}).setdefault(layer, {})[kind] = value
    return variables
