"""benchmarks/gpu/validate.sh: its CPU dry run passes (every line PASS, or SKIP with a reason;
none FAIL), a GPU run without a GPU stops with advice, a GPU run whose frameworks cannot reach
the GPU fails its lines instead of passing off CPU numbers, and the memory line's comparison
holds the allocator's peak against NVML's figure (a fake nvidia-smi stands in for the GPU)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import fake_nvidia_smi as fake

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu" / "validate.sh"
LINE = re.compile(r"^(PASS|FAIL|SKIP)  (\S.*?)\s{2,}(\S.*)$")
#: The frameworks the dry run covers here: every installed one (torch and jax at least in CI).
DRY_FRAMEWORKS = [f for f, module in (("torch", "zoo_torch"), ("jax", "zoo_jax"), ("tf", "zoo_tf"))
                  if importlib.util.find_spec(module) is not None]


def _run(*args: str, env: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHON": sys.executable, "NO_COLOR": "1", **(env or {})}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, env=full,
                          cwd=ROOT)


def _lines(stdout: str) -> list[tuple[str, str, str]]:
    return [m.groups() for m in map(LINE.match, stdout.splitlines()) if m]


@pytest.mark.skipif(not {"torch", "jax"} <= set(DRY_FRAMEWORKS), reason="the dry run needs zoo-torch and zoo-jax")
def test_dry_run_passes_every_line_on_the_cpu():
    proc = _run("--frameworks", ",".join(DRY_FRAMEWORKS), env={"DRY_RUN": "1"})
    lines = _lines(proc.stdout)
    names = [name for _, name, _ in lines]
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    assert not [ln for ln in lines if ln[0] == "FAIL"], proc.stdout
    for status, name, detail in lines:
        assert status in ("PASS", "SKIP") and detail, (status, name)
    for framework in DRY_FRAMEWORKS:
        for check in ("parity fp32", "sync", "train bf16", "memory"):
            assert f"{check} {framework}" in names, proc.stdout
    assert {"device", "matmul bf16", "matmul fp32", "matmul tf32", "time"} <= set(names)
    skipped = {name: detail for status, name, detail in lines if status == "SKIP"}
    assert "TF32 is a GPU tensor-core mode" in skipped["matmul tf32"]
    assert all("NVML absent" in skipped[f"memory {f}"] for f in DRY_FRAMEWORKS)
    parity = [detail for _, name, detail in lines if name.startswith("parity")]
    assert all("limit 1e-04" in d for d in parity)
    assert "no GPU was measured" in proc.stdout


def test_a_gpu_run_without_a_gpu_stops_and_says_to_dry_run(tmp_path):
    fake.install(tmp_path / "bin", [])
    proc = _run("--frameworks", "", env={"PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"}, timeout=60)
    assert proc.returncode == 1
    assert _lines(proc.stdout)[0][:2] == ("FAIL", "device") and "--dry-run" in proc.stdout


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch (a CPU build) for the probe")
def test_a_gpu_run_whose_torch_cannot_reach_the_gpu_fails_the_matmul_lines(tmp_path):
    """The fake nvidia-smi shows an H200, but torch here is a CPU build: the matmul lines must
    FAIL with the probe's reason (a CPU figure must never pass for the GPU's)."""
    bin_dir = fake.install(tmp_path / "bin", [fake.H200])
    proc = _run("--frameworks", "", "--matmul-framework", "torch",
                env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "CUDA_VISIBLE_DEVICES": "0"}, timeout=120)
    lines = {name: (status, detail) for status, name, detail in _lines(proc.stdout)}
    assert lines["device"][0] == "PASS" and "NVIDIA H200" in lines["device"][1] and "H200 SXM" in lines["device"][1]
    for precision in ("bf16", "fp32", "tf32"):
        status, detail = lines[f"matmul {precision}"]
        assert status == "FAIL" and "sees no CUDA device" in detail
    assert proc.returncode == 1


def _checks():
    sys.path.insert(0, str(ROOT / "benchmarks" / "gpu"))
    try:
        import framework_checks
    finally:
        sys.path.pop(0)
    return framework_checks


class _Adapter:
    def __init__(self, peak_bytes: int | None):
        self.peak_bytes = peak_bytes

    def memory(self, device: str) -> dict[str, int]:
        return {} if self.peak_bytes is None else {"peak_bytes": self.peak_bytes}


@pytest.mark.parametrize("nvml_mib,peak_mib,status", [(3000, 2048, "PASS"), (1000, 2048, "FAIL"),
                                                      (3000, None, "FAIL"), (None, 2048, "SKIP")])
def test_memory_line_holds_the_allocator_peak_against_nvml(tmp_path, monkeypatch, nvml_mib, peak_mib, status):
    apps = {} if nvml_mib is None else {os.getpid(): nvml_mib}
    fake.on_path(monkeypatch, fake.install(tmp_path / "bin", [fake.H200], apps=apps))
    got, detail = _checks().memory(_Adapter(None if peak_mib is None else peak_mib << 20), {"device": "gpu"})
    assert got == status, detail
