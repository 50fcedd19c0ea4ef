"""``cifar-shaped``: a fully offline, deterministic stand-in for CIFAR-10 (32x32 RGB, 10 classes),
so ResNet recipes can be tested in CI without a download.

Each class has a template: an oriented colour grating (the class sets orientation, frequency
and colours) over a smooth zero-mean colour texture (a random 4x4x3 grid, bilinearly
upsampled). An image is its class template shifted by a random offset (wrapping, so position
says nothing), scaled in contrast (0.6-1.4) and brightness (+-0.15), plus Gaussian pixel noise
(sigma 0.3), clipped to [0, 1]. A linear model on raw pixels stays far from solving it (the
grating's phase is random); a convolutional net learns it. Everything comes from one seeded
NumPy generator: the same arrays on every machine.
"""

from __future__ import annotations

import numpy as np

from zoo.datasets.transforms import resize_bilinear

SEED = 20240601
SIZE = 32


def class_templates(num_classes: int = 10, seed: int = SEED) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(-1.0, 1.0, size=(num_classes, 4, 4, 3))
    texture = resize_bilinear(coarse, SIZE, SIZE).astype(np.float64)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    templates = np.empty((num_classes, SIZE, SIZE, 3))
    for c in range(num_classes):
        angle = np.pi * c / num_classes
        freq = 2.0 + (c % 3)  # whole cycles per image, so wrapping shifts stay seamless
        wave = np.sin(2 * np.pi * np.round(freq * np.cos(angle)) * xx + 2 * np.pi * np.round(freq * np.sin(angle)) * yy)
        colour = rng.uniform(-0.3, 0.3, size=3)
        templates[c] = 0.5 + 0.12 * texture[c] + wave[..., None] * colour
    return templates


def make_split(n: int, num_classes: int, rng: np.random.Generator, templates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.arange(n) % num_classes
    y = y[rng.permutation(n)]
    x = np.empty((n, SIZE, SIZE, 3))
    shifts = rng.integers(0, SIZE, size=(n, 2))
    contrast = rng.uniform(0.6, 1.4, size=n)
    brightness = rng.uniform(-0.15, 0.15, size=n)
    for i in range(n):
        img = np.roll(templates[y[i]], tuple(shifts[i]), axis=(0, 1))
        x[i] = (img - 0.5) * contrast[i] + 0.5 + brightness[i]
    x += rng.normal(0.0, 0.3, size=x.shape)
    return np.clip(x, 0.0, 1.0).astype(np.float32), y.astype(np.int64)


def cifar_shaped(n_train: int = 2000, n_test: int = 1000, num_classes: int = 10, seed: int = SEED):
    """``(x_train, y_train, x_test, y_test)``: float32 NHWC in [0, 1], balanced int64 labels."""
    templates = class_templates(num_classes, seed)
    rng = np.random.default_rng(seed + 1)
    xtr, ytr = make_split(n_train, num_classes, rng, templates)
    xte, yte = make_split(n_test, num_classes, rng, templates)
    return xtr, ytr, xte, yte
