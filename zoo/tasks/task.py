"""Classification tasks: data, split and the default fine-tuning recipe."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class TaskData:
    """Arrays of one task. Images are float32 NHWC, labels int64 in ``[0, num_classes)``."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def __post_init__(self) -> None:
        for name in ("x_train", "x_test"):
            arr = getattr(self, name)
            if arr.ndim != 4 or arr.dtype != np.float32:
                raise ValueError(f"{name} must be float32 NHWC, got {arr.dtype} {arr.shape}")
        if len(self.x_train) != len(self.y_train) or len(self.x_test) != len(self.y_test):
            raise ValueError("images and labels differ in length")


@dataclass(frozen=True)
class Recipe:
    """The default fine-tuning recipe of a task; CLI options override single fields."""

    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-3
    freeze: str = "none"


@dataclass(frozen=True)
class Task:
    """A classification task. ``load`` must return the same arrays every time; it works offline
    unless ``downloads`` names a data set, which it then fetches once into the cache (and raises
    :class:`zoo.download.OfflineError`, saying where to put the files, when it cannot).

    ``pretrained`` maps a model name to the zoo checkpoint a fine-tune on this task starts
    from; a model without an entry trains from a NumPy-seeded random initialisation.
    """

    name: str
    description: str
    num_classes: int
    input_shape: tuple[int, int, int]  # H, W, C
    load: Callable[[], TaskData]
    recipe: Recipe = Recipe()
    pretrained: tuple[tuple[str, str], ...] = ()  # (model name, checkpoint name)
    #: Test accuracy a reasonable model reaches; used for time-to-accuracy.
    target_accuracy: float | None = None
    #: The published data set ``load`` downloads on first use (into the zoo cache, sha256-checked;
    #: see :mod:`zoo.datasets`), or ``""`` for a task that needs no network at all.
    downloads: str = ""

    def checkpoint_for(self, model: str) -> str | None:
        return dict(self.pretrained).get(model)
