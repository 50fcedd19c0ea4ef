"""NumPy ground truth for the checks: the data and starting weights of each model, tiny inputs
built from a model's declared inputs, the softmax cross-entropy of the reference forward pass,
its gradient by central differences, and torch's first Adam step.

Nothing here assumes images: every input is made from the model's ``spec.inputs(shape)`` at the
shapes of ``spec.example_shapes()``. An image model at 8x8x1 gets the real digits (and the zoo's
checkpoint where one exists); any other model gets seeded random inputs of its declared kinds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping, Sequence

import numpy as np

from zoo.contract import FineTuneConfig
from zoo.models.inputs import InputSpec, is_single_image
from zoo.models.spec import ModelSpec
from zoo.tasks.task import TaskData

DIGITS_SHAPE = (8, 8, 1)
DIGITS_CLASSES = 10
#: Examples of the random data of a model that is not an 8x8x1 image model.
RANDOM_TRAIN, RANDOM_TEST = 256, 160


def digits():
    """The embedded digits task's arrays (offline, shipped with scikit-learn)."""
    from zoo.tasks.digits import load_digits_task

    return load_digits_task()


def shape_label(shape: Sequence[int]) -> str:
    """``(9, 9, 3)`` -> ``"9x9x3"``, ``(16,)`` -> ``"16"``."""
    return "x".join(map(str, shape))


def uses_digits(spec: ModelSpec) -> bool:
    """Whether the model's typical input is the digits' 8x8x1 image (real data and checkpoints)."""
    return spec.example_shapes().typical == DIGITS_SHAPE and is_single_image(spec.inputs(DIGITS_SHAPE))


@dataclass(frozen=True)
class CheckData:
    """What the checks run one model on: its typical input shape, the classes and the data."""

    input_shape: tuple[int, ...]
    classes: int
    data: TaskData
    label: str  # e.g. "digits 8x8x1", "random tokens, mask 16"


def check_data(spec: ModelSpec) -> CheckData:
    """The digits for an 8x8x1 image model; otherwise seeded random inputs of the model's
    declared kinds at its typical shape, with random labels in 10 classes."""
    if uses_digits(spec):
        return CheckData(DIGITS_SHAPE, DIGITS_CLASSES, digits(), f"digits {shape_label(DIGITS_SHAPE)}")
    shape = spec.example_shapes().typical
    return _random_check_data(tuple(spec.inputs(shape)), shape)


@lru_cache(maxsize=8)
def _random_check_data(inputs: tuple[InputSpec, ...], shape: tuple[int, ...]) -> CheckData:
    rng = np.random.default_rng(0)
    data = TaskData(random_inputs(inputs, RANDOM_TRAIN, seed=1), rng.integers(0, DIGITS_CLASSES, RANDOM_TRAIN),
                    random_inputs(inputs, RANDOM_TEST, seed=2), rng.integers(0, DIGITS_CLASSES, RANDOM_TEST),
                    inputs=inputs)
    kinds = ", ".join(s.kind for s in inputs)
    return CheckData(shape, DIGITS_CLASSES, data, f"random {kinds} {shape_label(shape)}")


def start_weights(spec: ModelSpec, seed: int = 0) -> tuple[dict[str, np.ndarray], str]:
    """What the host starts a fine-tune on the check data from: for the digits, the model's
    canonical checkpoint with a new 10-class head (or seeded random weights when the zoo ships
    no checkpoint for it); for other models seeded random weights. And a description of which."""
    from zoo.checkpoints import load_checkpoint
    from zoo.init import init_weights, with_new_head
    from zoo.tasks.digits import DIGITS_TASKS

    name = DIGITS_TASKS[0].checkpoint_for(spec.name) if uses_digits(spec) else None
    if name:
        _, source = load_checkpoint(name)
        return with_new_head(spec, source, DIGITS_SHAPE, DIGITS_CLASSES, seed=seed + 1), f"checkpoint {name}"
    shape = check_data(spec).input_shape
    return init_weights(spec, shape, DIGITS_CLASSES, seed=seed), "seeded random weights (no checkpoint)"


def random_images(n: int, shape: tuple[int, int, int], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 1.0, size=(n, *shape)).astype(np.float32)


def random_inputs(inputs: Sequence[InputSpec], n: int, seed: int) -> dict[str, np.ndarray]:
    """``n`` seeded random examples of each declared input, valid for its kind: images and
    features uniform in [0, 1), ids uniform below the vocabulary size, masks of ones followed by
    zeros (every row keeps at least one token). An image input gets exactly
    :func:`random_images`' values."""
    out: dict[str, np.ndarray] = {}
    for i, spec in enumerate(inputs):
        rng = np.random.default_rng(seed + 1000 * i)
        if spec.kind in ("image", "features"):
            out[spec.name] = rng.uniform(0.0, 1.0, size=(n, *spec.shape)).astype(np.float32)
        elif spec.vocab_size:
            out[spec.name] = rng.integers(0, spec.vocab_size, size=(n, *spec.shape)).astype(np.int32)
        else:  # mask: a random number of real tokens, at least one, then padding
            length = spec.shape[0]
            real = rng.integers(1, length + 1, size=n)
            out[spec.name] = (np.arange(length)[None, :] < real[:, None]).astype(np.int32)
    return out


def cross_entropy(logits: np.ndarray, y: np.ndarray) -> float:
    """Softmax cross-entropy, mean over the batch, in float64."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    log_softmax = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_softmax[np.arange(len(y)), y].mean())


def reference_loss(spec: ModelSpec, weights: Mapping[str, np.ndarray], x: Any, y: np.ndarray) -> float:
    return cross_entropy(spec.reference_forward(weights, x), y)


def sample_gradients(
    spec: ModelSpec, weights: Mapping[str, np.ndarray], x: Any, y: np.ndarray,
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
