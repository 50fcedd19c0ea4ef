"""Tiny cases for testing how an adapter feeds batches (``zoo bench --feed``) and synchronises
inside its steps: the models, the host orders and the meter that the built-in plugins' feed and
GPU-readiness tests share, so every plugin is checked on the same cases. NumPy only; no
framework is imported.

* :data:`MODELS`: the MLP and the CNN on 8x8x1 images, and a one-layer random BERT on 6 tokens
  (two inputs: tokens and mask), each with its input shape.
* :data:`ORDER`: two epochs over :data:`N` rows in batches of :data:`BATCH`: rows repeated inside
  a batch, a whole batch repeated, then a seeded permutation.
* :func:`written_out`: the same batches given explicitly, to compare a feed against.
* :class:`PatternMeter`: a meter that asks for synchronisation at a fixed pattern of steps and
  knows whether a step is open, for checks of what an adapter does inside its steps.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import Any, Callable, ContextManager, Iterator, Mapping, Sequence

import numpy as np

from zoo.contract import load_kwargs
from zoo.init import init_weights
from zoo.models import CORE_MODELS, BertSpec
from zoo.models.inputs import select
from zoo.testing.reference import random_inputs

TINY_BERT = BertSpec(name="bert-tiny", description="tiny random BERT", vocab_size=50, hidden=16, num_layers=1,
                     heads=2, intermediate=32, max_positions=8)
#: model -> (spec, input shape): images for the MLP and the CNN, 6 tokens (tokens and mask) for BERT.
MODELS = {**{s.name: (s, (8, 8, 1)) for s in CORE_MODELS}, "bert-tiny": (TINY_BERT, (6,))}
CLASSES, BATCH, N = 5, 4, 12
#: Two epochs: rows repeated inside a batch, a whole batch repeated, then a seeded permutation.
ORDER = ((np.array([3, 3, 0, 9]), np.array([11, 2, 2, 5]), np.array([3, 3, 0, 9])),
         tuple(np.random.default_rng(0).permutation(N)[:8].reshape(2, BATCH)) + (np.array([7, 1, 10, 6]),))
#: Which steps :class:`PatternMeter` asks to synchronise (the host syncs at the end of each
#: timing window, so most steps are not synchronised).
SYNC = (False, False, True, False, True, True)


def load(fw: Any, name: str, *, device: str = "cpu", precision: str = "fp32") -> Any:
    """Model ``name`` of :data:`MODELS` loaded into adapter ``fw`` with seeded random weights and
    a :data:`CLASSES`-way head, everything trainable."""
    spec, shape = MODELS[name]
    weights = init_weights(spec, shape, CLASSES, seed=1)
    return fw.load_pretrained(**load_kwargs(fw, spec=spec, weights=weights, input_shape=shape, num_classes=CLASSES,
                                            device=device, precision=precision, freeze="none"))


def inputs(name: str, n: int = N, seed: int = 2) -> Mapping[str, np.ndarray]:
    """``n`` random rows for model ``name``: input name -> array, one per declared input."""
    spec, shape = MODELS[name]
    return random_inputs(spec.inputs(shape), n, seed=seed)


def written_out(x: Mapping[str, np.ndarray], order: Sequence[Sequence[np.ndarray]]) -> tuple[Any, np.ndarray, tuple]:
    """The same batches given explicitly: every batch's rows in sequence, read in arange order.
    Returns the rows, the indices they came from, and the arange order over them."""
    rows = np.concatenate([idx for epoch in order for idx in epoch])
    starts = iter(range(0, len(rows), BATCH))
    return select(x, rows), rows, tuple(tuple(np.arange(s, s + BATCH) for s in (next(starts) for _ in epoch))
                                        for epoch in order)


class PatternMeter:
    """A meter that yields ``SYNC[i]`` at step ``i`` (cycling) and knows whether a step is open;
    ``guard`` (optional) is a context entered around each step (e.g. a framework's transfer guard)."""

    def __init__(self, guard: Callable[[], ContextManager[Any]] | None = None):
        self.inside = False
        self.steps = 0
        self.synced = 0
        self.guard = guard or nullcontext

    @contextmanager
    def step(self, samples: int) -> Iterator[bool]:
        sync = SYNC[self.steps % len(SYNC)]
        self.synced += sync
        self.inside = True
        try:
            with self.guard():
                yield sync
        finally:
            self.inside = False
            self.steps += 1

    def end_epoch(self, model: Any) -> None:
        pass
