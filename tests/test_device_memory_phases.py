"""Device memory per phase (#17 defect 7): the worker resets the allocator's peak at the start of
every measured phase of a GPU cell and records each phase's own peak; an adapter that cannot
reset gets the peak since the process started, labelled so; CPU cells record nothing new.

The adapter simulates a device allocator with known allocations: 64 MiB of weights from load on,
48 MiB more inside each training step, 1 MiB per row of each forward batch (32 rows at the task's
batch size, 1 in the latency phase). Whole cells run in this process through the worker's code
(``run_plan``), as tests/test_transfer.py does; the subprocess path is covered by
tests/test_gpu_sampler.py."""

from __future__ import annotations

import os
import sys

import pytest

from fake_nvidia_smi import without_nvidia_smi
from harness.plan.cells import Cell, CellPlan, Settings
from harness.results.metrics import BUILTIN
from harness.worker.cell import run_plan

#: A framework whose "gpu" is NumPy with a simulated allocator. ``SIMULATED_GPU_FILE``: where it
#: writes the MiB the simulated device holds (for a stand-in nvidia-smi); ``SIMULATED_GPU_HOLD_S``:
#: how long it holds the largest allocation of each call (so a 100 ms sampler sees it).
DEVICE_PLUGIN = '''
import os
import time

import numpy as np

import zoo
from zoo.contract import FineTuneResult, Framework, FrameworkInfo, Support

MIB = 2**20
WEIGHTS, STEP, PER_ROW, CONTEXT = 64 * MIB, 48 * MIB, 1 * MIB, 300 * MIB


class Allocator:
    """A caching allocator's books: bytes held now, and the high-water mark since the last reset."""

    def __init__(self):
        self.current = self.peak = 0

    def alloc(self, n):
        self.current += n
        self.peak = max(self.peak, self.current)

    def free(self, n):
        self.current -= n

    def publish(self):
        path = os.environ.get("SIMULATED_GPU_FILE")
        if path:  # what the driver would attribute to the process: context + allocations
            with open(path + ".tmp", "w") as fh:
                fh.write(str((CONTEXT + self.current) // MIB))
            os.replace(path + ".tmp", path)

    def hold(self, n):
        """Allocate ``n`` and keep it long enough for a sampler to see (the per-step allocations are
        too brief for one, so only held ones are published)."""
        self.alloc(n)
        self.publish()
        time.sleep(float(os.environ.get("SIMULATED_GPU_HOLD_S", "0")))
        self.free(n)
        self.publish()


class SimulatedGpu(Framework):
    name = "simgpu"
    contract_version = 2
    resets = True

    def __init__(self):
        self.allocator = Allocator()
        self.reset_calls = 0

    def supports(self, spec, device, precision):
        return Support.yes()

    def prepare(self, runtime):
        pass

    def info(self):
        return FrameworkInfo(self.name, {"numpy": np.__version__}, ["cpu", "gpu"])

    def load_pretrained(self, spec, weights, input_shape, num_classes, device, precision, freeze):
        self.allocator.alloc(WEIGHTS)
        self.allocator.hold(0)
        return {"spec": spec, "weights": dict(weights)}

    def fine_tune(self, model, data, config, meter):
        self.allocator.hold(STEP)
        for epoch in data.epochs():
            for x, _ in epoch:
                with meter.step(len(x)):
                    self.allocator.alloc(STEP)
                    self.allocator.free(STEP)
            meter.end_epoch(model)
        return FineTuneResult(model, [])

    def evaluate(self, model, data, meter):
        self.allocator.hold(data.batch_size * PER_ROW)
        out = []
        for x in data.batches():
            with meter.step(len(x)):
                self.allocator.alloc(len(x) * PER_ROW)
                out.append(model["spec"].reference_forward(model["weights"], x).astype(np.float32))
                self.allocator.free(len(x) * PER_ROW)
        return np.concatenate(out)

    def export_weights(self, model):
        return model["weights"]

    def memory(self, device):
        if device != "gpu":
            return {}
        return {"peak_bytes": self.allocator.peak, "current_bytes": self.allocator.current}

    def reset_memory_peak(self, device):
        self.reset_calls += 1
        if device != "gpu" or not self.resets:
            return False
        self.allocator.peak = self.allocator.current
        return True


class SimulatedGpuNoReset(SimulatedGpu):
    """An allocator whose peak cannot be reset (the contract's default answer)."""

    name = "simgpu-noreset"
    resets = False


ADAPTERS = []


@zoo.hookimpl
def zoo_frameworks():
    ADAPTERS[:] = [SimulatedGpu(), SimulatedGpuNoReset()]
    return list(ADAPTERS)
'''

