"""Per-cell GPU placement (issue 17, defect 9): every GPU cell's worker sees exactly one GPU
(``CUDA_VISIBLE_DEVICES``), a CPU cell sees none, and ``--parallel-gpus`` runs one cell per GPU at
the same time, each on its own GPU and CPUs, without losing a record when one of them dies.

This machine has no GPU, so the cells are a stand-in framework written here (a NumPy forward pass
that claims the "gpu" device and notes what its worker process saw); the real worker, executor,
store and CLI run unchanged. On a machine with GPUs, the last test runs a real framework pinned
to one GPU."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_zoo
from harness.measure.gpu_info import GpuRow
from harness.plan import validate
from harness.plan.placement import Placement, cpu_slice, gpu_env, resolve_placement
from harness.plan.request import BenchRequest, PlanError
from harness.run.executors.base import ExecutorOptions
from harness.run.executors.local import LocalExecutor, worker_env
from harness.run.processes import kill_orphans

STANDIN = '''
"""A framework that claims the GPU: the NumPy reference forward, "training" that only times its
steps, and a note of the CUDA_VISIBLE_DEVICES its worker saw and when it ran ($ZOO_TEST_TRACE)."""
import json, os, time
import numpy as np
import zoo
from zoo.contract import FineTuneResult, Framework, FrameworkInfo, Support


def note(**fields):
    trace = os.environ.get("ZOO_TEST_TRACE")
    if trace:
        with open(os.path.join(trace, f"{os.getpid()}.jsonl"), "a") as fh:
            fh.write(json.dumps({"pid": os.getpid(), "cvd": os.environ.get("CUDA_VISIBLE_DEVICES"),
                                 "t": time.time(), **fields}) + "\\n")


STEP_S = 0.002


class Standin(Framework):
    name = "standin"
    contract_version = 2
    hold_s = 2.0  # long enough that cells started together are seen running together

    def supports(self, spec, device, precision):
        return Support.yes()

    def prepare(self, runtime):
        note(event="start", framework=self.name)
        time.sleep(self.hold_s)

    def info(self):
        return FrameworkInfo(self.name, {"numpy": np.__version__}, ["cpu", "gpu"],
                             {"cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
                              "cuda_device_order": os.environ.get("CUDA_DEVICE_ORDER"),
                              "affinity": sorted(os.sched_getaffinity(0))})

    def load_pretrained(self, spec, weights, input_shape, num_classes, device, precision, freeze):
        return {"spec": spec, "weights": dict(weights)}

    def fine_tune(self, model, data, config, meter):
        for epoch in data.epochs():
            for x, _ in epoch:
                with meter.step(len(x)):
                    # a step of GPU-like length: a GPU cell warms up for >= 3 s of work and times
                    # windows of >= 1 s, so microsecond steps would mean millions of them
                    time.sleep(STEP_S)
            meter.end_epoch(model)
        return FineTuneResult(model, [])

    def evaluate(self, model, data, meter):
        out = []
        for x in data.batches():
            with meter.step(len(x)):
                out.append(model["spec"].reference_forward(model["weights"], x).astype(np.float32))
                time.sleep(STEP_S)
        return np.concatenate(out)

    def export_weights(self, model):
        return model["weights"]

    def memory(self, device):
        note(event="end", framework=self.name)
        return {}


class Crashes(Standin):
    """Dies in its worker (as a CUDA error or the OOM killer would end it) after a while."""

    name = "standin_crash"

    def prepare(self, runtime):
        super().prepare(runtime)
        note(event="end", framework=self.name)
        os._exit(3)


@zoo.hookimpl
def zoo_frameworks():
    return [Standin(), Crashes()]
'''


@pytest.fixture
def standin(tmp_path, monkeypatch):
    """The stand-in plugin module on sys.path here and on PYTHONPATH for the workers."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "gpu_standin.py").write_text(STANDIN)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    sys.modules.pop("gpu_standin", None)
    return site


