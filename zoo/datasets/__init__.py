"""Published image data sets, downloaded on first use into the zoo cache and verified by sha256.

========================= ======================================================== ==============
data set                  files (as published)                                     sha256 from
========================= ======================================================== ==============
``mnist``                 ``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`` from  TensorFlow
                          storage.googleapis.com/cvdf-datasets/mnist/              Datasets
``fashion-mnist``         the same four names, from Zalando's S3 website           TensorFlow
                                                                                   Datasets
``cifar10``               ``cifar-10-binary.tar.gz`` from cs.toronto.edu           TensorFlow
                                                                                   Datasets
========================= ======================================================== ==============

The publishers themselves give md5 sums (torchvision lists them); TensorFlow Datasets'
``url_checksums`` give sha256 for exactly these URLs, so zoo verifies sha256. A mirror that
serves the same files can be set with ``ZOO_DATASET_MIRROR=https://host/dir/`` (the file names
stay). Files go to ``$ZOO_CACHE_DIR/datasets/<name>/``; offline, the error names each file's
URL and where to put a copy.

CIFAR-10 is read from its *binary* version (fixed-size records), not the python version,
whose batches are pickles: zoo never unpickles a downloaded file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from zoo.download import Checksum, fetch, sha256


@dataclass(frozen=True)
class RemoteFile:
    url: str
    checksum: Checksum

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[1]


@dataclass(frozen=True)
class DatasetSource:
    """Where a data set's files are published and how to read them."""

    name: str
    files: tuple[RemoteFile, ...]
    reader: str  # "idx" (train/t10k images/labels) or "cifar10-binary"
    classes: tuple[str, ...]
    homepage: str
    license: str

    def with_mirror(self, base_url: str, checksums: dict[str, Checksum] | None = None) -> "DatasetSource":
        """The same files from ``base_url`` (file names kept). ``checksums`` (file name ->
        checksum) replaces the published ones: for tests that serve files they wrote."""
        base = base_url.rstrip("/") + "/"
        files = tuple(RemoteFile(base + f.filename, (checksums or {}).get(f.filename, f.checksum)) for f in self.files)
        return replace(self, files=files)


_CVDF = "https://storage.googleapis.com/cvdf-datasets/mnist/"
_FASHION = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
             "t10k-labels-idx1-ubyte.gz")

MNIST = DatasetSource(
    "mnist",
    tuple(RemoteFile(_CVDF + name, sha256(h)) for name, h in zip(IDX_FILES, (
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    ))),
    "idx", tuple(str(i) for i in range(10)), "http://yann.lecun.com/exdb/mnist/", "CC BY-SA 3.0 (as stated by Keras)",
)
FASHION_MNIST = DatasetSource(
    "fashion-mnist",
    tuple(RemoteFile(_FASHION + name, sha256(h)) for name, h in zip(IDX_FILES, (
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    ))),
    "idx", ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    "https://github.com/zalandoresearch/fashion-mnist", "MIT",
)
CIFAR10 = DatasetSource(
    "cifar10",
    (RemoteFile("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
                sha256("c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd")),),
    "cifar10-binary", ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    "https://www.cs.toronto.edu/~kriz/cifar.html", "no explicit license; cite Krizhevsky 2009",
)
SOURCES = {s.name: s for s in (MNIST, FASHION_MNIST, CIFAR10)}


def resolve(source: DatasetSource) -> DatasetSource:
    mirror = os.environ.get("ZOO_DATASET_MIRROR")
    return source.with_mirror(mirror) if mirror else source


def fetch_dataset(source: DatasetSource, progress: Callable[[int, int | None], None] | None = None) -> list[Path]:
    """Local verified copies of every file of ``source`` (downloading what is missing)."""
    source = resolve(source)
    return [fetch(f.url, f.filename, f.checksum, f"datasets/{source.name}", progress=progress).path
            for f in source.files]


def load_arrays(source: DatasetSource) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)``: float32 NHWC images in [0, 1], int64 labels."""
    from zoo.datasets.readers import DatasetFormatError, read_cifar10_binary, read_idx

    paths = fetch_dataset(source)
    if source.reader == "idx":
        by_name = {p.name: p for p in paths}
        xtr, ytr, xte, yte = (read_idx(by_name[n]) for n in IDX_FILES)
        if xtr.ndim != 3 or len(xtr) != len(ytr) or len(xte) != len(yte):
            raise DatasetFormatError(f"{source.name}: image and label files do not agree "
                                     f"({xtr.shape}, {ytr.shape}, {xte.shape}, {yte.shape})")
        xtr, xte = xtr[..., None], xte[..., None]
    elif source.reader == "cifar10-binary":
        xtr, ytr, xte, yte = read_cifar10_binary(paths[0])
    else:
        raise ValueError(f"unknown reader {source.reader!r}")
    scale = np.float32(1 / 255)
    return (xtr.astype(np.float32) * scale, ytr.astype(np.int64), xte.astype(np.float32) * scale, yte.astype(np.int64))


__all__ = ["CIFAR10", "DatasetSource", "FASHION_MNIST", "MNIST", "RemoteFile", "SOURCES", "fetch_dataset", "load_arrays"]
