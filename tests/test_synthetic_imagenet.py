"""synthetic-imagenet-224 (and its tiny CPU-test size): registered with the declared shapes and
recipe, float32 NHWC images normalised like the ImageNet tasks, balanced int64 labels, the same
bytes in two loads and in another process, any range of images equal to those rows of the whole
split, a full-size task whose declared size is what it generates, and a class signal a simple
model learns from a few images (chance is 10 % on the tiny task, 2 % on 50 of the full task's
classes)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import zoo.builtin
from zoo.checks import check_task_data
from zoo.datasets.transforms import IMAGENET_MEAN, IMAGENET_STD
from zoo.tasks.synthetic import CHUNK, SYNTHETIC_IMAGENET, SYNTHETIC_IMAGENET_TINY, SyntheticImageNet

ROOT = Path(__file__).resolve().parent.parent
TASKS = {t.name: t for t in zoo.builtin.zoo_tasks()}


@pytest.fixture(scope="module")
def tiny():
    return TASKS["synthetic-imagenet-224-tiny"].load()


def _sha256(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(str((a.dtype, a.shape)).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def test_both_sizes_are_registered_as_224_px_tasks_with_their_recipes():
    full, small = TASKS["synthetic-imagenet-224"], TASKS["synthetic-imagenet-224-tiny"]
    assert (full.num_classes, full.input_shape, full.downloads) == (1000, (224, 224, 3), "")
    assert (full.recipe.batch_size, full.recipe.epochs, full.recipe.freeze) == (256, 3, "none")
    assert (small.num_classes, small.input_shape, small.recipe.batch_size) == (10, (224, 224, 3), 4)
    assert full.inputs[0].kind == "image" and full.inputs[0].dtype == "float32"
    assert full.load == SYNTHETIC_IMAGENET.load and small.load == SYNTHETIC_IMAGENET_TINY.load
    assert full.pretrained == () and full.target_accuracy is None  # random weights; no unmeasured target


def test_tiny_task_gives_float32_nhwc_imagenet_normalised_images_and_balanced_labels(tiny):
    task = TASKS["synthetic-imagenet-224-tiny"]
    assert check_task_data(task, tiny) is tiny
    assert tiny.x_train.shape == (40, 224, 224, 3) and tiny.x_test.shape == (20, 224, 224, 3)
    for x in (tiny.x_train, tiny.x_test):
        assert x.dtype == np.float32 and x.flags["C_CONTIGUOUS"] and np.isfinite(x).all()
    for y, per_class in ((tiny.y_train, 4), (tiny.y_test, 2)):
        assert y.dtype == np.int64 and np.bincount(y, minlength=10).tolist() == [per_class] * 10
    # [0, 1] pixels normalised with the ImageNet mean/std: each channel within (0 - m) / s .. (1 - m) / s,
    # and both ends reached (the pixels are clipped to [0, 1] before normalising)
    mean, std = np.asarray(IMAGENET_MEAN, np.float32), np.asarray(IMAGENET_STD, np.float32)
    low, high = tiny.x_train.min(axis=(0, 1, 2)), tiny.x_train.max(axis=(0, 1, 2))
    np.testing.assert_allclose(low, -mean / std, rtol=1e-6)
    np.testing.assert_allclose(high, (1 - mean) / std, rtol=1e-6)
    pixels = tiny.x_train * std + mean
    assert abs(float(pixels.mean()) - 0.5) < 0.05  # centred on grey
    assert len(np.unique(tiny.x_train[0])) > 10_000  # noise per pixel, not flat colour


def test_two_loads_and_another_process_give_the_same_bytes(tiny):
    digest = _sha256(tiny.x_train, tiny.y_train, tiny.x_test, tiny.y_test)
    again = SYNTHETIC_IMAGENET_TINY.load()
    assert _sha256(again.x_train, again.y_train, again.x_test, again.y_test) == digest
    code = ("import sys; sys.path.insert(0, 'tests'); from test_synthetic_imagenet import _sha256; "
            "from zoo.tasks.synthetic import SYNTHETIC_IMAGENET_TINY as t; d = t.load(); "
            "print(_sha256(d.x_train, d.y_train, d.x_test, d.y_test))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == digest
    other = SyntheticImageNet(num_classes=10, train_size=40, test_size=20, seed=SYNTHETIC_IMAGENET_TINY.seed + 1)
    assert not np.array_equal(other.images("train", 0, 2), tiny.x_train[:2])  # the seed is what decides


def test_any_range_of_images_is_those_rows_of_the_whole_split(tiny):
    lo, hi = CHUNK - 3, CHUNK + 4  # across a chunk boundary of the generator
    np.testing.assert_array_equal(SYNTHETIC_IMAGENET_TINY.images("train", lo, hi), tiny.x_train[lo:hi])
    np.testing.assert_array_equal(SYNTHETIC_IMAGENET_TINY.images("test", 19, 20), tiny.x_test[19:])
    # the tiny task's 10 classes are the full task's classes 0-9: same patterns
    np.testing.assert_array_equal(SYNTHETIC_IMAGENET_TINY.patterns(), SYNTHETIC_IMAGENET.patterns()[:10])


def test_the_full_task_declares_the_size_it_generates():
    full, task = SYNTHETIC_IMAGENET, TASKS["synthetic-imagenet-224"]
    assert (full.num_classes, full.train_size, full.test_size) == (1000, 3000, 1000)
    assert full.image_bytes == 224 * 224 * 3 * 4 == 602_112
    assert full.nbytes == 4000 * 602_112 == 2_408_448_000
    assert "2.41 GB" in task.description and "3,000 / 1,000" in task.description
    for split, n, per_class in (("train", 3000, 3), ("test", 1000, 1)):
        labels = full.labels(split)
        assert len(labels) == n and np.bincount(labels).tolist() == [per_class] * 1000
        last = full.images(split, n - 2, n)  # the split's last images exist and are what nbytes counts
        assert last.shape == (2, 224, 224, 3) and last.dtype == np.float32 and last.nbytes == 2 * full.image_bytes
        with pytest.raises(ValueError, match="outside"):
            full.images(split, n - 1, n + 1)
    # load() makes exactly the declared arrays (shown on the tiny size, which runs the same code)
    small = SYNTHETIC_IMAGENET_TINY.load()
    assert small.x_train.nbytes + small.x_test.nbytes == SYNTHETIC_IMAGENET_TINY.nbytes
    with pytest.raises(ValueError, match="multiple of num_classes"):
        SyntheticImageNet(num_classes=1000, train_size=2560)


def _pooled(x: np.ndarray, k: int = 8) -> np.ndarray:
    n, h, w, c = x.shape
    return x.reshape(n, h // k, k, w // k, k, c).mean(axis=(2, 4)).reshape(n, -1)


def _softmax_regression_accuracy(x_train, y_train, x_test, y_test, classes: int, steps: int = 200) -> float:
    """Multinomial logistic regression on 8x8-average-pooled pixels, full-batch gradient descent
    from zero weights: a model that knows nothing of how the images were made."""
    f_train, f_test = _pooled(x_train), _pooled(x_test)
    mu, sd = f_train.mean(axis=0), f_train.std(axis=0) + 1e-6
    f_train, f_test = (f_train - mu) / sd, (f_test - mu) / sd
    w = np.zeros((f_train.shape[1], classes))
    b = np.zeros(classes)
    onehot = np.eye(classes)[y_train]
    for _ in range(steps):
        z = f_train @ w + b
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        g = (p - onehot) / len(y_train)
        w -= 0.5 * (f_train.T @ g + 1e-3 * w)
        b -= 0.5 * g.sum(axis=0)
    return float(((f_test @ w + b).argmax(axis=1) == y_test).mean())


def test_a_simple_model_beats_chance_on_the_tiny_task(tiny):
    acc = _softmax_regression_accuracy(tiny.x_train, tiny.y_train, tiny.x_test, tiny.y_test, 10)
    assert acc >= 0.8, acc  # chance: 0.1


def test_a_simple_model_tells_apart_fifty_of_the_full_tasks_classes():
    """Classes 0-49 of the 1000-class task from its own images (3 training images each: indices
    c, 1000 + c, 2000 + c; the test images c), without making the other 3,800 images."""
    full, classes = SYNTHETIC_IMAGENET, 50
    patterns = full.patterns()
    x_train = np.concatenate([full.images("train", k * 1000, k * 1000 + classes, patterns) for k in range(3)])
    y_train = np.concatenate([full.labels("train")[k * 1000:k * 1000 + classes] for k in range(3)])
    x_test, y_test = full.images("test", 0, classes, patterns), full.labels("test")[:classes]
    assert sorted(set(y_train)) == list(range(classes)) and y_test.tolist() == list(range(classes))
    acc = _softmax_regression_accuracy(x_train, y_train, x_test, y_test, classes)
    assert acc >= 0.8, acc  # chance: 0.02
