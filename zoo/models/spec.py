"""The framework-neutral description of a model: its parameters, their canonical names and
shapes, and which of them form the replaceable head."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import ClassVar, Mapping

import numpy as np

HEAD_PREFIX = "head."


@dataclass(frozen=True)
class ParamSpec:
    """One parameter in the canonical layout (see :mod:`zoo.contract`)."""

    name: str
    shape: tuple[int, ...]

    @property
    def is_head(self) -> bool:
        return self.name.startswith(HEAD_PREFIX)


@dataclass(frozen=True)
class ModelSpec(abc.ABC):
    """A zoo architecture, described once for every framework.

    Subclasses are small frozen dataclasses, one per architecture family (``family`` is what
    a framework adapter dispatches on). The NumPy forward pass in :meth:`reference_forward`
    defines what "the same model" means: every framework's output must match it.
    """

    family: ClassVar[str] = ""
    name: str
    description: str

    @abc.abstractmethod
    def parameters(self, input_shape: tuple[int, int, int], num_classes: int) -> list[ParamSpec]:
        """Every parameter, in a stable order, for NHWC inputs of ``input_shape``."""

    @abc.abstractmethod
    def reference_forward(self, weights: Mapping[str, np.ndarray], x: np.ndarray) -> np.ndarray:
        """Logits for the NHWC batch ``x``, computed in float64 NumPy."""

    def head_names(self, input_shape: tuple[int, int, int], num_classes: int) -> list[str]:
        return [p.name for p in self.parameters(input_shape, num_classes) if p.is_head]

    def trainable_names(
        self, freeze: str, input_shape: tuple[int, int, int], num_classes: int
    ) -> frozenset[str]:
        """The parameters a fine-tune with freeze policy ``freeze`` may change."""
        params = self.parameters(input_shape, num_classes)
        if freeze == "none":
            return frozenset(p.name for p in params)
        if freeze == "backbone":
            return frozenset(p.name for p in params if p.is_head)
        raise ValueError(f"unknown freeze policy {freeze!r}; use 'none' or 'backbone'")

    def check_weights(
        self, weights: Mapping[str, np.ndarray], input_shape: tuple[int, int, int], num_classes: int
    ) -> None:
        """Raise ``ValueError`` naming every missing, unexpected or mis-shaped parameter."""
        expected = {p.name: p.shape for p in self.parameters(input_shape, num_classes)}
        problems = []
        for name in sorted(set(expected) - set(weights)):
            problems.append(f"missing {name} {expected[name]}")
        for name in sorted(set(weights) - set(expected)):
            problems.append(f"unexpected {name}")
        for name in sorted(set(expected) & set(weights)):
            if tuple(weights[name].shape) != expected[name]:
                problems.append(f"{name}: shape {tuple(weights[name].shape)}, expected {expected[name]}")
        if problems:
            raise ValueError(f"weights do not fit model {self.name!r}: " + "; ".join(problems))


def dense_reference(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``x @ kernel + bias`` in float64, kernel ``[in, out]``."""
    return x.astype(np.float64) @ kernel.astype(np.float64) + bias.astype(np.float64)


def conv2d_reference(
    x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, stride: int, padding: int
) -> np.ndarray:
    """2-D cross-correlation of NHWC ``x`` with an HWIO ``kernel``, symmetric zero padding."""
    x = np.pad(x.astype(np.float64), ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    kh, kw, _, cout = kernel.shape
    n, h, w, _ = x.shape
    oh = (h - kh) // stride + 1
    ow = (w - kw) // stride + 1
    out = np.zeros((n, oh, ow, cout), dtype=np.float64)
    k = kernel.astype(np.float64)
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i : i + stride * (oh - 1) + 1 : stride, j : j + stride * (ow - 1) + 1 : stride, :]
            out += np.einsum("nhwc,co->nhwo", patch, k[i, j])
    return out + bias.astype(np.float64)


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)