def _registry():
    from harness.plugins.registry import build_registry
    from zoo.plugin_host import worker_host

    return build_registry(worker_host(["gpu_standin"]))


ROWS = [GpuRow(0, "GPU-aaaa-0000", "NVIDIA H200", "560.35", 143771),
        GpuRow(1, "GPU-aaaa-1111", "NVIDIA H200", "560.35", 143771)]


# -- the plan: what each cell's worker environment says about GPUs ------------------------------


def test_cpu_cells_see_no_gpu_and_each_gpu_cell_exactly_one(standin, monkeypatch):
    from harness.plan.planner import plan_cells

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    registry = _registry()
    gpu_request = BenchRequest(frameworks=["standin"], models=["mlp", "cnn"], device="gpu", gpus=["0", "1"],
                               parallel_gpus=True, threads=1)
    placement = resolve_placement(gpu_request, env={}, list_gpus=lambda: ROWS)
    assert placement == Placement(("0", "1"), True, "--gpus")
    gpu_plans = [p.plan for p in plan_cells(gpu_request, registry, "r", placement)]
    cpu_plans = [p.plan for p in plan_cells(BenchRequest(frameworks=["standin"], models=["mlp"], threads=1),
                                            registry, "r")]
    for plan in cpu_plans:  # a CPU cell never touches a GPU, wherever it runs
        assert plan.env["CUDA_VISIBLE_DEVICES"] == ""
        assert worker_env(plan, gpu="1", base={"CUDA_VISIBLE_DEVICES": "0,1"})["CUDA_VISIBLE_DEVICES"] == ""
    for plan in gpu_plans:  # the pin is given where the cell runs, one GPU of the run's list
        assert "CUDA_VISIBLE_DEVICES" not in plan.env
        env = worker_env(plan, gpu="1", base={"CUDA_VISIBLE_DEVICES": "0,1"})
        assert env["CUDA_VISIBLE_DEVICES"] == "1" and env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    # the order a caller chose is kept (indices then mean what they meant to it)
    assert gpu_env("1", {"CUDA_DEVICE_ORDER": "FASTEST_FIRST"}) == {"CUDA_VISIBLE_DEVICES": "1",
                                                                   "CUDA_DEVICE_ORDER": "FASTEST_FIRST"}
    # one at a time (no --parallel-gpus): every GPU cell on the run's first GPU
    executor = LocalExecutor(ExecutorOptions(Path("/nonexistent"), 60))
    executor.place(Placement(("3", "2"), False, "--gpus"))
    assert {executor._pin(plan) for plan in gpu_plans} == {"3"}
    assert {executor._pin(plan) for plan in cpu_plans} == {None}


def test_the_default_gpus_are_what_this_process_sees():
    gpu = BenchRequest(device="gpu", threads=1)
    assert resolve_placement(gpu, env={"CUDA_VISIBLE_DEVICES": "2,3"}, list_gpus=lambda: ROWS).gpus == ("2", "3")
    assert resolve_placement(gpu, env={}, list_gpus=lambda: ROWS) == Placement(("0", "1"), False, "nvidia-smi")
    none = resolve_placement(gpu, env={}, list_gpus=lambda: [])
    assert none.gpus == () and "nvidia-smi lists no GPU" in none.source
    assert resolve_placement(BenchRequest(threads=1), env={}, list_gpus=lambda: ROWS).gpus == ()  # CPU run


