"""Analytic FLOP counts, one per architecture and input shape, shared by every framework, so
that utilisation compares frameworks on the same work (design section 5).

Convention: 2 FLOPs per multiply-add of convolutions and dense layers; embedding lookups,
activations, pooling, normalisation and the optimiser are not counted. A training step is the
forward pass plus a backward pass of twice the forward cost for the layers gradients flow
through: ``3 x forward`` for a full fine-tune; ``forward + head`` for a frozen backbone (the
head's weight gradient only). ``last-N`` policies have no count yet (utilisation is then not
reported).

The forward count is the spec's own (``spec.forward_flops(input_shape, num_classes)``: only the
family knows its spatial sizes); the head's is read from the head's parameters by role.
"""

from __future__ import annotations

from math import prod

from zoo.models.spec import ModelSpec


def forward_flops(spec: ModelSpec, input_shape: tuple[int, ...], num_classes: int) -> int | None:
    """Per-example forward FLOPs, or ``None`` for a spec that does not count them."""
    count = getattr(spec, "forward_flops", None)
    return int(count(input_shape, num_classes)) if count else None


def head_flops(spec: ModelSpec, input_shape: tuple[int, ...], num_classes: int) -> int:
    """Per-example FLOPs of the head: 2 per weight of each of its dense kernels (role
    ``dense_kernel``, ``[in, out]``), whatever the head's parameters are called."""
    return sum(2 * prod(p.shape) for p in spec.parameters(input_shape, num_classes)
               if p.is_head and p.role == "dense_kernel")


def train_step_flops(spec: ModelSpec, input_shape: tuple[int, ...], num_classes: int, freeze: str) -> int | None:
    """Per-example FLOPs of one training step under ``freeze`` (see the module docstring)."""
    fwd = forward_flops(spec, input_shape, num_classes)
    if fwd is None:
        return None
    if freeze == "backbone":
        return fwd + head_flops(spec, input_shape, num_classes)
    if freeze == "none":
        return 3 * fwd
    return None  # last-N: no per-block count yet, so no utilisation rather than a wrong one
