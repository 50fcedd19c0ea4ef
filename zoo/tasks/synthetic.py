"""``synthetic-imagenet-224``: an ImageNet-shaped task (1,000 classes, 224x224x3 NHWC float32,
ImageNet mean/std) that needs no download, for GPU throughput runs (``benchmarks/gpu/suite.sh``);
``synthetic-imagenet-224-tiny`` is the same generator at CPU-test size.

What an image is. Every class has a low-frequency pattern: a 7x7x3 grid of values in [-1, 1]
(its own seeded generator per class). An image of class ``c`` is
``upsample(0.5 + brightness + 0.3 * contrast * pattern_c) + noise`` on the [0, 1] pixel scale:
contrast 0.6-1.4 per image, brightness +-0.1 per image and channel, the sum bilinearly upsampled
to 224x224 (half-pixel centres, edges clamped: :func:`zoo.datasets.transforms.resize_bilinear`'s
interpolation, in float32), plus uniform noise per pixel and channel of standard deviation 0.2,
clipped to [0, 1] and normalised with the ImageNet mean/std as the other ImageNet-layout tasks
are (:func:`zoo.datasets.transforms.normalize`). Test images are new draws of the same classes,
so accuracy is a sanity check of training (a learnable class signal well above the noise), not a
measure of generalisation: a NumPy softmax regression on 8x8-pooled pixels tells the classes
apart (``tests/test_synthetic_imagenet.py``). How far a from-scratch ResNet-50 gets on the full
task in the recipe's 3 epochs has not been measured (no GPU run yet), so the task declares no
target accuracy.

Labels are ``i % num_classes`` in storage order (balanced: the sizes are multiples of the class
count; the host's batch order shuffles them). Image ``i`` of a split depends only on the seed,
the split and ``i`` (its own generator, ``default_rng([seed, split, i])``), so any range can be
made on its own and equals the same rows of the whole split; every step is elementwise float
arithmetic (no BLAS, whose results depend on the CPU kernel and thread count), so the same NumPy
gives the same bytes in every process, for every framework.

Where the data are made. Issue 17 asked for a task "generated on the device"; it is generated on
the host instead, by :meth:`SyntheticImageNet.load`, once per cell (the worker's ``data`` phase),
and the adapters stage each split on the device once per ``fine_tune``/``evaluate`` call and
gather batches there (the device-resident feed), so no timed step moves images from the host.
The host makes it because (1) there is then one definition of the bytes: a generator written in
each framework would give three different data sets (their RNGs differ), and (2) it keeps the
contract's one data path: ``task.load()`` -> :class:`~zoo.tasks.task.TaskData`, checked against
the declared inputs, batches in the host's order. The price is host memory and one host-to-device
copy per call, outside every timed step.

Sizes (float32, 602,112 bytes an image):

* ``synthetic-imagenet-224``: 3,000 train / 1,000 test (3 / 1 per class): 1.81 GB + 0.60 GB =
  2.41 GB on the host, and the same on the device while a split is staged; made in 10-25 s
  (vectorised NumPy, single-threaded, in chunks of :data:`CHUNK` images, so the peak is the
  arrays plus one chunk: 23 s and 2.45 GB peak RSS measured on a shared 2-core machine).
  Recipe: batch 256 (11 steps an epoch; the remainder is dropped), 3 epochs, Adam 1e-3, train
  everything.
* ``synthetic-imagenet-224-tiny``: 10 classes (the full task's patterns of classes 0-9),
  40 train / 20 test, 36 MB: for CPU tests and the GPU suite's ``--dry-run``. Recipe: batch 4,
  1 epoch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zoo.datasets.transforms import IMAGENET_MEAN, IMAGENET_STD
from zoo.tasks.task import Recipe, Task, TaskData

SEED = 20261201
SPLITS = ("train", "test")
#: The generator stream of the class patterns (the splits use 0 and 1: their index in SPLITS).
PATTERN_STREAM = 2
#: Images made at once: bounds the temporaries (about 20 MB each at 224 px).
CHUNK = 32
#: The image formula on the [0, 1] pixel scale (see the module docstring).
AMPLITUDE = 0.3
CONTRAST = (0.6, 1.4)
BRIGHTNESS = 0.1
NOISE = 0.2


@dataclass(frozen=True)
class SyntheticImageNet:
    """The sizes and seed of one synthetic ImageNet-shaped data set, and the code that makes it.

    ``train_size`` and ``test_size`` must be multiples of ``num_classes`` (balanced classes);
    :attr:`nbytes` is what :meth:`load` allocates, declared before anything is made."""

    num_classes: int = 1000
    train_size: int = 3000
    test_size: int = 1000
    size: int = 224
    grid: int = 7
    seed: int = SEED

    def __post_init__(self) -> None:
        for name in ("train_size", "test_size"):
            n = getattr(self, name)
            if n < self.num_classes or n % self.num_classes:
                raise ValueError(f"{name} {n} must be a positive multiple of num_classes {self.num_classes} so every "
                                 "class has the same number of images")
        if not 1 <= self.grid <= self.size:
            raise ValueError(f"grid {self.grid} must be between 1 and the image size {self.size}")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.size, self.size, 3)

    @property
    def image_bytes(self) -> int:
        """Bytes of one float32 image (602,112 at 224 px)."""
        return self.size * self.size * 3 * np.dtype(np.float32).itemsize

    @property
    def nbytes(self) -> int:
        """Bytes of both splits' images as :meth:`load` returns them (labels not counted)."""
        return (self.train_size + self.test_size) * self.image_bytes

    def split_size(self, split: str) -> int:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
        return self.train_size if split == "train" else self.test_size

    def labels(self, split: str) -> np.ndarray:
        """int64 class ids of ``split`` in storage order: ``i % num_classes``."""
        return np.arange(self.split_size(split), dtype=np.int64) % self.num_classes

    def patterns(self) -> np.ndarray:
        """Every class's ``grid x grid x 3`` pattern in [-1, 1] (float64), one generator per class,
        so class ``c``'s pattern does not depend on how many classes there are."""
        shape = (self.grid, self.grid, 3)
        return np.stack([np.random.default_rng([self.seed, PATTERN_STREAM, c]).uniform(-1.0, 1.0, shape)
                         for c in range(self.num_classes)])

    def images(self, split: str, start: int = 0, stop: int | None = None,
               patterns: np.ndarray | None = None) -> np.ndarray:
        """Images ``start:stop`` of ``split`` (float32 NHWC, normalised): the same rows as in the
        whole split, made without the others."""
        n = self.split_size(split)
        stop = n if stop is None else stop
        if not 0 <= start <= stop <= n:
            raise ValueError(f"images {start}:{stop} are outside the {n} images of the {split} split")
        patterns = self.patterns() if patterns is None else patterns
        labels = self.labels(split)
        out = np.empty((stop - start, *self.image_shape), dtype=np.float32)
        for lo in range(start, stop, CHUNK):
            hi = min(lo + CHUNK, stop)
            self._chunk(SPLITS.index(split), lo, patterns[labels[lo:hi]], out[lo - start:hi - start])
        return out

    def _chunk(self, split_id: int, lo: int, coarse: np.ndarray, out: np.ndarray) -> None:
        """Images ``lo:lo + len(out)`` of one split into ``out``. The per-image contrast and
        brightness are applied to the small pattern before upsampling (interpolation weights sum
        to 1), so the full-size work is the upsampling, the noise, the clip and the normalisation."""
        signal = np.empty(coarse.shape, dtype=np.float32)
        noise = np.empty(out.shape, dtype=np.float32)
        for k in range(len(out)):
            rng = np.random.default_rng([self.seed, split_id, lo + k])
            contrast = AMPLITUDE * rng.uniform(*CONTRAST)
            brightness = rng.uniform(-BRIGHTNESS, BRIGHTNESS, 3)
            signal[k] = 0.5 + brightness + contrast * coarse[k]
            rng.random(out=noise[k], dtype=np.float32)
        x = upsample(signal, self.size)  # smooth: the class signal
        noise -= np.float32(0.5)  # uniform on [-0.5, 0.5): standard deviation 1 / sqrt(12)
        noise *= np.float32(NOISE * 12**0.5)
        x += noise
        np.clip(x, 0.0, 1.0, out=x)
        # zoo.datasets.transforms.normalize's formula: (x - mean) / std in float32, per channel
        x -= np.asarray(IMAGENET_MEAN, dtype=np.float32)
        np.divide(x, np.asarray(IMAGENET_STD, dtype=np.float32), out=out)

    def load(self) -> TaskData:
        """Both splits, made on the host (see the module docstring for why the host)."""
        patterns = self.patterns()
        return TaskData(self.images("train", patterns=patterns), self.labels("train"),
                        self.images("test", patterns=patterns), self.labels("test"))

    def describe(self) -> str:
        """The task description: classes, sizes, and the memory it costs."""
        return (f"synthetic ImageNet-shaped images ({self.size}x{self.size} RGB, {self.num_classes:,} classes, "
                f"{self.train_size:,} / {self.test_size:,}; {_size(self.nbytes)} float32 made by the host, "
                "staged once on the device), ImageNet mean/std, offline")


