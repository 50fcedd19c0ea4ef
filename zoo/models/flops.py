"""Analytic FLOP counts, one per architecture and input shape, shared by every framework, so
that utilisation compares frameworks on the same work (design section 5).

Convention: 2 FLOPs per multiply-add of convolutions and dense layers; activations, pooling,
normalisation and the optimiser are not counted. A training step is the forward pass plus a
backward pass of twice the forward cost for the layers gradients flow through: ``3 x forward``
for a full fine-tune; ``forward + head`` for a frozen backbone (the head's weight gradient
only). ``last-N`` policies have no count yet (utilisation is then not reported).
"""

from __future__ import annotations

from zoo.models.spec import ModelSpec


def forward_flops(spec: ModelSpec, input_shape: tuple[int, int, int], num_classes: int) -> int | None:
    """Per-example forward FLOPs, or ``None`` for a spec that does not count them."""
    count = getattr(spec, "forward_flops", None)
    return int(count(input_shape, num_classes)) if count else None


def head_flops(spec: ModelSpec, input_shape: tuple[int, int, int], num_classes: int) -> int:
    """Per-example FLOPs of the dense head, from its kernel shape."""
    shapes = {p.name: p.shape for p in spec.parameters(input_shape, num_classes)}
    fan_in, fan_out = shapes["head.kernel"]
    return 2 * fan_in * fan_out


def train_step_flops(spec: ModelSpec, input_shape: tuple[int, int, int], num_classes: int, freeze: str) -> int | None:
    """Per-example FLOPs of one training step under ``freeze`` (see the module docstring)."""
    fwd = forward_flops(spec, input_shape, num_classes)
    if fwd is None:
        return None
    if freeze == "backbone":
        return fwd + head_flops(spec, input_shape, num_classes)
    if freeze == "none":
        return 3 * fwd
    return None  # last-N: no per-block count yet, so no utilisation rather than a wrong one
