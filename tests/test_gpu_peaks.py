"""GPU peaks: whole-name matching of real nvidia-smi names to the corrected data-sheet table, a
TF32 entry, unknown GPUs staying unknown, the GPU chosen by CUDA_VISIBLE_DEVICES, and the
measured matmul probe (on the CPU here; on a GPU only where one is present)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import fake_nvidia_smi as fake
from harness.measure import gpu_info, peak
from harness.measure.gpu_peaks import GPU_PEAK_TFLOPS, PRECISIONS, gpu_model, normalise_name
from harness.measure.matmul_probe import ProbeUnavailable, probe

#: Real nvidia-smi names -> the table's row (None: not listed, so "unknown").
NAMES = [
    ("NVIDIA H100 80GB HBM3", "H100 SXM"),
    ("NVIDIA H100 PCIe", "H100 PCIe"),
    ("NVIDIA H100 NVL", "H100 NVL"),
    ("NVIDIA H200", "H200 SXM"),
    ("NVIDIA H200 NVL", "H200 NVL"),
    ("NVIDIA A100-SXM4-80GB", "A100"),
    ("NVIDIA A100-SXM4-40GB", "A100"),
    ("NVIDIA A100-PCIE-40GB", "A100"),
    ("NVIDIA A100 80GB PCIe", "A100"),
    ("NVIDIA L40", "L40"),
    ("NVIDIA L40S", "L40S"),
    ("NVIDIA L4", "L4"),
    ("NVIDIA A10", "A10"),
    ("Tesla T4", None),
    ("Tesla V100-SXM2-16GB", None),
    ("NVIDIA A10G", None),
    ("NVIDIA GH200 480GB", None),
    ("NVIDIA H800", None),
    ("NVIDIA GeForce RTX 4090", None),
    ("", None),
]


@pytest.mark.parametrize("name,model", NAMES)
def test_real_nvidia_smi_names_match_whole_models_only(name, model):
    assert gpu_model(name) == model
    assert gpu_model(f"  {name.upper()}  ") == model  # case and spacing do not matter, the whole name does


def test_neighbours_no_longer_borrow_each_others_figures():
    """The substring lookup gave L40 the L4's figures and H200 NVL the SXM's."""
    assert gpu_model("NVIDIA L40") != gpu_model("NVIDIA L4")
    assert GPU_PEAK_TFLOPS[gpu_model("NVIDIA L40")]["bf16"] == 181.05
    assert GPU_PEAK_TFLOPS[gpu_model("NVIDIA H200 NVL")]["bf16"] == 835.5
    assert GPU_PEAK_TFLOPS[gpu_model("NVIDIA H200")]["bf16"] == 989.4
    assert peak.gpu_peak("bf16", "NVIDIA H100 80GB HBM3").gflops == pytest.approx(989_400)


def test_table_has_dense_fp32_tf32_bf16_for_every_gpu_and_bf16_is_not_sparse():
    for model, figures in GPU_PEAK_TFLOPS.items():
        assert set(figures) == set(PRECISIONS), model
        assert 0 < figures["fp32"] <= figures["tf32"] <= figures["bf16"], model
        assert figures["bf16"] <= 2.05 * figures["tf32"], model  # dense BF16 is 2x dense TF32 at most
    assert GPU_PEAK_TFLOPS["H100 SXM"] == {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4}
    assert GPU_PEAK_TFLOPS["H200 SXM"] == GPU_PEAK_TFLOPS["H100 SXM"]
    assert GPU_PEAK_TFLOPS["H100 NVL"] == {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5}  # per GPU, not per pair
    assert GPU_PEAK_TFLOPS["A100"] == {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0}


def test_unknown_gpus_get_no_figure_and_say_what_to_do():
    p = peak.gpu_peak("bf16", "Tesla T4")
    assert p.gflops == 0 and p.datasheet_gflops == 0
    assert "unknown GPU 'Tesla T4'" in p.source and "NAME_TO_MODEL" in p.source
    assert peak.gpu_peak("tf32", "NVIDIA A100-SXM4-80GB").gflops == pytest.approx(156_000)


def test_normaliser_keeps_prefixes_that_are_not_the_vendor():
    assert normalise_name("NVIDIA  H100   PCIe") == "h100 pcie"
    assert normalise_name("Tesla T4") == "tesla t4"


# -- which GPU: the first one CUDA_VISIBLE_DEVICES shows ------------------------------------

ROWS = gpu_info.parse_gpu_rows(
    "0, GPU-11111111-aaaa, NVIDIA A100-SXM4-80GB, 550.54.15, 81920 MiB\n"
    "1, GPU-22222222-bbbb, NVIDIA H100 80GB HBM3, 550.54.15, 81559 MiB\n"
    "2, GPU-33333333-cccc, NVIDIA L40S, 550.54.15, 46068 MiB\n")
PCI = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}


@pytest.mark.parametrize("visible,name", [
    (None, "NVIDIA A100-SXM4-80GB"),
    ("1", "NVIDIA H100 80GB HBM3"),
    ("2,0", "NVIDIA L40S"),
    (" 1 , 2", "NVIDIA H100 80GB HBM3"),
    ("GPU-33333333", "NVIDIA L40S"),
    ("GPU-22222222-bbbb,0", "NVIDIA H100 80GB HBM3"),
])
def test_cuda_visible_devices_picks_the_first_visible_gpu(visible, name):
    env = dict(PCI) if visible is None else {**PCI, "CUDA_VISIBLE_DEVICES": visible}
    row, why = gpu_info.select_visible(ROWS, env)
    assert row is not None and row.name == name and why == ""


@pytest.mark.parametrize("visible,reason", [
    ("", "empty"), ("-1", "no GPU"), ("7", "names GPU 7"), ("GPU-9", "matches 0"), ("MIG-abc", "MIG slice"),
])
def test_no_visible_gpu_gives_no_name_and_a_reason(visible, reason):
    row, why = gpu_info.select_visible(ROWS, {**PCI, "CUDA_VISIBLE_DEVICES": visible})
    assert row is None and reason in why


def test_mixed_gpus_need_pci_bus_order_to_trust_an_index():
    row, why = gpu_info.select_visible(ROWS, {"CUDA_VISIBLE_DEVICES": "1"})
    assert row is None and "CUDA_DEVICE_ORDER=PCI_BUS_ID" in why
    same = gpu_info.parse_gpu_rows("0, GPU-1, NVIDIA H200, 560.35.03, 143771 MiB\n"
                                   "1, GPU-2, NVIDIA H200, 560.35.03, 143771 MiB\n")
    assert gpu_info.select_visible(same, {"CUDA_VISIBLE_DEVICES": "1"})[0].uuid == "GPU-2"


def test_gpu_peak_follows_cuda_visible_devices_through_nvidia_smi(tmp_path, monkeypatch):
    fake.on_path(monkeypatch, fake.install(tmp_path / "bin", [fake.L40, fake.L40S, fake.H200]))
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2")
    p = peak.measure_gpu("bf16", probe=False)
    assert (p.gflops, p.datasheet_gflops) == (pytest.approx(989_400), pytest.approx(989_400))
    assert "H200 SXM" in p.source
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert peak.measure_gpu("bf16", probe=False).gflops == pytest.approx(181_050)  # the L40, not the L4
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    hidden = peak.measure_gpu("bf16", probe=False)
    assert hidden.gflops == 0 and "no GPU is visible" in hidden.source


def test_measure_gpu_without_a_framework_on_the_gpu_keeps_the_data_sheet_and_says_why(tmp_path, monkeypatch):
    """Here torch and JAX are CPU builds: the probe cannot reach the (fake) GPU, so the peak is
    the data sheet's, with the probe's reason; never a CPU figure passed off as the GPU's."""
    fake.on_path(monkeypatch, fake.install(tmp_path / "bin", [fake.H100_SXM]))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    p = peak.measure("gpu", "fp32", threads=1)
    assert p.device == "gpu" and p.gflops == pytest.approx(67_000) and p.datasheet_gflops == pytest.approx(67_000)
    assert "data sheet of H100 SXM" in p.source and "no measured GPU peak" in p.source


