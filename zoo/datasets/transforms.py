"""Deterministic NumPy image transforms for NHWC float32 batches: resize, channel repeat,
normalisation. The same arrays go to every framework, so no framework's resize or
normalisation (they differ in rounding and antialiasing) is ever involved.

* :func:`resize_bilinear`: half-pixel-centre bilinear interpolation without antialiasing
  (``align_corners=False``: what ``torch.nn.functional.interpolate(mode="bilinear",
  antialias=False)`` and ``tf.image.resize(method="bilinear", antialias=False)`` compute), with
  edge samples clamped. Good for upsampling small images (32 -> 64) for ImageNet-layout models;
  for large downsampling factors use :func:`resize_area`.
* :func:`resize_nearest`: source pixel ``floor((i + 0.5) * in / out)``.
* :func:`resize_area`: mean over ``k x k`` blocks (integer factors only).
* :func:`to_channels`: grey (C=1) -> C by repeating the channel; C -> C is a no-op.
* :func:`normalize`: ``(x - mean) / std`` per channel; :data:`IMAGENET_MEAN` and
  :data:`IMAGENET_STD` are the usual ImageNet statistics of images scaled to [0, 1], the input
  convention of torchvision's, timm's and Keras-converted PyTorch weights. (Keras's own
  ResNet50 expects Caffe-style BGR minus the mean pixel on a 0-255 scale instead; zoo tasks use
  the ImageNet mean/std convention for every model.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _axis_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    centre = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    centre = np.clip(centre, 0.0, n_in - 1)
    lo = np.floor(centre).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, centre - lo


def resize_bilinear(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize NHWC ``x`` to ``height x width`` (float32 out, computed in float64)."""
    x = np.asarray(x, dtype=np.float64)
    lo, hi, f = _axis_weights(x.shape[1], height)
    rows = x[:, lo] * (1 - f)[None, :, None, None] + x[:, hi] * f[None, :, None, None]
    lo, hi, f = _axis_weights(x.shape[2], width)
    out = rows[:, :, lo] * (1 - f)[None, None, :, None] + rows[:, :, hi] * f[None, None, :, None]
    return out.astype(np.float32)


def resize_nearest(x: np.ndarray, height: int, width: int) -> np.ndarray:
    rows = np.minimum(((np.arange(height) + 0.5) * x.shape[1] / height).astype(np.int64), x.shape[1] - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * x.shape[2] / width).astype(np.int64), x.shape[2] - 1)
    return np.ascontiguousarray(x[:, rows][:, :, cols], dtype=np.float32)


def resize_area(x: np.ndarray, height: int, width: int) -> np.ndarray:
    n, h, w, c = x.shape
    if h % height or w % width:
        raise ValueError(f"resize_area needs integer factors; {h}x{w} -> {height}x{width} is not")
    kh, kw = h // height, w // width
    return x.astype(np.float64).reshape(n, height, kh, width, kw, c).mean(axis=(2, 4)).astype(np.float32)


def to_channels(x: np.ndarray, channels: int) -> np.ndarray:
    if x.shape[3] == channels:
        return x
    if x.shape[3] != 1:
        raise ValueError(f"cannot turn {x.shape[3]} channels into {channels}; only grey (1) is repeated")
    return np.ascontiguousarray(np.repeat(x, channels, axis=3))


def normalize(x: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    mean_a, std_a = np.asarray(mean, dtype=np.float32), np.asarray(std, dtype=np.float32)
    return ((x.astype(np.float32) - mean_a) / std_a).astype(np.float32)


@dataclass(frozen=True)
class Preprocess:
    """What a task does to [0, 1] images before anyone sees them: resize to ``size`` (H, W)
    with ``resize`` ("bilinear", "nearest" or "area"), repeat grey to ``channels``, then
    normalise (``"imagenet"`` mean/std, or ``""`` for none)."""

    size: tuple[int, int] | None = None
    channels: int | None = None
    normalize: str = ""
    resize: str = "bilinear"

    def __post_init__(self) -> None:
        if self.normalize not in ("", "imagenet"):
            raise ValueError(f"normalize {self.normalize!r}; use 'imagenet' or ''")
        if self.resize not in ("bilinear", "nearest", "area"):
            raise ValueError(f"resize {self.resize!r}; use bilinear, nearest or area")

    def output_shape(self, input_shape: tuple[int, int, int]) -> tuple[int, int, int]:
        h, w = self.size or input_shape[:2]
        return (h, w, self.channels or input_shape[2])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.size is not None and tuple(x.shape[1:3]) != tuple(self.size):
            fn = {"bilinear": resize_bilinear, "nearest": resize_nearest, "area": resize_area}[self.resize]
            x = fn(x, *self.size)
        if self.channels is not None:
            x = to_channels(x, self.channels)
        if self.normalize == "imagenet":
            if x.shape[3] != 3:
                raise ValueError("ImageNet normalisation needs 3 channels; set channels=3")
            x = normalize(x, IMAGENET_MEAN, IMAGENET_STD)
        return np.ascontiguousarray(x, dtype=np.float32)
