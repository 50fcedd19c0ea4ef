"""Data-set readers, downloads and tasks, on tiny files in the published formats that the tests
write (IDX gz, CIFAR-10 binary tar.gz), served from a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile

import numpy as np
import pytest

from local_http import LocalServer, closed_port_url
from zoo.datasets import CIFAR10, MNIST, SOURCES, load_arrays
from zoo.datasets.readers import DatasetFormatError, read_cifar10_binary, read_idx
from zoo.datasets.transforms import IMAGENET_MEAN, Preprocess, resize_bilinear, resize_nearest, to_channels
from zoo.download import OfflineError, sha256
from zoo.tasks import BUILTIN_TASKS


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def tiny_idx_files(rng, n_train=30, n_test=20) -> dict[str, bytes]:
    return {
        "train-images-idx3-ubyte.gz": idx_bytes(rng.integers(0, 256, (n_train, 28, 28))),
        "train-labels-idx1-ubyte.gz": idx_bytes(np.arange(n_train) % 10),
        "t10k-images-idx3-ubyte.gz": idx_bytes(rng.integers(0, 256, (n_test, 28, 28))),
        "t10k-labels-idx1-ubyte.gz": idx_bytes(np.arange(n_test) % 10),
    }


def cifar_record(label: int, image: np.ndarray) -> bytes:
    return bytes([label]) + image.transpose(2, 0, 1).astype(np.uint8).tobytes()  # planar R, G, B


def tiny_cifar_tar(images: dict[str, list[tuple[int, np.ndarray]]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, records in images.items():
            data = b"".join(cifar_record(label, img) for label, img in records)
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_idx_reader_round_trip_and_refusals(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (5, 28, 28))
    (tmp_path / "a.gz").write_bytes(idx_bytes(arr))
    assert np.array_equal(read_idx(tmp_path / "a.gz"), arr)
    (tmp_path / "bad.gz").write_bytes(gzip.compress(b"\x01\x02\x08\x01" + b"\0" * 8))
    with pytest.raises(DatasetFormatError, match="magic"):
        read_idx(tmp_path / "bad.gz")
    (tmp_path / "short.gz").write_bytes(gzip.compress(gzip.decompress(idx_bytes(arr))[:-5]))
    with pytest.raises(DatasetFormatError, match="header says"):
        read_idx(tmp_path / "short.gz")


def test_cifar_binary_reader_decodes_planar_rgb(tmp_path):
    img = np.zeros((32, 32, 3), np.uint8)
    img[0, 1] = (10, 20, 30)  # row 0, column 1: R, G, B
    batches = {f"data_batch_{i}.bin": [(i % 10, img)] * 2 for i in range(1, 6)}
    batches["test_batch.bin"] = [(9, img)]
    (tmp_path / "c.tar.gz").write_bytes(tiny_cifar_tar(batches))
    xtr, ytr, xte, yte = read_cifar10_binary(tmp_path / "c.tar.gz")
    assert xtr.shape == (10, 32, 32, 3) and list(ytr) == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5] and list(yte) == [9]
    assert tuple(xte[0, 0, 1]) == (10, 20, 30) and xte[0].sum() == 60
    del batches["test_batch.bin"]
    (tmp_path / "d.tar.gz").write_bytes(tiny_cifar_tar(batches))
    with pytest.raises(DatasetFormatError, match="test_batch.bin"):
        read_cifar10_binary(tmp_path / "d.tar.gz")


def test_datasets_download_from_a_mirror_verify_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    rng = np.random.default_rng(1)
    files = tiny_idx_files(rng)
    img = rng.integers(0, 256, (32, 32, 3))
    cifar = tiny_cifar_tar({**{f"data_batch_{i}.bin": [(i, img)] for i in range(1, 6)}, "test_batch.bin": [(0, img)]})
    with LocalServer() as srv:
        for name, blob in files.items():
            srv.state.files[f"/mnist/{name}"] = blob
        srv.state.files["/cifar/cifar-10-binary.tar.gz"] = cifar
        mnist = MNIST.with_mirror(srv.url + "/mnist", {n: sha256(hashlib.sha256(b).hexdigest()) for n, b in files.items()})
        xtr, ytr, xte, yte = load_arrays(mnist)
        assert xtr.shape == (30, 28, 28, 1) and xtr.dtype == np.float32 and 0 <= xtr.min() and xtr.max() <= 1
        assert list(yte[:3]) == [0, 1, 2] and len(srv.state.requests) == 4
        load_arrays(mnist)
        assert len(srv.state.requests) == 4  # cached
        assert (tmp_path / "cache" / "datasets" / "mnist" / "train-images-idx3-ubyte.gz").exists()
        c10 = CIFAR10.with_mirror(srv.url + "/cifar", {"cifar-10-binary.tar.gz": sha256(hashlib.sha256(cifar).hexdigest())})
        xtr, ytr, xte, yte = load_arrays(c10)
        assert xtr.shape == (5, 32, 32, 3) and np.allclose(xtr[0] * 255, img)


def test_download_tasks_load_lazily_and_fail_clearly_offline(tmp_path, monkeypatch):
    from zoo.tasks import images

    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("ZOO_DATASET_MIRROR", closed_port_url() + "/data/")
    images._published.cache_clear()
    task = next(t for t in BUILTIN_TASKS if t.name == "cifar10-small")
    assert task.downloads == "cifar10" and task.input_shape == (32, 32, 3)  # nothing fetched to plan a task
    with pytest.raises(OfflineError, match="cifar-10-binary.tar.gz.*place it at"):
        task.load()


def test_a_download_task_end_to_end_with_subset_and_64px_preprocessing(tmp_path, monkeypatch):
    from zoo.tasks import images

    rng = np.random.default_rng(2)
    files = tiny_idx_files(rng, n_train=60, n_test=40)
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path))
    with LocalServer() as srv:
        for name, blob in files.items():
            srv.state.files[f"/fm/{name}"] = blob
        source = SOURCES["fashion-mnist"].with_mirror(
            srv.url + "/fm", {n: sha256(hashlib.sha256(b).hexdigest()) for n, b in files.items()})
        monkeypatch.setitem(SOURCES, "fashion-mnist", source)
        images._published.cache_clear()
        task = next(t for t in BUILTIN_TASKS if t.name == "fashion-mnist-small-64")
        data = task.load()
    images._published.cache_clear()
    assert data.x_train.shape == (60, 64, 64, 3) == (len(data.y_train), *task.input_shape)
    grey = data.x_train[..., 0] * 0.229 + IMAGENET_MEAN[0]
    np.testing.assert_allclose(grey, data.x_train[..., 1] * 0.224 + IMAGENET_MEAN[1], atol=1e-5)  # one grey, 3 copies


def test_bilinear_resize_matches_torch_interpolate():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).uniform(size=(2, 28, 20, 3)).astype(np.float32)
    for size in ((64, 64), (14, 10), (33, 47)):
        want = torch.nn.functional.interpolate(torch.from_numpy(x).permute(0, 3, 1, 2), size=size, mode="bilinear",
                                               align_corners=False, antialias=False).permute(0, 2, 3, 1).numpy()
        np.testing.assert_allclose(resize_bilinear(x, *size), want, atol=1e-5)
    assert resize_nearest(np.arange(4.0).reshape(1, 2, 2, 1), 4, 4)[0, :, :, 0].tolist() == [
        [0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]
    assert to_channels(np.ones((1, 2, 2, 1)), 3).shape == (1, 2, 2, 3)
    with pytest.raises(ValueError):
        to_channels(np.ones((1, 2, 2, 2)), 3)
    assert Preprocess(size=(64, 64), channels=3, normalize="imagenet").output_shape((28, 28, 1)) == (64, 64, 3)


def test_cifar_shaped_is_deterministic_balanced_and_offline():
    task = next(t for t in BUILTIN_TASKS if t.name == "cifar-shaped")
    assert task.downloads == ""
    data = task.load()
    from zoo.datasets.synthetic import cifar_shaped

    again = cifar_shaped()
    assert np.array_equal(data.x_train, again[0]) and np.array_equal(data.y_test, again[3])
    assert data.x_train.shape == (2000, 32, 32, 3) and np.bincount(data.y_train).tolist() == [200] * 10
    assert 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0
    src = next(t for t in BUILTIN_TASKS if t.name == "cifar-shaped-0to4").load()
    assert set(src.y_train) == set(src.y_test) == {0, 1, 2, 3, 4}


def test_every_task_declares_what_it_downloads():
    for task in BUILTIN_TASKS:
        assert task.downloads in ("", *SOURCES), task.name
    assert {t.name for t in BUILTIN_TASKS if t.downloads} >= {"mnist", "fashion-mnist", "cifar10", "cifar10-small"}