PHASES = ("load", "fine_tune", "inference", "latency", "training")
#: MiB each phase's allocator peak is, reset per phase: weights, plus a training step (48) or a
#: forward batch (32 rows, 1 row for latency). The fine-tune phase evaluates at its epoch's end.
RESET_PEAKS = {"load": 64.0, "fine_tune": 112.0, "inference": 96.0, "latency": 65.0, "training": 112.0}
#: Without resets every figure after load is the process's peak so far.
UNRESET_PEAKS = {"load": 64.0, "fine_tune": 112.0, "inference": 112.0, "latency": 112.0, "training": 112.0}


@pytest.fixture
def simgpu(tmp_path, monkeypatch):
    """The simulated-GPU plugin importable as ``simgpu_plugin``; this process's CPU affinity (the
    worker pins it) and any real nvidia-smi (hidden) restored afterwards."""
    (tmp_path / "simgpu_plugin.py").write_text(DEVICE_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("simgpu_plugin", None)
    without_nvidia_smi(monkeypatch, tmp_path)
    affinity = os.sched_getaffinity(0)
    yield
    os.sched_setaffinity(0, affinity)
    sys.modules.pop("simgpu_plugin", None)


def run_cell(framework: str, device: str):
    plan = CellPlan(run_id="devmem", cell=Cell(framework, "mlp", "digits", device=device, init="scratch"),
                    settings=Settings(epochs=1, threads=1, windows=1, latency_samples=5, warmup_cap=3),
                    modules=("simgpu_plugin",))
    record = run_plan(plan)
    assert record.status == "ok", record.error
    adapter = next(a for a in sys.modules["simgpu_plugin"].ADAPTERS if a.name == framework)
    return record, adapter


def device_peaks(record) -> dict[str, float]:
    return {p: record.metrics[f"{p}_device_peak_mb"].value for p in PHASES if f"{p}_device_peak_mb" in record.metrics}


@pytest.mark.slow
def test_each_phase_of_a_gpu_cell_reports_its_own_allocator_peak(simgpu):
    record, adapter = run_cell("simgpu", "gpu")
    assert device_peaks(record) == RESET_PEAKS
    assert {p: record.metrics[f"{p}_device_peak_mb"].unit for p in PHASES} == dict.fromkeys(PHASES, "MiB")
    labels = record.environment["measurement"]["trackers"]["device_memory"]["phases"]
    assert labels == dict.fromkeys(("load", "fine_tune", "inference_throughput", "latency", "train_throughput"),
                                   "since phase start")
    assert adapter.reset_calls == 5  # once at the start of each measured phase
    # the whole cell's figures are unchanged by the resets: the largest peak, and what is held at the end
    assert record.metrics["framework_peak_mb"].value == 112.0
    assert record.metrics["framework_current_mb"].value == 64.0


@pytest.mark.slow
def test_an_adapter_that_cannot_reset_gets_the_process_peak_labelled_so(simgpu):
    record, _ = run_cell("simgpu-noreset", "gpu")
    assert device_peaks(record) == UNRESET_PEAKS
    labels = record.environment["measurement"]["trackers"]["device_memory"]["phases"]
    assert set(labels.values()) == {"since process start"} and len(labels) == 5
    assert record.metrics["framework_peak_mb"].value == 112.0


@pytest.mark.slow
def test_a_cpu_cell_records_nothing_new_and_is_never_reset(simgpu):
    record, adapter = run_cell("simgpu", "cpu")
    assert device_peaks(record) == {}
    assert not [n for n in record.metrics if n.startswith("framework_") or "nvml" in n or "_gpu_" in n]
    trackers = record.environment["measurement"].get("trackers", {})
    assert not {"device_memory", "gpu_clocks", "gpu_process_memory"} & set(trackers), trackers
    assert adapter.reset_calls == 0


def test_the_per_phase_device_metrics_are_in_the_catalogue():
    for phase in PHASES:
        d = BUILTIN[f"{phase}_device_peak_mb"]
        assert (d.unit, d.direction) == ("MiB", "lower")
        assert "since phase start" in d.description
    assert BUILTIN["training_device_peak_mb"].needs_training and not BUILTIN["latency_device_peak_mb"].needs_training
