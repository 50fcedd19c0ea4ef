"""Initial weights made once in NumPy and shipped to every framework, so that no comparison
depends on a framework's default initialiser (they all differ).

By canonical suffix: ``.kernel`` He uniform (conv kernels' fan-in is ``kh * kw * in``), a head's
kernel Glorot uniform, ``.bias`` zeros; BatchNorm ``.scale`` ones, ``.mean`` zeros, ``.var``
ones (an untrained BatchNorm is the identity at inference, up to eps). Only kernels draw from
the seeded generator, in parameter order, so adding BatchNorm to a family does not change how
the other families' weights are drawn.
"""

from __future__ import annotations

from math import prod
from typing import Mapping

import numpy as np

from zoo.models.spec import ModelSpec, ParamSpec


def _init_param(param: ParamSpec, rng: np.random.Generator) -> np.ndarray:
    if param.name.endswith((".bias", ".mean")):
        return np.zeros(param.shape, dtype=np.float32)
    if param.name.endswith((".scale", ".var")):
        return np.ones(param.shape, dtype=np.float32)
    fan_out = param.shape[-1]
    fan_in = prod(param.shape[:-1])
    if param.is_head:  # Glorot uniform: a head starts small and symmetric.
        limit = np.sqrt(6.0 / (fan_in + fan_out))
    else:  # He uniform, for ReLU layers.
        limit = np.sqrt(6.0 / fan_in)
    return rng.uniform(-limit, limit, size=param.shape).astype(np.float32)


def init_weights(
    spec: ModelSpec, input_shape: tuple[int, int, int], num_classes: int, seed: int
) -> dict[str, np.ndarray]:
    """Random canonical weights for every parameter of ``spec`` (training from scratch)."""
    rng = np.random.default_rng(seed)
    return {p.name: _init_param(p, rng) for p in spec.parameters(input_shape, num_classes)}


def with_new_head(
    spec: ModelSpec,
    weights: Mapping[str, np.ndarray],
    input_shape: tuple[int, int, int],
    num_classes: int,
    seed: int,
) -> dict[str, np.ndarray]:
    """``weights`` with the head replaced by a fresh one sized for ``num_classes``."""
    rng = np.random.default_rng(seed)
    out = {name: value for name, value in weights.items() if not name.startswith("head.")}
    for param in spec.parameters(input_shape, num_classes):
        if param.is_head:
            out[param.name] = _init_param(param, rng)
    spec.check_weights(out, input_shape, num_classes)
    return out
