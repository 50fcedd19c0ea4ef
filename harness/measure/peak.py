"""The device's peak FLOP/s, measured at the start of a run, so utilisation is achieved FLOP/s
over what *this* machine does, not a data-sheet number.

CPU: the best of several large square matmuls with the cell's thread count (and CPU affinity),
in float32 through NumPy's BLAS, in bfloat16 through torch when it is installed (NumPy has no
bfloat16 BLAS). GPU: large matmuls on the GPU the cells will use (the first one
``CUDA_VISIBLE_DEVICES`` shows) in float32 with TF32 off, TF32 and bfloat16
(:mod:`harness.measure.matmul_probe`, in torch or JAX), recorded beside the dense data-sheet
figure of that GPU (:mod:`harness.measure.gpu_peaks`, matched on the whole model name). When no
framework in this interpreter can reach the GPU, the data-sheet figure is the peak; an unknown GPU
gets 0 ("unknown", no utilisation), never a neighbour's figure. Measurements run as subprocesses
(``python -m harness.measure.peak`` / ``python -m harness.measure.matmul_probe``) so the ``zoo``
process never imports a framework.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Mapping

from zoo.threads import thread_env

from harness.measure.affinity import pin_threads
from harness.measure.gpu_info import visible_gpu
from harness.measure.gpu_peaks import GPU_PEAK_TFLOPS, datasheet_tflops

__all__ = ["GPU_PEAK_TFLOPS", "Peak", "gpu_peak", "measure", "measure_cpu", "measure_gpu", "probe_gpu"]

#: Seconds allowed to the GPU matmul probe (a framework import and CUDA start-up included).
GPU_PROBE_TIMEOUT_S = 180
#: A strict-fp32 matmul above this share of the FP32 data sheet must have used TF32.
FP32_LEAK_RATIO = 1.05


@dataclass(frozen=True)
class Peak:
    """One device's peak at one precision: what utilisation is computed against."""

    device: str
    precision: str
    gflops: float  # 0 when unknown
    source: str  # how it was obtained
    #: The GPU's dense data-sheet figure (0 when unknown, and on CPU), kept beside a measured peak.
    datasheet_gflops: float = 0.0


def _best_matmul(matmul, n: int, repeats: int) -> float:
    matmul()
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        matmul()
        best = max(best, 2 * n**3 / (time.perf_counter() - t0))
    return best / 1e9


def measure_cpu(precision: str, threads: int, n: int = 2048, repeats: int = 5) -> Peak:
    pin_threads(threads)
    if precision == "fp32":
        import numpy as np

        rng = np.random.default_rng(0)
        a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
        return Peak("cpu", precision, _best_matmul(lambda: a @ b, n, repeats), f"numpy matmul {n}x{n}, {threads} threads")
    try:
        import torch
    except ImportError:
        return Peak("cpu", precision, 0.0, "unknown: bfloat16 peak needs torch installed")
    torch.set_num_threads(threads)
    a = torch.rand(n, n, dtype=torch.bfloat16)
    b = torch.rand(n, n, dtype=torch.bfloat16)
    return Peak("cpu", precision, _best_matmul(lambda: a @ b, n, repeats), f"torch bf16 matmul {n}x{n}, {threads} threads")


def gpu_peak(precision: str, name: str) -> Peak:
    """The dense data-sheet peak of the GPU called ``name`` (as nvidia-smi prints it), matched on
    the whole model name; 0 with the reason when the name or the precision is not in the table."""
    model, tflops = datasheet_tflops(name, precision)
    if model is None:
        return Peak("gpu", precision, 0.0, f"unknown GPU {name!r}: no data-sheet figure; add its nvidia-smi name "
                                           "to harness.measure.gpu_peaks.NAME_TO_MODEL once its data sheet is checked")
    if not tflops:
        return Peak("gpu", precision, 0.0, f"data sheet of {model} has no dense {precision} figure")
    gflops = tflops * 1e3
    return Peak("gpu", precision, gflops, f"data sheet of {model} (dense, no sparsity)", datasheet_gflops=gflops)


def probe_gpu(precision: str, env: Mapping[str, str] | None = None,
              timeout_s: float = GPU_PROBE_TIMEOUT_S) -> tuple[float, str]:
    """Run :mod:`harness.measure.matmul_probe` on the GPU in a subprocess: ``(GFLOP/s, source)``,
    or ``(0, why not)``."""
    try:
        proc = subprocess.run([sys.executable, "-m", "harness.measure.matmul_probe", "gpu", precision],
                              capture_output=True, text=True, timeout=timeout_s,
                              env=dict(os.environ if env is None else env))
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, OSError, ValueError, IndexError) as exc:
        return 0.0, f"the GPU matmul probe failed: {exc}"
    if "error" in out:
        return 0.0, f"no measured GPU peak ({out['error']})"
    return float(out["gflops"]), f"measured: {out['source']}"


def measure_gpu(precision: str, env: Mapping[str, str] | None = None, probe: bool = True) -> Peak:
    """The peak of the GPU a cell started with ``env`` will use: measured by the matmul probe
    when a framework here can reach the GPU, beside the data-sheet figure; else the data-sheet
    figure alone; 0 ("unknown") when neither is known."""
    row, why = visible_gpu(env)
    if row is None:
        return Peak("gpu", precision, 0.0, f"unknown: {why}")
    sheet = gpu_peak(precision, row.name)
    if not probe:
        return sheet
    measured, source = probe_gpu(precision, env)
    if measured <= 0:
        return Peak("gpu", precision, sheet.gflops, f"{sheet.source}; {source}",
                    datasheet_gflops=sheet.datasheet_gflops)
    note = ""
    if precision == "fp32" and sheet.datasheet_gflops and measured > FP32_LEAK_RATIO * sheet.datasheet_gflops:
        note = (f"; WARNING: {measured / sheet.datasheet_gflops:.0%} of the FP32 data sheet: TF32 tensor cores "
                "were used, so strict fp32 is not strict here")
    return Peak("gpu", precision, measured, f"{source} ({row.name}); {sheet.source}{note}",
                datasheet_gflops=sheet.datasheet_gflops)


def measure(device: str, precision: str, threads: int, timeout_s: float = 120) -> Peak:
    """The peak for one device and precision, measured in a subprocess (CPU and GPU) beside the
    data sheet (GPU)."""
    if device == "gpu":
        return measure_gpu(precision)
    if precision == "tf32":
        return Peak(device, precision, 0.0, "unknown: TF32 is a GPU tensor-core mode; a CPU has none")
    env = {**os.environ, **thread_env(threads)}
    try:
        proc = subprocess.run([sys.executable, "-m", "harness.measure.peak", precision, str(threads)], capture_output=True,
                              text=True, timeout=timeout_s, env=env)
        return Peak(**json.loads(proc.stdout.strip().splitlines()[-1]))
    except (subprocess.SubprocessError, ValueError, IndexError, TypeError) as exc:
        return Peak(device, precision, 0.0, f"measurement failed: {exc}")


if __name__ == "__main__":
    print(json.dumps(asdict(measure_cpu(sys.argv[1], int(sys.argv[2])))))
