"""The TF plugin as the ``zoo`` command sees it: cheap to import, plans without TensorFlow,
and configures a fresh worker process."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from zoo.contract import Runtime
from zoo.models import BUILTIN_MODELS, MLPSpec
from zoo_tf.adapter import TFFramework, installed_tensorflow

HAS_TF = importlib.util.find_spec("tensorflow") is not None


def test_importing_zoo_tf_imports_neither_tensorflow_nor_keras():
    code = "import zoo_tf, sys; assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_supports_built_in_models_and_explains_refusals():
    fw = TFFramework()
    if installed_tensorflow() is None:
        assert "not installed" in fw.supports(BUILTIN_MODELS[0], "cpu", "fp32").reason
        return
    assert all(fw.supports(spec, "cpu", "fp32").ok for spec in BUILTIN_MODELS)
    assert "bf16" in fw.supports(BUILTIN_MODELS[0], "cpu", "bf16").reason

    class ViTSpec(MLPSpec):
        family = "vit"

    assert "'vit'" in fw.supports(ViTSpec("vit", "x"), "cpu", "fp32").reason
    if installed_tensorflow() == "tensorflow-cpu":
        assert "zoo-tf[gpu]" in fw.supports(BUILTIN_MODELS[0], "gpu", "fp32").reason


def test_subprocess_env_sets_backend_and_threads():
    env = TFFramework().subprocess_env(Runtime("cpu", "fp32", threads=3, seed=0))
    assert env["KERAS_BACKEND"] == "tensorflow"
    assert env["TF_NUM_INTRAOP_THREADS"] == "3" and env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"


@pytest.mark.skipif(not HAS_TF, reason="TensorFlow is not installed (pip install 'zoo-tf[cpu]')")
def test_prepare_configures_a_fresh_worker():
    code = """
from zoo.contract import Runtime
from zoo_tf.adapter import TFFramework
fw = TFFramework()
fw.prepare(Runtime("cpu", "fp32", threads=1, seed=0))
info = fw.info()
assert info.details["intra_op_threads"] == 1 and info.details["inter_op_threads"] == 1, info
assert info.details["tensor_float_32"] is False and info.details["keras_backend"] == "tensorflow", info
assert list(info.devices) == ["cpu"] and set(info.versions) == set(fw.packages), info
assert fw.memory("cpu") == {}
"""
    subprocess.run([sys.executable, "-c", code], check=True)
