"""Image tasks beyond digits: MNIST, Fashion-MNIST and CIFAR-10 (downloaded on first use, see
:mod:`zoo.datasets`), fixed seeded subsets for fast runs, 64x64 ImageNet-normalised versions for
ImageNet-layout models, and ``cifar-shaped``, an offline synthetic CIFAR stand-in.

* ``mnist``, ``fashion-mnist``: 28x28 grey, the published 60,000 / 10,000 split.
* ``cifar10``: 32x32 RGB, the published 50,000 / 10,000 split.
* ``cifar10-small``: 500 training and 100 test images per class (5,000 / 1,000), chosen once by
  a seeded generator from the published splits (same images on every machine).
* ``cifar10-small-64``, ``fashion-mnist-small-64``: the small subsets resized to 64x64
  (bilinear, :mod:`zoo.datasets.transforms`), grey repeated to 3 channels, normalised with the
  ImageNet mean/std: the input an ImageNet-pretrained ResNet expects; default recipe trains the
  head only (``freeze backbone``).
* ``cifar-shaped``: 2,000 / 1,000 synthetic 32x32 RGB images in 10 classes, no network
  (:mod:`zoo.datasets.synthetic`); ``cifar-shaped-0to4`` is its classes 0-4, a source task for
  pretraining: the shipped ``resnet20-cifarshaped0to4`` (``zoo pretrain --model resnet20 --task
  cifar-shaped-0to4``) is where ``resnet20`` starts on ``cifar-shaped``.

Images are float32 in [0, 1] unless normalised; pixel scaling, resizing and normalisation are
done here in NumPy, once, for every framework.
"""

from __future__ import annotations

from functools import lru_cache, partial

import numpy as np

from zoo.datasets.transforms import Preprocess
from zoo.tasks.task import Recipe, Task, TaskData

SUBSET_SEED = 0
IMAGENET_64 = Preprocess(size=(64, 64), channels=3, normalize="imagenet")


@lru_cache(maxsize=4)
def _published(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from zoo.datasets import SOURCES, load_arrays

    return load_arrays(SOURCES[name])


def balanced_subset(y: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Sorted indices of ``per_class`` examples of every class (all of a smaller class)."""
    rng = np.random.default_rng(seed)
    keep = []
    for cls in np.unique(y):
        idx = np.flatnonzero(y == cls)
        keep.append(rng.choice(idx, min(per_class, len(idx)), replace=False))
    return np.sort(np.concatenate(keep))


def load_published(name: str, train_per_class: int | None = None, test_per_class: int | None = None,
                   preprocess: Preprocess | None = None) -> TaskData:
    xtr, ytr, xte, yte = _published(name)
    if train_per_class:
        keep = balanced_subset(ytr, train_per_class, SUBSET_SEED)
        xtr, ytr = xtr[keep], ytr[keep]
    if test_per_class:
        keep = balanced_subset(yte, test_per_class, SUBSET_SEED + 1)
        xte, yte = xte[keep], yte[keep]
    if preprocess is not None:
        xtr, xte = preprocess(xtr), preprocess(xte)
    return TaskData(np.ascontiguousarray(xtr), ytr, np.ascontiguousarray(xte), yte)


@lru_cache(maxsize=1)
def _cifar_shaped() -> TaskData:
    from zoo.datasets.synthetic import cifar_shaped

    return TaskData(*cifar_shaped())


def load_cifar_shaped(classes: int | None = None) -> TaskData:
    full = _cifar_shaped()
    if classes is None:
        return full
    tr, te = full.y_train < classes, full.y_test < classes
    return TaskData(full.x_train[tr], full.y_train[tr], full.x_test[te], full.y_test[te])


IMAGE_TASKS: tuple[Task, ...] = (
    Task("mnist", "MNIST handwritten digits, 28x28 grey, 60,000 train / 10,000 test (downloaded)", 10, (28, 28, 1),
         partial(load_published, "mnist"), Recipe(epochs=3, batch_size=64, learning_rate=1e-3, freeze="none"),
         target_accuracy=0.98, downloads="mnist"),
    Task("fashion-mnist", "Fashion-MNIST clothing, 28x28 grey, 60,000 train / 10,000 test (downloaded)", 10, (28, 28, 1),
         partial(load_published, "fashion-mnist"), Recipe(epochs=3, batch_size=64, learning_rate=1e-3, freeze="none"),
         target_accuracy=0.88, downloads="fashion-mnist"),
    Task("cifar10", "CIFAR-10, 32x32 RGB, 50,000 train / 10,000 test (downloaded)", 10, (32, 32, 3),
         partial(load_published, "cifar10"), Recipe(epochs=10, batch_size=64, learning_rate=1e-3, freeze="none"),
         target_accuracy=0.70, downloads="cifar10"),
    Task("cifar10-small", "CIFAR-10 seeded subset, 500 train / 100 test images per class (downloaded)", 10, (32, 32, 3),
         partial(load_published, "cifar10", 500, 100),
         Recipe(epochs=10, batch_size=64, learning_rate=1e-3, freeze="none"), downloads="cifar10"),
    Task("cifar10-small-64", "cifar10-small resized to 64x64, ImageNet mean/std: for ImageNet-pretrained ResNets",
         10, (64, 64, 3), partial(load_published, "cifar10", 500, 100, IMAGENET_64),
         Recipe(epochs=5, batch_size=32, learning_rate=1e-3, freeze="backbone"), downloads="cifar10"),
    Task("fashion-mnist-small-64", "Fashion-MNIST subset (500 / 100 per class), 64x64, grey repeated to RGB, "
         "ImageNet mean/std", 10, (64, 64, 3), partial(load_published, "fashion-mnist", 500, 100, IMAGENET_64),
         Recipe(epochs=5, batch_size=32, learning_rate=1e-3, freeze="backbone"), downloads="fashion-mnist"),
    Task("cifar-shaped", "synthetic CIFAR-shaped images (32x32 RGB, 10 classes, 2,000 / 1,000), offline", 10,
         (32, 32, 3), load_cifar_shaped, Recipe(epochs=5, batch_size=32, learning_rate=1e-3, freeze="none"),
         pretrained=(("resnet20", "resnet20-cifarshaped0to4"),), target_accuracy=0.80),
    Task("cifar-shaped-0to4", "cifar-shaped classes 0-4: a source task for pretraining ResNets offline", 5,
         (32, 32, 3), partial(load_cifar_shaped, 5), Recipe(epochs=10, batch_size=32, learning_rate=1e-3, freeze="none")),
)
