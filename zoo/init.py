"""Initial weights made once in NumPy and shipped to every framework, so that no comparison
depends on a framework's default initialiser (they all differ).

By parameter role (:data:`zoo.models.params.ROLES`), never by name:

* ``dense_kernel``, ``conv_kernel``, ``depthwise_kernel``: He uniform, ``U(-sqrt(6 / fan_in),
  +sqrt(6 / fan_in))`` for the ReLU layers, where ``fan_in`` is every axis but the last
  (``in`` of a dense kernel, ``kh * kw * in`` of a conv kernel) and ``kh * kw`` for a depthwise
  kernel (each output sees one channel); a head's kernel Glorot uniform, ``sqrt(6 / (fan_in +
  fan_out))``, so a new head starts small and symmetric;
* ``embedding``: normal with standard deviation 0.02 (BERT's convention);
* ``bias``, ``norm_bias``, ``bn_mean``: zeros; ``norm_scale``, ``bn_var``: ones (an untrained
  BatchNorm is the identity at inference, up to eps).

Only kernels and embeddings draw from the seeded generator, in parameter order, so adding a
BatchNorm (or a bias) to a family does not change how the other arrays are drawn.
"""

from __future__ import annotations

from math import prod
from typing import Callable, Mapping

import numpy as np

from zoo.models.params import HEAD_PREFIX, ParamSpec
from zoo.models.spec import ModelSpec

EMBEDDING_STD = 0.02


def _uniform_kernel(param: ParamSpec, rng: np.random.Generator) -> np.ndarray:
    fan_out = param.shape[-1]
    if param.role == "depthwise_kernel":
        fan_in = param.shape[0] * param.shape[1]
    else:
        fan_in = prod(param.shape[:-1])
    if param.is_head:  # Glorot uniform: a head starts small and symmetric.
        limit = np.sqrt(6.0 / (fan_in + fan_out))
    else:  # He uniform, for ReLU layers.
        limit = np.sqrt(6.0 / fan_in)
    return rng.uniform(-limit, limit, size=param.shape).astype(np.float32)


def _embedding(param: ParamSpec, rng: np.random.Generator) -> np.ndarray:
    return rng.normal(0.0, EMBEDDING_STD, size=param.shape).astype(np.float32)


def _zeros(param: ParamSpec, rng: np.random.Generator) -> np.ndarray:
    return np.zeros(param.shape, dtype=np.float32)


def _ones(param: ParamSpec, rng: np.random.Generator) -> np.ndarray:
    return np.ones(param.shape, dtype=np.float32)


#: role -> initialiser; one entry per role of :data:`zoo.models.params.ROLES`.
INITIALISERS: Mapping[str, Callable[[ParamSpec, np.random.Generator], np.ndarray]] = {
    "dense_kernel": _uniform_kernel,
    "conv_kernel": _uniform_kernel,
    "depthwise_kernel": _uniform_kernel,
    "embedding": _embedding,
    "bias": _zeros,
    "norm_bias": _zeros,
    "bn_mean": _zeros,
    "norm_scale": _ones,
    "bn_var": _ones,
}


def init_param(param: ParamSpec, rng: np.random.Generator) -> np.ndarray:
    """The initial float32 value of one parameter, by its role (module docstring)."""
    return INITIALISERS[param.role](param, rng)


def init_weights(
    spec: ModelSpec, input_shape: tuple[int, ...], num_classes: int, seed: int
) -> dict[str, np.ndarray]:
    """Random canonical weights for every parameter of ``spec`` (training from scratch)."""
    rng = np.random.default_rng(seed)
    return {p.name: init_param(p, rng) for p in spec.parameters(input_shape, num_classes)}


def with_new_head(
    spec: ModelSpec,
    weights: Mapping[str, np.ndarray],
    input_shape: tuple[int, ...],
    num_classes: int,
    seed: int,
) -> dict[str, np.ndarray]:
    """``weights`` with the head replaced by a fresh one sized for ``num_classes``."""
    rng = np.random.default_rng(seed)
    out = {name: value for name, value in weights.items() if not name.startswith(HEAD_PREFIX)}
    for param in spec.parameters(input_shape, num_classes):
        if param.is_head:
            out[param.name] = init_param(param, rng)
    spec.check_weights(out, input_shape, num_classes)
    return out
