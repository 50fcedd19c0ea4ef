"""zoo-torch ready for a GPU (issue #17): timed steps wait without copying, the GPU settings
(cuDNN autotuning, TF32 at precision tf32) are applied and recorded, allocator peaks reset per
phase. Everything a CPU can show runs here; what needs CUDA is skipped, naming the device."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch.overrides import TorchFunctionMode  # noqa: E402

from zoo.contract import PRECISIONS, EvalData, FineTuneConfig, Runtime, TrainData  # noqa: E402
from zoo.init import init_weights  # noqa: E402
from zoo.testing.reference import random_inputs  # noqa: E402
from zoo_torch import adapter  # noqa: E402
from zoo_torch.adapter import TorchFramework  # noqa: E402
from zoo.testing.feed_cases import MODELS, PatternMeter, SYNC, load  # noqa: E402

NO_CUDA = "needs a CUDA GPU: this machine has none (torch.cuda.is_available() is False)"
cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)

CLASSES, BATCH, N = 5, 4, 24
#: Steps of one epoch, and which of them the meter asks to synchronise (the host syncs at the end
#: of each timing window, so most steps are not synchronised).
STEPS = 6


#: Tensor methods that copy between host and device or wait for the device (on CUDA tensors).
COPIES = {"cpu", "cuda", "item", "numpy", "tolist", "__float__", "__int__", "__bool__", "__index__",
          "pin_memory"}


class HostTraffic(TorchFunctionMode):
    """Records, while ``meter.inside``, every tensor method call that moves data between host and
    device or makes the host wait for the device's result (``.item()``, ``.cpu()``, ``float(t)``,
    ``.to("cpu")`` ...), except ``.item()`` on the optimiser's step counters: torch keeps those on
    the host on purpose (a CPU scalar, read without a device sync)."""

    def __init__(self, meter, exempt=()):
        super().__init__()
        self.meter, self.exempt, self.calls = meter, exempt, []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        if self.meter.inside:
            moves = name in COPIES or (name == "to" and any(
                isinstance(a, (str, torch.device)) for a in (*args[1:], kwargs.get("device"))))
            if moves and not (name == "item" and any(args[0] is t for t in self.exempt())):
                self.calls.append(name)
        return func(*args, **kwargs)


@pytest.fixture()
def fw():
    f = TorchFramework()
    f.prepare(Runtime("cpu", "fp32", threads=1, seed=0))
    return f


def data(name):
    spec, shape = MODELS[name]
    x = random_inputs(spec.inputs(shape), N, seed=2)
    order = tuple(np.random.default_rng(3).permutation(N)[:STEPS * BATCH].reshape(STEPS, BATCH))
    return x, np.random.default_rng(4).integers(0, CLASSES, N), order


@pytest.mark.parametrize("name", sorted(MODELS))
def test_timed_steps_neither_copy_to_the_host_nor_from_it(fw, name, monkeypatch):
    """Inside ``meter.step`` no tensor goes to or comes from the host: no ``.item()``/``.cpu()``/
    ``float(loss)`` and no NumPy array made a tensor (``torch.from_numpy`` of a batch's indices: the
    feed stages them before the first step); losses and logits go to the host once, after the loop.
    (The optimiser's ``torch.tensor(0.0)`` step counters are CPU scalars by design, not host data.)"""
    x, y, order = data(name)
    meter = PatternMeter()
    created = []
    for factory in ("from_numpy", "as_tensor", "tensor"):  # host -> tensor: not visible to a TorchFunctionMode
        original = getattr(torch, factory)

        def record(*args, _original=original, _name=factory, **kwargs):
            if meter.inside and args and isinstance(args[0], np.ndarray):
                created.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(torch, factory, record)
    optimisers = []

    class RecordedAdam(torch.optim.Adam):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            optimisers.append(self)

    monkeypatch.setattr(torch.optim, "Adam", RecordedAdam)
    steps = lambda: [s["step"] for o in optimisers for s in o.state.values() if "step" in s]  # noqa: E731
    with HostTraffic(meter, steps) as traffic:
        result = fw.fine_tune(load(fw, name), TrainData(x, y, (order, order)), FineTuneConfig(), meter)
        logits = fw.evaluate(result.model, EvalData(x, order), meter)
    assert meter.steps == 3 * STEPS and len(result.losses) == 2 * STEPS and logits.shape == (STEPS * BATCH, CLASSES)
    assert optimisers, "fine_tune no longer uses torch.optim.Adam: check the exemption of its step counters"
    assert traffic.calls == [] and created == [], (traffic.calls, created)


def test_the_recorder_sees_a_host_copy_inside_a_step():
    """The recorder of the test above catches what it is meant to (so its silence means something)."""
    meter = PatternMeter()
    t = torch.ones(3)
    with HostTraffic(meter, lambda: ()) as traffic:
        float(t.sum())  # outside a step: allowed
        with meter.step(1):
            float(t.sum()), t.cpu(), t.to("cpu"), t.tolist()
    assert traffic.calls == ["__float__", "cpu", "to", "tolist"]


def test_synchronize_is_called_at_each_synchronised_step_and_only_there(fw, monkeypatch):
    x, y, order = data("cnn")
    meter = PatternMeter()
    calls = []
    monkeypatch.setattr(adapter, "synchronize", lambda device: calls.append((device.type, meter.inside)))
    result = fw.fine_tune(load(fw, "cnn"), TrainData(x, y, (order,)), FineTuneConfig(), meter)
    fw.evaluate(result.model, EvalData(x, order), meter)
    assert meter.steps == 2 * STEPS and len(calls) == meter.synced == 2 * sum(SYNC)
    assert calls == [("cpu", True)] * len(calls)  # inside the step, on the model's device


def test_synchronize_waits_only_on_cuda(monkeypatch):
    def no_cuda_sync(*args):
        raise AssertionError("torch.cuda.synchronize called for a CPU device")

    monkeypatch.setattr(torch.cuda, "synchronize", no_cuda_sync)
    adapter.synchronize(torch.device("cpu"))  # CPU ops are synchronous: nothing to wait for
    waited = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: waited.append(device))
    adapter.synchronize(torch.device("cuda", 0))
    assert waited == [torch.device("cuda", 0)]