@pytest.mark.parametrize("request_fields, env, rows, message", [
    ({"gpus": ["5"]}, {}, ROWS, "nvidia-smi lists no GPU 5; it lists 0 (NVIDIA H200, GPU-aaaa-0000)"),
    ({"gpus": ["1"]}, {"CUDA_VISIBLE_DEVICES": "0"}, ROWS, "this process may use only CUDA_VISIBLE_DEVICES='0'"),
    ({"gpus": ["GPU-aaaa"]}, {}, ROWS, "matches 2 of the GPUs"),
    ({"parallel_gpus": True}, {"CUDA_VISIBLE_DEVICES": ""}, [], "--parallel-gpus needs the GPUs"),
    ({"parallel_gpus": True, "gpus": ["0", "1"]}, {},
     [ROWS[0], GpuRow(1, "GPU-cccc", "NVIDIA A100-SXM4-80GB", "560.35", 81920)], "different GPU models"),
])
def test_placements_this_machine_cannot_honour_are_refused(request_fields, env, rows, message):
    with pytest.raises(PlanError) as err:
        resolve_placement(BenchRequest(device="gpu", threads=1, **request_fields), env=env, list_gpus=lambda: rows)
    assert message in str(err.value)


def test_parallel_cells_need_their_own_cpus(monkeypatch):
    monkeypatch.setattr(validate, "available_cpus", lambda: 16)
    with pytest.raises(PlanError) as err:
        resolve_placement(BenchRequest(device="gpu", threads=16, gpus=["0", "1"], parallel_gpus=True), env={},
                          list_gpus=lambda: ROWS)
    assert "32 CPUs, but this process may use 16; pass --threads 8" in str(err.value)
    assert cpu_slice(0, 2, range(8)) == [0, 1] and cpu_slice(1, 2, range(8)) == [2, 3]  # never a shared core


@pytest.mark.parametrize("args, message", [
    (["--parallel-gpus"], "CPU cells always run one at a time"),
    (["--device", "gpu", "--gpus", "0,zero"], "'zero' is not a GPU as CUDA_VISIBLE_DEVICES names one"),
    (["--device", "gpu", "--gpus", "1,1"], "--gpus lists 1 twice"),
    (["--gpus", "0"], "add --device gpu"),
])
def test_placement_flags_are_checked_before_anything_runs(tmp_path, args, message):
    proc = run_zoo("bench", "-m", "mlp", "--results-dir", str(tmp_path), "--run-id", "x", *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in " ".join(proc.stderr.split())
    assert not (tmp_path / "x").exists()


def test_orphans_of_cells_still_running_are_spared():
    """kill_orphans at one cell's end leaves alone what may belong to a cell still running."""
    t0 = time.time()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.2)
        assert kill_orphans(since=t0 - 5, spare=[child.pid]) == []
        assert kill_orphans(since=t0 - 5, until=t0) == []  # it started after the earliest running worker
        assert child.poll() is None
        assert kill_orphans(since=t0 - 5) == [child.pid]
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child.pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # kill_orphans reaps it (as a subreaper reaps what it adopted)
        assert not Path(f"/proc/{child.pid}").exists()
    finally:
        if child.returncode is None and Path(f"/proc/{child.pid}").exists():
            child.kill()
            child.wait()


# -- real parallel runs ------------------------------------------------------------------------------


def _intervals(trace: Path) -> dict[int, dict]:
    out: dict[int, dict] = {}
    for path in trace.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            note = json.loads(line)
            out.setdefault(note["pid"], {"cvd": note["cvd"], "framework": note["framework"]})[note["event"]] = note["t"]
    return out