def upsample(x: np.ndarray, size: int) -> np.ndarray:
    """NHWC ``x`` bilinearly upsampled to ``size x size`` in float32: half-pixel centres, edge
    samples clamped (:func:`zoo.datasets.transforms.resize_bilinear`'s interpolation, which
    computes in float64, 3x slower here). Columns first, while the array is small; then rows,
    whose gathers copy whole rows."""
    out = np.asarray(x, dtype=np.float32)
    for axis in (2, 1):
        n_in = out.shape[axis]
        centre = np.clip((np.arange(size, dtype=np.float64) + 0.5) * (n_in / size) - 0.5, 0.0, n_in - 1)
        lo = np.floor(centre).astype(np.int64)
        hi = np.minimum(lo + 1, n_in - 1)
        shape = [1, 1, 1, 1]
        shape[axis] = size
        frac = (centre - lo).astype(np.float32).reshape(shape)
        low = np.take(out, lo, axis=axis)
        low *= 1 - frac
        high = np.take(out, hi, axis=axis)
        high *= frac
        low += high
        out = low
    return out


def _size(nbytes: int) -> str:
    return f"{nbytes / 1e9:.2f} GB" if nbytes >= 1e9 else f"{nbytes / 1e6:.0f} MB"


SYNTHETIC_IMAGENET = SyntheticImageNet()
SYNTHETIC_IMAGENET_TINY = SyntheticImageNet(num_classes=10, train_size=40, test_size=20)

SYNTHETIC_TASKS: tuple[Task, ...] = (
    Task("synthetic-imagenet-224", SYNTHETIC_IMAGENET.describe() + ": for GPU throughput runs", 1000, (224, 224, 3),
         SYNTHETIC_IMAGENET.load, Recipe(epochs=3, batch_size=256, learning_rate=1e-3, freeze="none")),
    Task("synthetic-imagenet-224-tiny", SYNTHETIC_IMAGENET_TINY.describe() + ": the CPU-test size of "
         "synthetic-imagenet-224", 10, (224, 224, 3), SYNTHETIC_IMAGENET_TINY.load,
         Recipe(epochs=1, batch_size=4, learning_rate=1e-3, freeze="none")),
)
