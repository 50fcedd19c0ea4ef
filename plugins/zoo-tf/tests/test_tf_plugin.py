"""The TF plugin as the ``zoo`` command sees it: cheap to import, plans without TensorFlow,
and configures a fresh worker process."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from zoo.contract import Runtime
from zoo.models import BUILTIN_MODELS, MLPSpec
from zoo_tf.adapter import FAMILIES, TFFramework, installed_tensorflow

HAS_TF = importlib.util.find_spec("tensorflow") is not None


def test_importing_zoo_tf_imports_neither_tensorflow_nor_keras():
    code = "import zoo_tf, sys; assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_supports_built_in_models_and_explains_refusals():
    fw = TFFramework()
    if installed_tensorflow() is None:
        assert "not installed" in fw.supports(BUILTIN_MODELS[0], "cpu", "fp32").reason
        return
    built = [spec for spec in BUILTIN_MODELS if spec.family in FAMILIES]
    assert len(built) >= 2
    assert all(fw.supports(spec, "cpu", precision).ok for spec in built for precision in ("fp32", "bf16"))
    assert "'fp16'" in fw.supports(BUILTIN_MODELS[0], "cpu", "fp16").reason

    class ViTSpec(MLPSpec):
        family = "vit"

    assert "'vit'" in fw.supports(ViTSpec("vit", "x"), "cpu", "fp32").reason
    if installed_tensorflow() == "tensorflow-cpu":
        assert "zoo-tf[gpu]" in fw.supports(BUILTIN_MODELS[0], "gpu", "fp32").reason


def test_subprocess_env_sets_backend_and_threads():
    env = TFFramework().subprocess_env(Runtime("cpu", "fp32", threads=3, seed=0))
    assert env["KERAS_BACKEND"] == "tensorflow"
    assert env["TF_NUM_INTRAOP_THREADS"] == "3" and env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"


def test_variants_are_graph_xla_eager_with_graph_the_default():
    fw = TFFramework()
    assert list(TFFramework.variants) == ["graph", "xla", "eager"] and fw.variant == "graph"
    assert TFFramework(variant="xla").variant == "xla"
    with pytest.raises(ValueError, match="'jit'.*graph, xla, eager"):
        TFFramework(variant="jit")


@pytest.mark.skipif(not HAS_TF, reason="TensorFlow is not installed (pip install 'zoo-tf[cpu]')")
def test_prepare_configures_a_fresh_worker():
    # prepare() applies TensorFlow's process-wide settings once; preparing again with the same
    # ones only switches variant and precision, and asking for other threads is an error.
    code = """
import numpy as np
import pytest
from zoo.contract import Runtime
from zoo.init import init_weights
from zoo.models import BUILTIN_MODELS
from zoo_tf.adapter import TFFramework
fw = TFFramework()
fw.prepare(Runtime("cpu", "fp32", threads=1, seed=0))
info = fw.info()
assert info.details["intra_op_threads"] == 1 and info.details["inter_op_threads"] == 1, info
assert info.details["tensor_float_32"] is False and info.details["keras_backend"] == "tensorflow", info
assert list(info.devices) == ["cpu"] and set(info.versions) == set(fw.packages), info
assert info.details["variant"] == "graph" and info.details["bf16_ops"] == [], info
assert fw.memory("cpu") == {}
spec = BUILTIN_MODELS[0]
model = fw.load_pretrained(spec=spec, weights=init_weights(spec, (8, 8, 1), 10, seed=0), input_shape=(8, 8, 1),
                           num_classes=10, device="cpu", precision="fp32", freeze="none")
assert model.variant == "graph"
fw.prepare(Runtime("cpu", "bf16", threads=1, seed=0, variant="xla"))
info = fw.info()
assert info.details["variant"] == "xla" and info.details["jit_compile"] is True, info
assert info.details["bf16_ops"] == ["Conv2D", "Dense (backbone)"], info
assert info.details["intra_op_threads"] == 1, info
with pytest.raises(RuntimeError, match="fresh process"):
    fw.prepare(Runtime("cpu", "fp32", threads=2, seed=0))
with pytest.raises(ValueError, match="no variant 'jit'"):
    fw.prepare(Runtime("cpu", "fp32", threads=1, seed=0, variant="jit"))
"""
    subprocess.run([sys.executable, "-c", code], check=True)
