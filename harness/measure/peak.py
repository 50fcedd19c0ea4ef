"""The device's peak FLOP/s, measured at the start of a run, so utilisation is achieved FLOP/s
over what *this* machine does, not a data-sheet number.

CPU: the best of several large square matmuls with the cell's thread count (and CPU affinity),
in float32 through NumPy's BLAS, in bfloat16 through torch when it is installed (NumPy has no
bfloat16 BLAS). GPU: a table of known devices (dense tensor-core peaks from the vendors' data
sheets) by the name ``nvidia-smi`` reports. Runs as ``python -m harness.measure.peak`` in a subprocess so
the ``zoo`` process never imports a framework.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

from zoo.threads import thread_env

from harness.measure.affinity import pin_threads
from harness.measure.machine import gpu_name

#: Dense peak TFLOP/s (fp32 without TF32, bf16 tensor cores) by GPU name substring.
GPU_PEAK_TFLOPS = {
    "H200": {"fp32": 67.0, "bf16": 989.0},
    "H100 SXM": {"fp32": 67.0, "bf16": 989.0},
    "H100 PCIe": {"fp32": 51.0, "bf16": 756.0},
    "A100": {"fp32": 19.5, "bf16": 312.0},
    "L40S": {"fp32": 91.6, "bf16": 362.0},
    "L4": {"fp32": 30.3, "bf16": 121.0},
    "A10": {"fp32": 31.2, "bf16": 125.0},
    "V100": {"fp32": 15.7, "bf16": 0.0},
    "T4": {"fp32": 8.1, "bf16": 0.0},
}


@dataclass(frozen=True)
class Peak:
    device: str
    precision: str
    gflops: float  # 0 when unknown
    source: str  # how it was obtained


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
    for key, peaks in GPU_PEAK_TFLOPS.items():
        if key in name and peaks.get(precision):
            return Peak("gpu", precision, peaks[precision] * 1e3, f"data sheet of {key} (dense)")
    return Peak("gpu", precision, 0.0, f"unknown GPU {name!r}: add it to harness.measure.peak.GPU_PEAK_TFLOPS")


def measure(device: str, precision: str, threads: int, timeout_s: float = 120) -> Peak:
    """The peak for one device and precision, measured in a subprocess (CPU) or looked up (GPU)."""
    if device == "gpu":
        return gpu_peak(precision, gpu_name())
    env = {**os.environ, **thread_env(threads)}
    try:
        proc = subprocess.run([sys.executable, "-m", "harness.measure.peak", precision, str(threads)], capture_output=True,
                              text=True, timeout=timeout_s, env=env)
        return Peak(**json.loads(proc.stdout.strip().splitlines()[-1]))
    except (subprocess.SubprocessError, ValueError, IndexError, TypeError) as exc:
        return Peak(device, precision, 0.0, f"measurement failed: {exc}")


if __name__ == "__main__":
    print(json.dumps(asdict(measure_cpu(sys.argv[1], int(sys.argv[2])))))
