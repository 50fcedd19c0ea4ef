"""Shipped checkpoints are verified by sha256 before they are parsed."""

import json
import shutil

import numpy as np
import pytest

from zoo.checkpoints import BUILTIN_DIR, CheckpointError, load_checkpoint, read_manifest, save_checkpoint
from zoo.models import BUILTIN_MODELS
from zoo.tasks import BUILTIN_TASKS


def test_every_shipped_checkpoint_verifies_and_fits_its_model():
    entries = read_manifest()
    assert {e.model for e in entries.values()} >= {"mlp", "cnn"}
    specs = {s.name: s for s in BUILTIN_MODELS}
    for name, entry in entries.items():
        loaded_entry, weights = load_checkpoint(name)
        assert loaded_entry == entry
        specs[entry.model].check_weights(weights, entry.input_shape, entry.num_classes)
        assert entry.recipe and entry.produced_by and entry.command.startswith("zoo pretrain")


def test_shipped_checkpoint_reaches_its_recorded_accuracy_in_the_numpy_reference():
    specs = {s.name: s for s in BUILTIN_MODELS}
    tasks = {t.name: t for t in BUILTIN_TASKS}
    for name, entry in read_manifest().items():
        _, weights = load_checkpoint(name)
        data = tasks[entry.source_task].load()
        acc = (specs[entry.model].reference_forward(weights, data.x_test).argmax(1) == data.y_test).mean()
        assert abs(acc - entry.accuracy) < 1e-3, (name, acc, entry.accuracy)


@pytest.fixture
def ckpt_copy(tmp_path):
    for f in BUILTIN_DIR.iterdir():
        shutil.copy(f, tmp_path / f.name)
    return tmp_path


def test_one_corrupted_byte_is_detected_before_parsing(ckpt_copy):
    entry = read_manifest(ckpt_copy)["cnn-digits0to4"]
    path = ckpt_copy / entry.file
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # inside a tensor: still parses, but is not the published model
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt or was replaced: sha256"):
        load_checkpoint("cnn-digits0to4", ckpt_copy)


def test_missing_file_and_unknown_name_say_what_to_do(ckpt_copy):
    with pytest.raises(CheckpointError, match="known: cnn-digits0to4"):
        load_checkpoint("resnet-imagenet", ckpt_copy)
    (ckpt_copy / "mlp-digits0to4.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint("mlp-digits0to4", ckpt_copy)


def test_newer_manifest_schema_is_refused(ckpt_copy):
    manifest = json.loads((ckpt_copy / "manifest.json").read_text())
    manifest["schema"] = 99
    (ckpt_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="upgrade zoo-bench"):
        read_manifest(ckpt_copy)


def test_save_then_load_round_trips(tmp_path):
    weights = {"head.kernel": np.arange(6, dtype=np.float32).reshape(2, 3), "head.bias": np.ones(3, np.float32)}
    entry = save_checkpoint({"name": "t", "model": "mlp", "source_task": "x", "num_classes": 3,
                             "input_shape": [1, 1, 2], "accuracy": 0.5}, weights, tmp_path)
    loaded_entry, loaded = load_checkpoint("t", tmp_path)
    assert loaded_entry == entry and entry.input_shape == (1, 1, 2)
    assert all(np.array_equal(loaded[k], weights[k]) for k in weights)
