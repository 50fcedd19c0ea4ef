"""Handwritten digits shipped inside scikit-learn (1,797 real 8x8 images, 10 classes): the
embedded default task, fully offline.

The split is fixed and stratified (30 % test, seed 0) and made here, not by scikit-learn, so it
cannot change with a scikit-learn release. Three tasks share it:

* ``digits``: all ten classes, the whole training split;
* ``digits-10shot``: all ten classes, ten training images per class (a small label budget);
* ``digits-0to4``: classes 0-4 only, the *source* task the shipped checkpoints were
  pretrained on (``zoo pretrain``). Its test images are never used for training.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from zoo.tasks.task import Recipe, Task, TaskData

SPLIT_SEED = 0
TEST_FRACTION = 0.3


def stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted train and test indices with ``test_fraction`` of every class in the test part."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for cls in np.unique(y):
        idx = np.flatnonzero(y == cls)
        idx = idx[rng.permutation(len(idx))]
        n_test = int(round(len(idx) * test_fraction))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


@lru_cache(maxsize=1)
def _all_digits() -> TaskData:
    from sklearn.datasets import load_digits  # scikit-learn ships the data file itself

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[..., None]  # N, 8, 8, 1 in [0, 1]
    y = bunch.target.astype(np.int64)
    train, test = stratified_split(y, TEST_FRACTION, SPLIT_SEED)
    return TaskData(x[train], y[train], x[test], y[test])


def load_digits_task() -> TaskData:
    return _all_digits()


def load_digits_few_shot(per_class: int = 10, seed: int = 1) -> TaskData:
    full = _all_digits()
    rng = np.random.default_rng(seed)
    keep = np.sort(
        np.concatenate(
            [rng.choice(np.flatnonzero(full.y_train == c), per_class, replace=False) for c in range(10)]
        )
    )
    return TaskData(full.x_train[keep], full.y_train[keep], full.x_test, full.y_test)


def load_digits_0to4() -> TaskData:
    full = _all_digits()
    tr, te = full.y_train < 5, full.y_test < 5
    return TaskData(full.x_train[tr], full.y_train[tr], full.x_test[te], full.y_test[te])


PRETRAINED = (("mlp", "mlp-digits0to4"), ("cnn", "cnn-digits0to4"))

DIGITS_TASKS: tuple[Task, ...] = (
    Task(
        name="digits",
        description="scikit-learn digits, 8x8 grey, 10 classes, 1,258 train / 539 test",
        num_classes=10,
        input_shape=(8, 8, 1),
        load=load_digits_task,
        recipe=Recipe(epochs=10, batch_size=32, learning_rate=1e-3, freeze="none"),
        pretrained=PRETRAINED,
        target_accuracy=0.90,
    ),
    Task(
        name="digits-10shot",
        description="digits with 10 training images per class (label budget 100), 539 test",
        num_classes=10,
        input_shape=(8, 8, 1),
        load=load_digits_few_shot,
        recipe=Recipe(epochs=30, batch_size=20, learning_rate=1e-3, freeze="none"),
        pretrained=PRETRAINED,
        target_accuracy=0.80,
    ),
    Task(
        name="digits-0to4",
        description="digits classes 0-4 only: the source task of the shipped checkpoints",
        num_classes=5,
        input_shape=(8, 8, 1),
        load=load_digits_0to4,
        recipe=Recipe(epochs=30, batch_size=32, learning_rate=1e-3, freeze="none"),
        target_accuracy=0.97,
    ),
)
