"""Importers: published weights files -> canonical weights, exactly or not at all.

Keras: ``keras.applications.ResNet50(weights=None)`` is built in a subprocess (TensorFlow stays
out of this process), given non-trivial BatchNorm statistics and conv biases, and saved in both
layouts the importer reads (Keras 3 ``.weights.h5`` and legacy Keras 2 ``.h5``, written by Keras's
own legacy writer); its own logits (``classifier_activation=None``) are the reference.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import run_zoo
from zoo.checkpoints import load_checkpoint, read_manifest
from zoo.importers import WeightsImportError, import_weights
from zoo.models import builtin_model

torch = pytest.importorskip("torch")
import torchvision_mirror as tvm  # noqa: E402

KERAS_SCRIPT = textwrap.dedent("""
    import sys, numpy as np, h5py, keras
    from keras.src.legacy.saving import legacy_h5_format
    out = sys.argv[1]
    m = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3), classes=5, classifier_activation=None)
    rng = np.random.default_rng(0)
    for layer in m.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.get_weights()[0].shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.uniform(-0.2, 0.2, n), rng.uniform(-0.5, 0.5, n),
                               rng.uniform(0.5, 2.0, n)])
        elif isinstance(layer, keras.layers.Conv2D):
            k, b = layer.get_weights()
            layer.set_weights([k, rng.uniform(-0.1, 0.1, b.shape)])
    m.save_weights(out + "/resnet50.weights.h5")
    with h5py.File(out + "/resnet50_legacy.h5", "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, m)
    x = rng.normal(size=(2, 64, 64, 3)).astype(np.float32)
    np.save(out + "/x.npy", x)
    np.save(out + "/logits.npy", np.asarray(m(x, training=False)))
""")


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    pytest.importorskip("keras")
    pytest.importorskip("h5py")
    out = tmp_path_factory.mktemp("keras")
    proc = subprocess.run([sys.executable, "-c", KERAS_SCRIPT, str(out)], capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "KERAS_BACKEND": "tensorflow", "CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.mark.parametrize("filename,fmt", [("resnet50.weights.h5", "keras3 .weights.h5"),
                                          ("resnet50_legacy.h5", "legacy keras2 .h5")])
def test_keras_resnet50_imports_and_matches_keras_own_logits(keras_files, filename, fmt):
    imported = import_weights("keras", keras_files / filename)
    assert (imported.model, imported.source_format, imported.num_classes) == ("resnet50-keras", fmt, 5)
    x = np.load(keras_files / "x.npy")
    got = builtin_model("resnet50-keras").reference_forward(imported.weights, x)
    np.testing.assert_allclose(got, np.load(keras_files / "logits.npy"), atol=1e-4, rtol=0)


def test_keras_weights_are_refused_for_the_torchvision_topology(keras_files):
    with pytest.raises(WeightsImportError, match="stride .* first 1x1.*resnet50-keras"):
        import_weights("keras", keras_files / "resnet50.weights.h5", model="resnet50")


def test_keras_file_without_a_head_is_refused(keras_files, tmp_path):
    import h5py
    import shutil

    path = tmp_path / "notop.h5"
    shutil.copy(keras_files / "resnet50_legacy.h5", path)
    with h5py.File(path, "r+") as f:
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in f.attrs["layer_names"]]
        f.attrs["layer_names"] = [n.encode() for n in names if n != "predictions"]
    with pytest.raises(WeightsImportError, match="include_top=False"):
        import_weights("keras", path)


def _save(model, path):
    torch.save(model.state_dict(), path)
    return path


def test_torchvision_detects_the_model_and_refuses_a_wrong_one(tmp_path):
    path = _save(tvm.resnet18(num_classes=4), tmp_path / "r18.pth")
    imported = import_weights("torchvision", path)
    assert imported.model == "resnet18" and imported.num_classes == 4 and imported.input_channels == 3
    assert all(k.endswith("num_batches_tracked") for k in imported.dropped) and len(imported.dropped) == 20
    assert imported.weights["conv1.kernel"].shape == (7, 7, 3, 64)  # OIHW -> HWIO
    assert imported.weights["head.kernel"].shape == (512, 4)  # [out, in] -> [in, out]
    with pytest.raises(WeightsImportError, match="does not fit model 'resnet50'.*basic blocks 2-2-2-2.*missing"):
        import_weights("torchvision", path, model="resnet50")
    with pytest.raises(WeightsImportError, match="silently compute another network"):
        import_weights("torchvision", path, model="resnet50-keras")


def test_torchvision_refuses_other_architectures_and_unsafe_files(tmp_path):
    model = tvm.resnet18()
    state = model.state_dict()
    deep_stem = {("conv1.0.weight" if k == "conv1.weight" else k): v for k, v in state.items()}  # timm resnet18d-like
    torch.save(deep_stem, tmp_path / "d.pth")
    with pytest.raises(WeightsImportError, match="unexpected keys conv1.0.weight"):
        import_weights("torchvision", tmp_path / "d.pth")
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "ddp.pth")
    with pytest.raises(WeightsImportError, match="module."):
        import_weights("torchvision", tmp_path / "ddp.pth")
    resnet34 = tvm.ResNet(tvm.BasicBlock, [3, 4, 6, 3])
    torch.save(resnet34.state_dict(), tmp_path / "r34.pth")
    with pytest.raises(WeightsImportError, match="basic blocks 3-4-6-3.*fits none"):
        import_weights("torchvision", tmp_path / "r34.pth")
    torch.save({"weights": tvm.BasicBlock(4, 4)}, tmp_path / "pickled-module.pth")  # needs full unpickling
    with pytest.raises(WeightsImportError, match="weights_only=True"):
        import_weights("torchvision", tmp_path / "pickled-module.pth")


def test_timm_safetensors_import_like_torchvision(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(1)
    model = tvm.randomise_batchnorm(tvm.resnet18(num_classes=6))
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    save_file(state, str(tmp_path / "model.safetensors"))
    imported = import_weights("hf", tmp_path / "model.safetensors")
    assert imported.model == "resnet18" and "timm" in imported.source_format
    x = np.random.default_rng(0).normal(size=(2, 48, 48, 3)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    np.testing.assert_allclose(builtin_model("resnet18").reference_forward(imported.weights, x), want, atol=1e-4)


def _transformers_names(state):
    """torchvision keys -> transformers ResNetForImageClassification keys (as in modeling_resnet.py)."""
    import re

    kind = {"weight": "weight", "bias": "bias", "running_mean": "running_mean", "running_var": "running_var"}
    out = {}
    for key, value in state.items():
        module, k = key.rsplit(".", 1)
        if k == "num_batches_tracked":
            continue
        if module in ("conv1", "bn1"):
            part = "convolution" if module == "conv1" else "normalization"
            out[f"resnet.embedder.embedder.{part}.{kind[k]}"] = value
        elif module == "fc":
            out[f"classifier.1.{k}"] = value
        else:
            s, b, rest = re.fullmatch(r"layer(\d+)\.(\d+)\.(.+)", module).groups()
            prefix = f"resnet.encoder.stages.{int(s) - 1}.layers.{b}"
            if rest.startswith("downsample"):
                part = "convolution" if rest.endswith("0") else "normalization"
                out[f"{prefix}.shortcut.{part}.{k}"] = value
            else:
                i = int(rest[-1]) - 1
                part = "convolution" if rest.startswith("conv") else "normalization"
                out[f"{prefix}.layer.{i}.{part}.{k}"] = value
    return out


def test_transformers_naming_needs_its_config_and_then_imports(tmp_path):
    from safetensors.torch import save_file

    model = tvm.randomise_batchnorm(tvm.resnet50(num_classes=3))
    save_file({k: v.contiguous() for k, v in _transformers_names(model.state_dict()).items()},
              str(tmp_path / "model.safetensors"))
    with pytest.raises(WeightsImportError, match="config.json"):
        import_weights("hf", tmp_path / "model.safetensors")
    config = {"model_type": "resnet", "layer_type": "bottleneck", "depths": [3, 4, 6, 3], "hidden_act": "relu",
              "downsample_in_first_stage": False, "downsample_in_bottleneck": True}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsImportError, match="downsample_in_bottleneck"):
        import_weights("hf", tmp_path / "model.safetensors")
    config["downsample_in_bottleneck"] = False
    (tmp_path / "config.json").write_text(json.dumps(config))
    imported = import_weights("hf", tmp_path / "model.safetensors")
    assert imported.model == "resnet50"
    x = np.random.default_rng(0).normal(size=(1, 64, 64, 3)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    np.testing.assert_allclose(builtin_model("resnet50").reference_forward(imported.weights, x), want, atol=1e-4)


def test_zoo_import_writes_a_checkpoint_with_a_model_card_that_zoo_models_lists(tmp_path):
    torch.manual_seed(0)
    model = tvm.randomise_batchnorm(tvm.resnet20(num_classes=10))
    path = _save(model, tmp_path / "r20.pth")
    cache = tmp_path / "cache"
    env = {"ZOO_CACHE_DIR": str(cache)}
    proc = run_zoo("import", "torchvision", str(path), "--name", "r20-test", "--license", "MIT", env=env)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    directory = cache / "checkpoints"
    entry, weights = load_checkpoint("r20-test", directory)  # sha256-verified
    assert entry.model == "resnet20" and entry.accuracy is None and entry.num_classes == 10
    assert entry.input_shape == (32, 32, 3)
    assert entry.card["license"] == "MIT" and entry.card["source_sha256"] == imported_sha(path)
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    np.testing.assert_allclose(builtin_model("resnet20").reference_forward(weights, x), want, atol=1e-4)
    listed = run_zoo("models", "--cards", env=env)
    assert listed.returncode == 0 and "r20-test" in listed.stdout and "source_sha256" in listed.stdout
    bad = run_zoo("import", "torchvision", str(path), "--model", "resnet18", "--name", "x", env=env)
    assert bad.returncode == 2 and "does not fit model 'resnet18'" in bad.stdout and "Traceback" not in bad.stderr
    assert set(read_manifest(directory)) == {"r20-test"}


def imported_sha(path):
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_shipped_checkpoints_carry_model_cards():
    for entry in read_manifest().values():
        for key in ("summary", "source_data", "recipe", "accuracy", "license"):
            assert entry.card.get(key), (entry.name, key)
