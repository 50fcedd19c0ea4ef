"""zoo-tf ready for a GPU (issue #17): timed steps wait without copying to NumPy, a CPU-only
TensorFlow build refuses GPU cells at planning, TF32 only at precision tf32, autotuning and
allocator resets recorded. What a CPU can show runs here; what needs a GPU is skipped, naming it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow", reason="TensorFlow is not installed (pip install 'zoo-tf[cpu]')")

from tensorflow.python.framework import ops  # noqa: E402

from zoo.contract import PRECISIONS, EvalData, FineTuneConfig, Runtime, TrainData  # noqa: E402
from zoo.testing.reference import random_inputs  # noqa: E402
from zoo_tf import adapter  # noqa: E402
from zoo_tf.adapter import TFFramework  # noqa: E402
from zoo.testing.feed_cases import MODELS, PatternMeter, SYNC, load  # noqa: E402

NO_GPU = "needs a GPU visible to TensorFlow: this machine has none (tf.config.list_physical_devices('GPU') is empty)"
gpu_only = pytest.mark.skipif(not tf.config.list_physical_devices("GPU"), reason=NO_GPU)

CLASSES, BATCH, N, STEPS = 5, 4, 24, 6
VARIANTS = ("graph", "xla", "eager")


def data(name):
    spec, shape = MODELS[name]
    x = random_inputs(spec.inputs(shape), N, seed=2)
    order = tuple(np.random.default_rng(3).permutation(N)[:STEPS * BATCH].reshape(STEPS, BATCH))
    return x, np.random.default_rng(4).integers(0, CLASSES, N), order


@pytest.mark.parametrize("variant", VARIANTS)
def test_synchronize_is_called_at_each_synchronised_step_and_nothing_goes_to_numpy_inside_a_step(
        variant, monkeypatch):
    """Every synchronised step calls the plugin's ``synchronize`` (once, inside the step, for the
    model's device) and no floating-point tensor (a loss, logits) is converted to NumPy inside any
    step: ``.numpy()``, ``float(t)``, ``bool(t)`` and, off the CPU, ``np.asarray(t)`` all go through
    ``EagerTensor._numpy``, recorded here. Integer tensors are left out: eager gradients read their
    int32 shape and axis constants, which TensorFlow keeps in host memory on a GPU too."""
    fw = TFFramework(variant=variant)
    x, y, order = data("cnn")
    meter = PatternMeter()
    synced, converted = [], []
    monkeypatch.setattr(adapter, "synchronize", lambda device: synced.append((device, meter.inside)),
                        raising=False)  # (absent before #17: the test then fails on its copies, below)
    to_numpy = ops._EagerTensorBase._numpy

    def recorded(self):
        if meter.inside and self.dtype.is_floating:
            converted.append(tuple(self.shape))
        return to_numpy(self)

    monkeypatch.setattr(ops._EagerTensorBase, "_numpy", recorded)
    result = fw.fine_tune(load(fw, "cnn"), TrainData(x, y, (order,)), FineTuneConfig(), meter)
    logits = fw.evaluate(result.model, EvalData(x, order), meter)
    assert meter.steps == 2 * STEPS and len(result.losses) == STEPS and logits.shape == (STEPS * BATCH, CLASSES)
    assert converted == [], f"{len(converted)} tensors went to NumPy inside timed steps: {converted[:4]}"
    assert len(synced) == meter.synced == 2 * sum(SYNC)
    assert synced == [("/CPU:0", True)] * len(synced)


def test_the_recorder_sees_a_numpy_copy_inside_a_step(monkeypatch):
    meter = PatternMeter()
    converted = []
    to_numpy = ops._EagerTensorBase._numpy
    monkeypatch.setattr(ops._EagerTensorBase, "_numpy",
                        lambda self: (converted.append(meter.inside), to_numpy(self))[1])
    t = tf.ones((2,))
    t.numpy()  # outside a step
    with meter.step(1):
        t.numpy(), float(t[0]), bool(t[1] > 0)  # (np.asarray reads a CPU tensor's buffer in place)
    assert converted == [False, True, True, True]


def test_synchronize_waits_only_for_a_gpu(monkeypatch):
    waited = []
    monkeypatch.setattr(tf.test.experimental, "sync_devices", lambda: waited.append(True))
    adapter.synchronize("/CPU:0")  # eager CPU ops are synchronous: nothing to wait for
    assert waited == []
    adapter.synchronize("/GPU:0")
    assert waited == [True]


def test_sync_devices_exists_in_this_tensorflow():
    from tensorflow.python.framework import test_util

    assert tf.test.experimental.sync_devices is test_util.sync_devices
    test_util.sync_devices()  # runs on the CPU too (a SyncDevice op per device), so it is real here


def test_a_cpu_only_tensorflow_refuses_gpu_cells_at_planning_with_the_fix():
    providers = adapter.tensorflow_providers()
    if "tensorflow-cpu" not in providers:
        pytest.skip(f"TensorFlow here comes from {providers}, not tensorflow-cpu")
    support = TFFramework().supports(MODELS["cnn"][0], "gpu", "fp32")
    assert not support.ok
    assert "tensorflow-cpu, a CPU-only build" in support.reason
    assert "pip install 'zoo-tf[gpu]' (tensorflow[and-cuda])" in support.reason
    assert "environment of its own" in support.reason
    assert TFFramework().supports(MODELS["cnn"][0], "cpu", "fp32").ok


def test_supports_reads_the_build_from_metadata_without_importing_tensorflow():
    code = ("import sys; from zoo_tf.adapter import TFFramework; from zoo.models import CORE_MODELS; "
            "s = TFFramework().supports(CORE_MODELS[0], 'gpu', 'fp32'); "
            "assert 'tensorflow' not in sys.modules; print(s.ok)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == str("tensorflow-cpu" not in adapter.tensorflow_providers())


def test_which_builds_run_gpu_cells():
    assert adapter.gpu_build_support(("tensorflow",)).ok and adapter.gpu_build_support(("tf-nightly",)).ok
    for build in ("tensorflow-cpu", "tensorflow-macos"):
        assert not adapter.gpu_build_support((build,)).ok
    both = adapter.gpu_build_support(("tensorflow", "tensorflow-cpu"))  # one installed over the other
    assert not both.ok and "tensorflow-cpu" in both.reason


def test_tf32_is_a_precision_refused_on_a_cpu_with_the_reason():
    assert "tf32" in PRECISIONS and "tf32" in adapter.PRECISIONS
    spec = MODELS["cnn"][0]
    support = TFFramework().supports(spec, "cpu", "tf32")
    assert not support.ok and support.reason.startswith("tf32 is a GPU precision: ")
    with pytest.raises(ValueError, match="tf32 is a GPU precision"):
        TFFramework().prepare(Runtime("cpu", "tf32", threads=2, seed=0))


def test_a_tf32_model_is_the_fp32_model():
    fw = TFFramework()
    x = random_inputs(MODELS["cnn"][0].inputs((8, 8, 1)), 8, seed=5)
    order = (np.arange(8),)
    fp32, tf32 = (fw.evaluate(load(fw, "cnn", precision=p), EvalData(x, order), PatternMeter()) for p in ("fp32", "tf32"))
    np.testing.assert_array_equal(tf32, fp32)


def test_a_cpu_cell_records_autotuning_as_not_applicable_and_has_no_peak_to_reset():
    fw = TFFramework()
    details = fw.info().details
    assert details["autotune"] == {"cudnn": "not applicable: CPU cell",
                                   "xla_gpu_autotune_level": "not applicable: CPU cell"}
    assert details["tensor_float_32"] is False
    assert fw.reset_memory_peak("cpu") is False and fw.memory("cpu") == {}


def test_a_gpu_cell_records_what_tensorflow_and_xla_autotune(monkeypatch):
    """The record reads the environment the worker was started with; no GPU is needed to read it."""
    monkeypatch.delenv("TF_CUDNN_USE_AUTOTUNE", raising=False)
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    fw = TFFramework(variant="xla")
    fw.device = "gpu"  # what prepare(Runtime("gpu", ...)) sets
    assert fw._autotune() == {"cudnn": "on (TF_CUDNN_USE_AUTOTUNE unset: TensorFlow's default)",
                              "xla_gpu_autotune_level": "4 (XLA's default)"}
    monkeypatch.setenv("TF_CUDNN_USE_AUTOTUNE", "false")
    monkeypatch.setenv("XLA_FLAGS", "--xla_gpu_autotune_level=2 --xla_dump_to=/tmp/x --xla_gpu_autotune_level=0")
    assert fw._autotune() == {"cudnn": "TF_CUDNN_USE_AUTOTUNE=false", "xla_gpu_autotune_level": "0 (XLA_FLAGS)"}
    fw.variant = "graph"
    assert fw._autotune()["xla_gpu_autotune_level"] == "not applicable: variant graph does not compile with XLA"


def test_xla_flag_reads_the_last_setting():
    assert adapter.xla_flag("xla_gpu_autotune_level", "") is None
    assert adapter.xla_flag("xla_gpu_autotune_level", "--xla_gpu_autotune_level=3") == "3"
    assert adapter.xla_flag("a", "--a=1 --ab=2 --a=5") == "5"


def test_a_gpu_tf32_cell_turns_tf32_on_in_a_fresh_worker():
    """prepare(Runtime("gpu", "tf32")) on a machine without a GPU still applies the process
    settings (TF32 on), so a fresh process shows them; fp32 keeps TF32 off."""
    code = """
from zoo.contract import Runtime
from zoo_tf.adapter import TFFramework
import sys
fw = TFFramework()
fw.prepare(Runtime("gpu", sys.argv[1], threads=1, seed=0))
d = fw.info().details
print(d["tensor_float_32"], d["precision"], d["dtype_policies"]["backbone"], d["autotune"]["cudnn"])
"""
    for precision, expected in (("tf32", "True tf32 float32 on"), ("fp32", "False fp32 float32 on")):
        out = subprocess.run([sys.executable, "-c", code, precision], check=True, capture_output=True, text=True,
                             env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "3"}).stdout
        assert out.strip().splitlines()[-1].startswith(expected), (precision, out)


@gpu_only
def test_reset_memory_peak_restarts_the_gpu_peak():
    fw = TFFramework()
    with tf.device("/GPU:0"):
        big = tf.zeros((16 * 2**20,), tf.float32)
        del big
    assert fw.memory("gpu")["peak_bytes"] >= 64 * 2**20
    assert fw.reset_memory_peak("gpu") is True
    assert fw.memory("gpu")["peak_bytes"] < 64 * 2**20