def test_tf32_on_a_cpu_is_unknown_not_a_number():
    assert peak.measure("cpu", "tf32", threads=1).gflops == 0


# -- the measured probe: CPU here, GPU where one is present ---------------------------------

def test_matmul_probe_runs_on_the_cpu_in_a_subprocess():
    pytest.importorskip("torch")
    proc = subprocess.run([sys.executable, "-m", "harness.measure.matmul_probe", "cpu", "fp32", "256", "torch"],
                          capture_output=True, text=True, timeout=120)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["gflops"] > 0 and "TF32 off" in out["source"], proc.stderr


def test_matmul_probe_refuses_what_cannot_run_with_a_reason():
    with pytest.raises(ProbeUnavailable, match="TF32 is a GPU tensor-core mode"):
        probe("cpu", "tf32", 64, framework="torch" if _has("torch") else "jax")
    with pytest.raises(ProbeUnavailable, match="unknown precision"):
        probe("cpu", "fp16", 64)


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _cuda_torch() -> bool:
    if not gpu_info.query_gpus():
        return False
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.mark.skipif(not _cuda_torch(), reason="needs an NVIDIA GPU (nvidia-smi lists none here) and a CUDA build "
                                              "of torch")
def test_measured_gpu_peaks_stay_under_the_data_sheet_and_strict_fp32_is_strict():
    row, _ = gpu_info.visible_gpu()
    for precision in PRECISIONS:
        p = peak.measure_gpu(precision)
        assert p.gflops > 0 and "measured" in p.source
        if p.datasheet_gflops:
            assert p.gflops <= 1.05 * p.datasheet_gflops, (row.name, precision, p)
