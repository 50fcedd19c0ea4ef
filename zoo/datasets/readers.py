"""Readers for the published image-dataset formats. Pure NumPy and the standard library: no
pickle, nothing extracted to disk.

* IDX (MNIST, Fashion-MNIST): big-endian magic ``0x0000 08 NN`` (``08`` = unsigned byte,
  ``NN`` = number of dimensions), then ``NN`` big-endian uint32 sizes, then the bytes. Files are
  gzipped as published (``train-images-idx3-ubyte.gz``).
* CIFAR-10 binary version (``cifar-10-binary.tar.gz``): ``cifar-10-batches-bin/data_batch_1.bin``
  ... ``data_batch_5.bin`` and ``test_batch.bin``, each a run of 3,073-byte records: one label
  byte, then 3,072 image bytes, channel-planar (1,024 red, 1,024 green, 1,024 blue, each 32x32
  row-major). zoo reads this version, not the "python version", whose batches are pickles:
  no code path here unpickles a downloaded file.
"""

from __future__ import annotations

import gzip
import tarfile
from pathlib import Path

import numpy as np


class DatasetFormatError(ValueError):
    """A file is not in the published format it should be in."""


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (gzipped or not) as a uint8 array of its declared shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:
        raise DatasetFormatError(f"{path}: cannot read ({exc})") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DatasetFormatError(f"{path}: not an IDX file (bad magic number)")
    if data[2] != 0x08:
        raise DatasetFormatError(f"{path}: IDX element type 0x{data[2]:02x}; only unsigned bytes (0x08) are used here")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetFormatError(f"{path}: truncated IDX header")
    shape = tuple(int(v) for v in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape)) if shape else 0
    if len(data) - header != expected:
        raise DatasetFormatError(f"{path}: IDX header says {shape} = {expected} bytes, file has {len(data) - header}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


CIFAR10_TRAIN = tuple(f"cifar-10-batches-bin/data_batch_{i}.bin" for i in range(1, 6))
CIFAR10_TEST = ("cifar-10-batches-bin/test_batch.bin",)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_RECORD = 1 + 32 * 32 * 3


def _cifar_records(blob: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    if len(blob) % _RECORD:
        raise DatasetFormatError(f"{name}: {len(blob)} bytes is not a whole number of {_RECORD}-byte records")
    records = np.frombuffer(blob, dtype=np.uint8).reshape(-1, _RECORD)
    labels = records[:, 0].astype(np.int64)
    if labels.size and labels.max() >= 10:
        raise DatasetFormatError(f"{name}: label {labels.max()} out of range 0-9")
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # planar RGB -> NHWC
    return np.ascontiguousarray(images), labels


def read_cifar10_binary(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)`` (uint8 NHWC, int64) from ``cifar-10-binary.tar.gz``."""
    path = Path(path)
    try:
        tar = tarfile.open(path, "r:gz")
    except (OSError, tarfile.TarError) as exc:
        raise DatasetFormatError(f"{path}: not a gzipped tar archive ({exc})") from exc
    with tar:
        names = set(tar.getnames())
        missing = [m for m in CIFAR10_TRAIN + CIFAR10_TEST if m not in names]
        if missing:
            raise DatasetFormatError(f"{path}: missing {', '.join(missing)}; is this cifar-10-binary.tar.gz?")
        parts = {}
        for member in CIFAR10_TRAIN + CIFAR10_TEST:
            fh = tar.extractfile(member)
            if fh is None:
                raise DatasetFormatError(f"{path}: {member} is not a regular file")
            parts[member] = _cifar_records(fh.read(), member)
    x_train = np.concatenate([parts[m][0] for m in CIFAR10_TRAIN])
    y_train = np.concatenate([parts[m][1] for m in CIFAR10_TRAIN])
    x_test, y_test = parts[CIFAR10_TEST[0]]
    return x_train, y_train, x_test, y_test