def test_a_cpu_cell_records_autotuning_as_not_applicable_and_tf32_off(fw):
    details = fw.info().details
    assert details["autotune"] == {"cudnn_benchmark": "not applicable: CPU cell"}
    assert details["tf32"] is False and details["cudnn_allow_tf32"] is False
    assert details["float32_matmul_precision"] == "highest"


def test_a_gpu_cell_turns_on_cudnn_benchmark_and_tf32_only_at_precision_tf32():
    """prepare's GPU settings are flags torch takes without a GPU, so a CPU shows them."""
    fw = TorchFramework()
    before = torch.backends.cudnn.benchmark
    try:
        fw.prepare(Runtime("gpu", "tf32", threads=1, seed=0))
        details = fw.info().details
        assert details["autotune"] == {"cudnn_benchmark": True} and torch.backends.cudnn.benchmark
        assert details["tf32"] is True and details["cudnn_allow_tf32"] is True
        assert details["float32_matmul_precision"] == "high"
        for precision in ("fp32", "bf16"):
            fw.prepare(Runtime("gpu", precision, threads=1, seed=0))
            details = fw.info().details
            assert details["tf32"] is False and details["cudnn_allow_tf32"] is False, precision
            assert details["float32_matmul_precision"] == "highest" and details["autotune"]["cudnn_benchmark"]
    finally:
        torch.backends.cudnn.benchmark = before
        TorchFramework().prepare(Runtime("cpu", "fp32", threads=1, seed=0))


def test_tf32_is_a_precision_refused_on_a_cpu_with_the_reason(fw):
    assert "tf32" in PRECISIONS
    spec = MODELS["cnn"][0]
    support = fw.supports(spec, "cpu", "tf32")
    assert not support.ok and support.reason.startswith("tf32 is a GPU precision: ")
    assert "--precision fp32" in support.reason
    assert fw.supports(spec, "gpu", "tf32").ok
    with pytest.raises(ValueError, match="tf32 is a GPU precision"):
        TorchFramework().prepare(Runtime("cpu", "tf32", threads=1, seed=0))


def test_a_tf32_model_is_the_fp32_model(fw):
    """tf32 changes the matmul mode only (in prepare, on a GPU): the model is built as at fp32."""
    x = random_inputs(MODELS["cnn"][0].inputs((8, 8, 1)), 8, seed=5)
    order = (np.arange(8),)
    fp32, tf32 = (fw.evaluate(load(fw, "cnn", precision=p), EvalData(x, order), PatternMeter()) for p in ("fp32", "tf32"))
    np.testing.assert_array_equal(tf32, fp32)


def test_no_allocator_peak_to_reset_on_a_cpu(fw):
    assert fw.reset_memory_peak("cpu") is False and fw.memory("cpu") == {}


@cuda_only
def test_reset_memory_peak_restarts_the_cuda_peak():
    fw = TorchFramework()
    big = torch.empty(64 * 2**20, dtype=torch.uint8, device="cuda")
    del big
    assert fw.memory("gpu")["peak_bytes"] >= 64 * 2**20
    assert fw.reset_memory_peak("gpu") is True
    assert fw.memory("gpu")["peak_bytes"] < 64 * 2**20


@cuda_only
def test_synchronised_cuda_steps_finish_inside_the_step():
    fw = TorchFramework()
    fw.prepare(Runtime("gpu", "fp32", threads=1, seed=0))
    spec, shape = MODELS["cnn"]
    model = fw.load_pretrained(spec=spec, weights=init_weights(spec, shape, CLASSES, seed=1), input_shape=shape,
                               num_classes=CLASSES, device="gpu", precision="fp32", freeze="none")
    x, _, order = data("cnn")
    events = []

    class Meter(PatternMeter):
        @contextmanager
        def step(self, samples):
            with super().step(samples) as sync:
                yield sync
            events.append(torch.cuda.current_stream().query())  # True: no queued work left

    fw.evaluate(model, EvalData(x, order), Meter())
    assert [e for e, s in zip(events, SYNC) if s] == [True] * sum(SYNC)
