"""Multi-layer perceptron: flatten (NHWC, row-major), hidden dense layers with ReLU, dense head.
One input: an NHWC float32 image (the :class:`~zoo.models.spec.ModelSpec` default).

Canonical parameters: ``fc{i}.kernel [in, out]`` (role ``dense_kernel``), ``fc{i}.bias [out]``
(``bias``) for i = 1.., then ``head.kernel``, ``head.bias``.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import ClassVar, Mapping

import numpy as np

from zoo.models.spec import ModelSpec, ParamSpec, dense_reference, head_params, relu


@dataclass(frozen=True)
class MLPSpec(ModelSpec):
    family: ClassVar[str] = "mlp"
    hidden: tuple[int, ...] = (128, 64)

    def parameters(self, input_shape: tuple[int, ...], num_classes: int) -> list[ParamSpec]:
        params = []
        width = prod(input_shape)
        for i, units in enumerate(self.hidden, start=1):
            params += [ParamSpec(f"fc{i}.kernel", (width, units), role="dense_kernel"),
                       ParamSpec(f"fc{i}.bias", (units,), role="bias")]
            width = units
        return params + head_params(width, num_classes)

    def forward_flops(self, input_shape: tuple[int, ...], num_classes: int) -> int:
        """Floating-point operations of one example's forward pass (2 per multiply-add)."""
        widths = [prod(input_shape), *self.hidden, num_classes]
        return sum(2 * a * b for a, b in zip(widths, widths[1:]))

    def reference_forward(self, weights: Mapping[str, np.ndarray], x: np.ndarray) -> np.ndarray:
        h = x.reshape(len(x), -1).astype(np.float64)
        for i in range(1, len(self.hidden) + 1):
            h = relu(dense_reference(h, weights[f"fc{i}.kernel"], weights[f"fc{i}.bias"]))
        return dense_reference(h, weights["head.kernel"], weights["head.bias"])
