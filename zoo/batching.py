"""The batch order: decided once by the host with one seeded NumPy RNG and handed to every
framework, so all of them see the same examples in the same steps."""

from __future__ import annotations

import numpy as np


def train_order(n: int, batch_size: int, epochs: int, seed: int) -> tuple[tuple[np.ndarray, ...], ...]:
    """One fresh permutation per epoch, cut into full batches; the remainder of each epoch is
    dropped so every step has the same shape (a different remainder each epoch)."""
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    if batch_size > n:
        raise ValueError(
            f"batch size {batch_size} is larger than the {n} training examples; "
            f"use --batch-size {n} or smaller"
        )
    rng = np.random.default_rng(seed)
    steps = n // batch_size
    order = []
    for _ in range(epochs):
        perm = rng.permutation(n)
        order.append(tuple(perm[i * batch_size : (i + 1) * batch_size] for i in range(steps)))
    return tuple(order)


def eval_order(n: int, batch_size: int) -> tuple[np.ndarray, ...]:
    """Sequential batches covering ``0..n-1``; the last one is padded with index 0 so every
    batch has the same shape. Callers keep the first ``n`` outputs."""
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    batches = []
    for start in range(0, n, batch_size):
        idx = np.arange(start, min(start + batch_size, n))
        if len(idx) < batch_size:
            idx = np.concatenate([idx, np.zeros(batch_size - len(idx), dtype=idx.dtype)])
        batches.append(idx)
    return tuple(batches)
