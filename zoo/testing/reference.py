"""NumPy ground truth for the checks: starting weights, inputs, the softmax cross-entropy of the
reference forward pass, its gradient by central differences, and torch's first Adam step."""

from __future__ import annotations

import time
from typing import Mapping

import numpy as np

from zoo.contract import FineTuneConfig
from zoo.models.spec import ModelSpec

DIGITS_SHAPE = (8, 8, 1)
DIGITS_CLASSES = 10


def digits():
    """The embedded digits task's arrays (offline, shipped with scikit-learn)."""
    from zoo.tasks.digits import load_digits_task

    return load_digits_task()


def start_weights(spec: ModelSpec, seed: int = 0) -> tuple[dict[str, np.ndarray], str]:
    """What the host starts a digits fine-tune from: the model's canonical checkpoint with a new
    10-class head (or seeded random weights when the zoo ships no checkpoint for it), and a
    description of which."""
    from zoo.checkpoints import load_checkpoint
    from zoo.init import init_weights, with_new_head
    from zoo.tasks.digits import DIGITS_TASKS

    name = DIGITS_TASKS[0].checkpoint_for(spec.name)
    if name:
        _, source = load_checkpoint(name)
        return with_new_head(spec, source, DIGITS_SHAPE, DIGITS_CLASSES, seed=seed + 1), f"checkpoint {name}"
    return init_weights(spec, DIGITS_SHAPE, DIGITS_CLASSES, seed=seed), "seeded random weights (no checkpoint)"


def random_images(n: int, shape: tuple[int, int, int], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 1.0, size=(n, *shape)).astype(np.float32)


def cross_entropy(logits: np.ndarray, y: np.ndarray) -> float:
    """Softmax cross-entropy, mean over the batch, in float64."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    log_softmax = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_softmax[np.arange(len(y)), y].mean())


def reference_loss(spec: ModelSpec, weights: Mapping[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    return cross_entropy(spec.reference_forward(weights, x), y)


def sample_gradients(
    spec: ModelSpec, weights: Mapping[str, np.ndarray], x: np.ndarray, y: np.ndarray,
    names: list[str], seed: int, budget_s: float = 0.3, h: float = 1e-6,
) -> dict[str, list[tuple[int, float]]]:
    """The loss gradient at seeded entries of each named parameter, by central differences on
    the float64 reference: ``name -> [(flat index, gradient)]``. Works for any model spec,
    because it needs only the reference forward pass. As many entries per parameter (4 to 32)
    as fit in about ``budget_s`` seconds."""
    rng = np.random.default_rng(seed)
    w64 = {k: np.array(v, dtype=np.float64) for k, v in weights.items()}
    start = time.perf_counter()
    reference_loss(spec, w64, x, y)
    one = max(time.perf_counter() - start, 1e-6)
    per_param = int(np.clip(budget_s / (2 * one * max(1, len(names))), 4, 32))
    out: dict[str, list[tuple[int, float]]] = {}
    for name in names:
        flat = w64[name].reshape(-1)
        picks = rng.choice(flat.size, size=min(per_param, flat.size), replace=False)
        grads = []
        for i in picks:
            keep = flat[i]
            flat[i] = keep + h
            up = reference_loss(spec, w64, x, y)
            flat[i] = keep - h
            down = reference_loss(spec, w64, x, y)
            flat[i] = keep
            grads.append((int(i), (up - down) / (2 * h)))
        out[name] = grads
    return out


def first_adam_step(param: float, grad: float, config: FineTuneConfig) -> float:
    """torch.optim.Adam's first update of one entry: weight decay is L2 added to the gradient,
    and after bias correction the step is ``lr * g / (|g| + eps)``."""
    g = grad + config.weight_decay * param
    return param - config.learning_rate * g / (abs(g) + config.eps)
