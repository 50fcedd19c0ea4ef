"""GPU provenance: the machine fingerprint and each record name the GPU model, driver, CUDA and
cuDNN (read from nvidia-smi and wheel metadata, never by importing a framework); a CPU machine
records "no GPU" and keeps its old fingerprint; and `zoo compare` refuses runs from different
GPUs (or, with --allow-machine-mismatch, warns loudly). A fake nvidia-smi stands in for the GPU."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

import fake_nvidia_smi as fake
from harness.analysis.compare import NotComparable, compare_results
from harness.measure import gpu_info, machine
from harness.results.loader import load_results
from results_helpers import RECORDED, copy_run, zoo


def test_fingerprint_holds_gpu_model_driver_and_cuda(tmp_path, monkeypatch):
    fake.on_path(monkeypatch, fake.install(tmp_path / "bin", [fake.H100_SXM, fake.H100_SXM], driver="550.54.15",
                                           cuda="12.4"))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    stable = machine.stable_info()
    assert stable["gpu"] == {"model": "NVIDIA H100 80GB HBM3", "memory_total_mib": 81559, "count": 2,
                             "driver": "550.54.15", "cuda_driver": "12.4"}
    assert set(stable["gpu_software"]) == {"cuda_runtime", "cudnn", "kernel_driver"}
    h100 = machine.fingerprint(stable)
    fake.install(tmp_path / "bin", [fake.A100_SXM, fake.A100_SXM])
    assert machine.fingerprint(machine.stable_info()) != h100
    fake.install(tmp_path / "bin", [fake.H100_SXM, fake.H100_SXM], driver="560.35.03")
    assert machine.fingerprint(machine.stable_info()) != h100, "a driver update is another machine"
    fake.install(tmp_path / "bin", [fake.H100_SXM, fake.H100_SXM], driver="550.54.15", cuda="12.4")
    assert machine.fingerprint({**machine.stable_info(), "gpu_software": {"cudnn": "x"}}) == h100


def test_record_names_the_visible_gpu_with_cuda_and_cudnn(tmp_path, monkeypatch):
    fake.on_path(monkeypatch, fake.install(tmp_path / "bin", [fake.H200, fake.H200]))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    described = gpu_info.describe_gpu()
    assert described["model"] == "NVIDIA H200" and described["cuda_driver"] == "12.4"
    assert {"cuda_runtime", "cudnn", "kernel_driver"} <= set(described)
    assert machine.gpu_name() == "NVIDIA H200"


def test_a_cpu_machine_records_no_gpu_and_keeps_its_old_fingerprint(tmp_path, monkeypatch):
    fake.without_nvidia_smi(monkeypatch, tmp_path)
    stable = machine.stable_info()
    assert stable["gpu"] is None and gpu_info.describe_gpu() is None and machine.gpu_name() == ""
    before = {k: v for k, v in stable.items() if k not in ("gpu", "gpu_software")}  # the fields before GPUs
    old = hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()[:16]
    assert machine.fingerprint(stable) == old


def test_reading_the_gpu_imports_no_framework(tmp_path):
    bin_dir = fake.install(tmp_path / "bin", [fake.H100_SXM])
    code = ("import sys; from harness.measure import machine; machine.record_info(); machine.stable_info(); "
            "print([m for m in ('torch', 'tensorflow', 'jax') if m in sys.modules])")
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_nvml_process_memory_is_read_for_one_pid(tmp_path, monkeypatch):
    fake.on_path(monkeypatch, fake.install(tmp_path / "bin", [fake.H200], apps={4242: 1536, 77: 10}))
    assert gpu_info.process_gpu_memory_mib(4242) == 1536
    assert gpu_info.process_gpu_memory_mib(5) is None


# -- zoo compare: different GPUs are not compared ------------------------------------------

def _gpu_run(src, dst, model: str, driver: str = "550.54.15", cudnn: str | None = None):
    def edit(m: dict) -> dict:
        stable = {**m["machine"]["stable"],
                  "gpu": {"model": model, "memory_total_mib": 81559, "count": 1, "driver": driver,
                          "cuda_driver": "12.4"},
                  "gpu_software": {"cuda_runtime": None, "cudnn": cudnn, "kernel_driver": driver}}
        return {**m, "machine": {**m["machine"], "stable": stable, "fingerprint": machine.fingerprint(stable)}}

    return copy_run(src, dst, manifest=edit)


def test_compare_refuses_runs_from_different_gpu_models(tmp_path):
    base = _gpu_run(RECORDED / "aa-1", tmp_path / "b", "NVIDIA A100-SXM4-80GB")
    cand = _gpu_run(RECORDED / "aa-2", tmp_path / "c", "NVIDIA H100 80GB HBM3")
    with pytest.raises(NotComparable, match="GPU MISMATCH.*A100-SXM4-80GB vs NVIDIA H100 80GB HBM3"):
        compare_results(load_results([base]), load_results([cand]))
    allowed = compare_results(load_results([base]), load_results([cand]), allow_machine_mismatch=True)
    assert allowed.warnings[0].startswith("GPU MISMATCH")
    cli = zoo("compare", str(base), str(cand))
    assert cli.returncode == 2 and "GPU MISMATCH" in cli.stderr and "--allow-machine-mismatch" in cli.stderr


def test_compare_of_a_gpu_run_with_a_cpu_only_run_names_the_missing_gpu(tmp_path):
    cand = _gpu_run(RECORDED / "aa-2", tmp_path / "c", "NVIDIA H200")
    with pytest.raises(NotComparable, match="no GPU recorded vs NVIDIA H200"):
        compare_results(load_results([RECORDED / "aa-1"]), load_results([cand]))


def test_same_gpu_other_driver_is_another_machine_and_other_cudnn_a_warning(tmp_path):
    base = _gpu_run(RECORDED / "aa-1", tmp_path / "b", "NVIDIA H200", cudnn="nvidia-cudnn-cu12==9.1.0.70")
    newer = _gpu_run(RECORDED / "aa-2", tmp_path / "d", "NVIDIA H200", driver="560.35.03",
                     cudnn="nvidia-cudnn-cu12==9.1.0.70")
    with pytest.raises(NotComparable, match="different machines .*GPU driver 550.54.15 vs 560.35.03"):
        compare_results(load_results([base]), load_results([newer]))
    cand = _gpu_run(RECORDED / "aa-2", tmp_path / "c", "NVIDIA H200", cudnn="nvidia-cudnn-cu12==9.5.1.17")
    c = compare_results(load_results([base]), load_results([cand]))
    assert any("different cudnn wheels: nvidia-cudnn-cu12==9.1.0.70 vs nvidia-cudnn-cu12==9.5.1.17" in w
               for w in c.warnings)
    runs = load_results([base]).runs
    assert runs.loc[0, "gpu_model"] == "NVIDIA H200" and runs.loc[0, "gpu"]["driver"] == "550.54.15"


def test_compare_reports_name_the_gpu(tmp_path):
    base = _gpu_run(RECORDED / "aa-1", tmp_path / "b", "NVIDIA H200")
    cand = _gpu_run(RECORDED / "aa-2", tmp_path / "c", "NVIDIA H200")
    for fmt in ("table", "markdown"):
        out = zoo("compare", str(base), str(cand), "--format", fmt)
        assert out.returncode in (0, 1) and "NVIDIA H200" in out.stdout, out.stderr