@pytest.mark.slow
def test_parallel_gpu_cells_run_together_each_on_its_own_gpu(standin, tmp_path):
    trace = tmp_path / "trace"
    trace.mkdir()
    proc = run_zoo("-p", "gpu_standin", "bench", "-f", "standin,standin_crash", "-m", "mlp,cnn", "--init", "scratch",
                   "--device", "gpu", "--gpus", "0,1", "--parallel-gpus", "--threads", "1", "--epochs", "1",
                   "--windows", "1", "--window-steps", "1", "--warmup-cap", "1", "--results-dir", str(tmp_path / "r"),
                   "--run-id", "par", env={"ZOO_TEST_TRACE": str(trace)}, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the crashing cells failed; the others did not
    records = [json.loads(line) for line in (tmp_path / "r" / "par" / "results.jsonl").read_text().splitlines()]
    by_key = {(r["cell"]["framework"], r["cell"]["model"]): r for r in records}
    assert len(records) == 4 and set(by_key) == {(f, m) for f in ("standin", "standin_crash") for m in ("mlp", "cnn")}
    for (framework, _), r in by_key.items():
        assert r["status"] == ("ok" if framework == "standin" else "failed"), r.get("error")
        placement = r["environment"]["placement"]
        assert placement["parallel"] is True and placement["cuda_visible_devices"] in ("0", "1")
        assert placement["cuda_device_order"] == "PCI_BUS_ID" and len(placement["cpus"]) == 1
        if r["status"] == "ok":  # what the worker and the adapter saw: exactly the GPU it was pinned to
            assert r["environment"]["env"]["CUDA_VISIBLE_DEVICES"] == placement["cuda_visible_devices"]
            assert r["framework"]["details"]["cuda_visible_devices"] == placement["cuda_visible_devices"]
            assert r["framework"]["details"]["affinity"] == placement["cpus"]
        else:
            assert r["error"]["type"] == "WorkerDied" and "status 3" in r["error"]["message"]
    spans = list(_intervals(trace).values())
    assert len(spans) == 4 and all("start" in s and "end" in s and s["cvd"] in ("0", "1") for s in spans)
    overlapping = [(a, b) for i, a in enumerate(spans) for b in spans[i + 1:]
                   if a["start"] < b["end"] and b["start"] < a["end"]]
    assert overlapping, f"no two cells ran at the same time: {spans}"
    assert all(a["cvd"] != b["cvd"] for a, b in overlapping), "two cells ran on one GPU at the same time"
    for s in spans:  # never more cells at once than GPUs
        assert sum(o["start"] <= s["start"] < o["end"] for o in spans) <= 2
    manifest = json.loads((tmp_path / "r" / "par" / "manifest.json").read_text())
    assert manifest["placement"] == {"gpus": ["0", "1"], "parallel": True, "source": "--gpus"}
    assert manifest["status"] == "completed"


@pytest.mark.slow
def test_one_at_a_time_every_gpu_cell_is_pinned_to_the_first_gpu(standin, tmp_path):
    proc = run_zoo("-p", "gpu_standin", "bench", "-f", "standin", "-m", "mlp", "--init", "scratch", "--device", "gpu",
                   "--gpus", "1,0", "--threads", "1", "--epochs", "1", "--windows", "1", "--window-steps", "1",
                   "--warmup-cap", "1", "--results-dir", str(tmp_path / "r"), "--run-id", "one", timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (record,) = [json.loads(line) for line in (tmp_path / "r" / "one" / "results.jsonl").read_text().splitlines()]
    assert record["environment"]["placement"]["cuda_visible_devices"] == "1"
    assert record["environment"]["placement"]["parallel"] is False
    assert record["framework"]["details"]["cuda_visible_devices"] == "1"


def _gpus() -> list[str]:
    if shutil.which("nvidia-smi") is None:
        return []
    out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line.startswith("GPU ")]


@pytest.mark.slow
@pytest.mark.skipif(not _gpus(), reason="needs an NVIDIA GPU (nvidia-smi lists none on this machine)")
def test_a_real_gpu_cell_sees_only_its_gpu(tmp_path):
    from conftest import INSTALLED_FRAMEWORKS

    if "torch" not in INSTALLED_FRAMEWORKS:
        pytest.skip("zoo-torch is not installed")
    proc = run_zoo("bench", "-f", "torch", "-m", "mlp", "--device", "gpu", "--gpus", "0", "--threads", "1",
                   "--epochs", "1", "--results-dir", str(tmp_path), "--run-id", "g", timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (record,) = [json.loads(line) for line in (tmp_path / "g" / "results.jsonl").read_text().splitlines()]
    assert record["environment"]["env"]["CUDA_VISIBLE_DEVICES"] == "0"
    assert record["environment"]["machine"]["gpu"]["model"]
