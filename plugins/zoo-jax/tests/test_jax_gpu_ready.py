"""zoo-jax ready for a GPU (issue #17): timed steps wait with ``block_until_ready`` and move
nothing between host and device, a GPU cell's memory policy is explicit (no pre-allocation, an
explicit cap instead of jax's 75 %) and recorded, TF32 only at precision tf32, autotuning
recorded, the ``gpu`` extra declared. What a CPU can show runs here; what needs a GPU is skipped."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

jax = pytest.importorskip("jax")

from jaxlib import xla_client  # noqa: E402

from zoo.contract import PRECISIONS, EvalData, FineTuneConfig, Runtime, TrainData, load_kwargs  # noqa: E402
from zoo.init import init_weights  # noqa: E402
from zoo.models import CORE_MODELS  # noqa: E402
from zoo.testing.reference import random_inputs  # noqa: E402
from zoo.testing.feed_cases import SYNC, PatternMeter  # noqa: E402
from zoo_jax import adapter  # noqa: E402
from zoo_jax.adapter import JaxFramework  # noqa: E402

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _has_gpu() -> bool:
    try:
        return bool(jax.devices("gpu"))
    except RuntimeError:
        return False


NO_GPU = "needs a GPU visible to jax: this machine has none (jax.devices('gpu') raises)"
gpu_only = pytest.mark.skipif(not _has_gpu(), reason=NO_GPU)

CLASSES, BATCH, N, STEPS = 5, 4, 24, 6
SPEC, SHAPE = CORE_MODELS[-1], (8, 8, 1)


class GuardedMeter(PatternMeter):
    """Yields ``SYNC[i]`` at step ``i`` and runs each step under ``jax.transfer_guard("disallow")``:
    an implicit transfer inside a step (a NumPy argument to a jitted step, on a GPU also a
    ``float(loss)`` or ``np.asarray(logits)``) raises there. On the CPU, whose arrays are host
    memory already, jax guards only host-to-device transfers, so :meth:`record_reads` also records
    every array read back inside a step through ``ArrayImpl._value`` (``float``, ``bool``,
    ``.tolist()``, ``__array__``; there ``np.asarray`` reads a CPU array's buffer in place, no copy)."""

    def __init__(self):
        super().__init__(guard=lambda: jax.transfer_guard("disallow"))
        self.reads = []

    def record_reads(self, monkeypatch):
        from jax._src.array import ArrayImpl

        value = ArrayImpl.__dict__["_value"]

        def read(array):
            if self.inside:
                self.reads.append(tuple(array.shape))
            return value.fget(array)

        monkeypatch.setattr(ArrayImpl, "_value", property(read))
        return self


@pytest.fixture()
def fw():
    f = JaxFramework()
    f.prepare(Runtime("cpu", "fp32", threads=1, seed=0))
    return f


def load(fw, precision="fp32", device="cpu"):
    return fw.load_pretrained(**load_kwargs(fw, spec=SPEC, weights=init_weights(SPEC, SHAPE, CLASSES, seed=1),
                                            input_shape=SHAPE, num_classes=CLASSES, device=device,
                                            precision=precision, freeze="none"))


def data():
    x = random_inputs(SPEC.inputs(SHAPE), N, seed=2)
    order = tuple(np.random.default_rng(3).permutation(N)[:STEPS * BATCH].reshape(STEPS, BATCH))
    return x, np.random.default_rng(4).integers(0, CLASSES, N), order


def test_the_guard_catches_transfers_inside_a_step(monkeypatch):
    """Both detectors of the test below catch what they are meant to (so their silence means something)."""
    meter = GuardedMeter().record_reads(monkeypatch)
    double = jax.jit(lambda a: a * 2)
    y = double(jax.numpy.ones(3))
    float(y.sum())  # outside a step: allowed
    with pytest.raises(Exception, match="Disallowed host-to-device transfer"):
        with meter.step(1):
            double(np.ones(3))
    with meter.step(1):
        float(y.sum()), y.tolist()
    assert meter.reads == [(), (3,)]


def test_timed_steps_synchronise_with_block_until_ready_and_transfer_nothing(fw, monkeypatch):
    x, y, order = data()
    meter = GuardedMeter().record_reads(monkeypatch)
    synced = []
    monkeypatch.setattr(adapter, "synchronize", lambda tree: (synced.append(meter.inside),
                                                              jax.block_until_ready(tree)))
    result = fw.fine_tune(load(fw), TrainData(x, y, (order, order)), FineTuneConfig(), meter)
    logits = fw.evaluate(result.model, EvalData(x, order), meter)
    assert meter.steps == 3 * STEPS and len(result.losses) == 2 * STEPS and logits.shape == (STEPS * BATCH, CLASSES)
    assert synced == [True] * meter.synced and meter.synced == 3 * sum(SYNC)
    assert meter.reads == [], f"{len(meter.reads)} arrays read to NumPy inside timed steps"


def test_cpu_env_is_unchanged_and_a_gpu_cell_gets_an_explicit_memory_policy(monkeypatch):
    for key in ("XLA_PYTHON_CLIENT_PREALLOCATE", "XLA_PYTHON_CLIENT_ALLOCATOR", "XLA_PYTHON_CLIENT_MEM_FRACTION",
                "XLA_CLIENT_MEM_FRACTION"):
        monkeypatch.delenv(key, raising=False)
    fw = JaxFramework()
    cpu = fw.subprocess_env(Runtime("cpu", "fp32", threads=2, seed=0))
    assert cpu == {"XLA_PYTHON_CLIENT_PREALLOCATE": "false", "PJRT_NPROC": "2", "JAX_PLATFORMS": "cpu"}
    gpu = fw.subprocess_env(Runtime("gpu", "fp32", threads=2, seed=0))
    assert gpu == {"XLA_PYTHON_CLIENT_PREALLOCATE": "false", "XLA_PYTHON_CLIENT_ALLOCATOR": "bfc",
                   "XLA_PYTHON_CLIENT_MEM_FRACTION": "0.95", "PJRT_NPROC": "2"}
    # This jaxlib reads exactly these into its GPU client's options: grow on demand, BFC, 95 % cap.
    clean = {k: v for k, v in xla_client.os.environ.items() if not k.startswith("XLA_")}
    monkeypatch.setattr(xla_client.os, "environ", {**clean, **gpu})
    options = xla_client.generate_pjrt_gpu_plugin_options()
    assert options["preallocate"] is False and options["allocator"] == "bfc"
    assert options["memory_fraction"] == pytest.approx(0.95)


def test_a_users_allocator_settings_stand_and_never_clash(monkeypatch):
    assert adapter.gpu_memory_env({}) == adapter.GPU_MEMORY_ENV
    assert adapter.gpu_memory_env({"XLA_PYTHON_CLIENT_MEM_FRACTION": ".5"}) == {
        "XLA_PYTHON_CLIENT_PREALLOCATE": "false", "XLA_PYTHON_CLIENT_ALLOCATOR": "bfc"}
    # jaxlib 0.10 refuses both fraction names at once: the user's new-style name keeps ours out
    user = {"XLA_CLIENT_MEM_FRACTION": ".5"}
    assert "XLA_PYTHON_CLIENT_MEM_FRACTION" not in adapter.gpu_memory_env(user)
    clean = {k: v for k, v in xla_client.os.environ.items() if not k.startswith("XLA_")}
    monkeypatch.setattr(xla_client.os, "environ", {**clean, **user, **adapter.gpu_memory_env(user)})
    assert xla_client.generate_pjrt_gpu_plugin_options()["memory_fraction"] == pytest.approx(0.5)
    monkeypatch.setattr(xla_client.os, "environ", {**clean, **user, **adapter.GPU_MEMORY_ENV})
    with pytest.raises(ValueError, match="XLA_CLIENT_MEM_FRACTION"):  # what adding ours would have done
        xla_client.generate_pjrt_gpu_plugin_options()


def test_a_cpu_cell_records_autotuning_and_gpu_memory_as_not_applicable(fw):
    details = fw.info().details
    assert details["autotune"] == {"xla_gpu_autotune_level": "not applicable: CPU cell"}
    assert details["gpu_memory"] == "not applicable: CPU cell"
    assert details["tf32"] is False and details["default_matmul_precision"] == "highest"


def test_a_gpu_cell_records_its_memory_policy_autotuning_and_tf32(monkeypatch):
    """prepare's GPU settings are a jax config value and environment variables, readable without
    a GPU (the backends already exist here, so the variables change nothing in this process)."""
    jax.devices("cpu")
    monkeypatch.setattr(adapter.os, "environ", {k: v for k, v in adapter.os.environ.items()
                                                 if not k.startswith("XLA_")})
    fw = JaxFramework()
    try:
        fw.prepare(Runtime("gpu", "tf32", threads=1, seed=0))
        details = fw.info().details
        assert details["tf32"] is True and details["default_matmul_precision"] == "tensorfloat32"
        assert details["gpu_memory"] == {"preallocate": "false", "allocator": "bfc", "mem_fraction": "0.95"}
        assert details["autotune"] == {"xla_gpu_autotune_level": "4 (XLA's default)"}
        adapter.os.environ["XLA_FLAGS"] = "--xla_gpu_autotune_level=0"
        assert fw.info().details["autotune"] == {"xla_gpu_autotune_level": "0 (XLA_FLAGS)"}
        fw.prepare(Runtime("gpu", "fp32", threads=1, seed=0))
        assert fw.info().details["default_matmul_precision"] == "highest"  # jax's GPU default would be TF32
    finally:
        JaxFramework().prepare(Runtime("cpu", "fp32", threads=1, seed=0))


def test_tf32_is_a_precision_refused_on_a_cpu_with_the_reason(fw):
    assert "tf32" in PRECISIONS and "tf32" in adapter.PRECISIONS
    support = fw.supports(SPEC, "cpu", "tf32")
    assert not support.ok and support.reason.startswith("tf32 is a GPU precision: ")
    assert fw.supports(SPEC, "gpu", "tf32").ok
    with pytest.raises(ValueError, match="tf32 is a GPU precision"):
        load(fw, precision="tf32")
    with pytest.raises(ValueError, match="tf32 is a GPU precision"):
        JaxFramework().prepare(Runtime("cpu", "tf32", threads=1, seed=0))


def test_jax_cannot_reset_the_allocator_peak_so_the_adapter_says_so(fw):
    """No reset in this jaxlib: if a ``reset``-named device method appears, use it in
    ``reset_memory_peak`` and change this test."""
    device = jax.devices("cpu")[0]
    assert not [name for name in dir(device) if "reset" in name.lower()]
    assert device.memory_stats() is None  # the CPU client keeps no allocator statistics
    assert fw.reset_memory_peak("cpu") is False and fw.reset_memory_peak("gpu") is False
    assert fw.memory("cpu") == {}


def test_the_gpu_extra_installs_jax_cuda12_within_the_jax_range():
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    (jax_pin,) = [d for d in project["dependencies"] if d.startswith("jax>=")]
    assert project["optional-dependencies"]["gpu"] == [jax_pin.replace("jax", "jax[cuda12]", 1)]


@gpu_only
def test_gpu_steps_finish_inside_the_step_and_memory_reports_a_peak():
    fw = JaxFramework()
    fw.prepare(Runtime("gpu", "fp32", threads=1, seed=0))
    model = load(fw, device="gpu")
    x, _, order = data()
    logits = fw.evaluate(model, EvalData(x, order), GuardedMeter())
    assert logits.shape == (STEPS * BATCH, CLASSES)
    assert fw.memory("gpu")["peak_bytes"] > 0
