"""A measured matmul peak for one device and precision, in whichever framework can run it.

Precisions mean what the cells mean by them:

* ``fp32``: float32 inputs, float32 arithmetic, **TF32 off** (torch
  ``allow_tf32 = False`` and ``set_float32_matmul_precision("highest")``; JAX
  ``precision="highest"``). A result above the data sheet's FP32 figure means TF32 leaked in.
* ``tf32``: float32 inputs on TF32 tensor cores (GPU only).
* ``bf16``: bfloat16 inputs on tensor cores, float32 accumulation.

The best of ``repeats`` timings of ``inner`` back-to-back square matmuls, synchronised at the
end of each timing (``torch.cuda.synchronize`` / ``block_until_ready``), after one untimed warm-up.
Run it as ``python -m harness.measure.matmul_probe DEVICE PRECISION [N] [FRAMEWORK]`` in a
subprocess: it imports a framework, which the ``zoo`` process never does. It prints one JSON
line, ``{"gflops": ..., "source": ...}``, or ``{"error": ...}`` saying why it could not run.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Callable

#: Square matmul size by device (big enough to fill an H200's tensor cores; small on CPU).
DEFAULT_N = {"gpu": 8192, "cpu": 1024}
FRAMEWORKS = ("torch", "jax")


class ProbeUnavailable(RuntimeError):
    """This framework cannot run the probe here (not installed, no such device, no such mode)."""


def _best(run: Callable[[], None], flops: float, repeats: int) -> float:
    run()  # warm-up: kernels chosen, memory allocated, compiled
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        best = max(best, flops / (time.perf_counter() - t0))
    return best / 1e9


def probe_torch(device: str, precision: str, n: int, inner: int, repeats: int) -> tuple[float, str]:
    """GFLOP/s of ``inner`` n x n matmuls in torch, and a description of what ran."""
    try:
        import torch
    except ImportError as exc:
        raise ProbeUnavailable(f"torch is not installed ({exc})") from None
    if device == "gpu" and not torch.cuda.is_available():
        raise ProbeUnavailable(f"torch {torch.__version__} sees no CUDA device (a CPU build, or no GPU visible)")
    if device == "cpu" and precision == "tf32":
        raise ProbeUnavailable("TF32 is a GPU tensor-core mode; a CPU has none")
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    dev = "cuda" if device == "gpu" else "cpu"
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    gen = torch.Generator(device=dev).manual_seed(0)
    a = torch.randn(n, n, device=dev, dtype=dtype, generator=gen)
    b = torch.randn(n, n, device=dev, dtype=dtype, generator=gen)

    def run() -> None:
        for _ in range(inner):
            c = a @ b
        if dev == "cuda":
            torch.cuda.synchronize()
        else:
            float(c[0, 0])

    where = torch.cuda.get_device_name(0) if dev == "cuda" else "cpu"
    gflops = _best(run, 2.0 * n**3 * inner, repeats)
    mode = {"fp32": "float32, TF32 off", "tf32": "float32 on TF32", "bf16": "bfloat16"}[precision]
    return gflops, f"torch {torch.__version__} matmul {n}x{n} {mode} on {where}, best of {repeats}x{inner}"


def probe_jax(device: str, precision: str, n: int, inner: int, repeats: int) -> tuple[float, str]:
    """GFLOP/s of ``inner`` n x n matmuls in JAX, and a description of what ran."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError as exc:
        raise ProbeUnavailable(f"jax is not installed ({exc})") from None
    try:
        dev = jax.devices("gpu" if device == "gpu" else "cpu")[0]
    except RuntimeError as exc:
        raise ProbeUnavailable(f"jax {jax.__version__} has no {device} backend ({exc})") from None
    if device == "cpu" and precision == "tf32":
        raise ProbeUnavailable("TF32 is a GPU tensor-core mode; a CPU has none")
    dtype = jnp.bfloat16 if precision == "bf16" else jnp.float32
    mode = {"fp32": "highest", "tf32": "tensorfloat32", "bf16": "default"}[precision]
    key_a, key_b = jax.random.split(jax.random.PRNGKey(0))
    a = jax.device_put(jax.random.normal(key_a, (n, n), dtype), dev)
    b = jax.device_put(jax.random.normal(key_b, (n, n), dtype), dev)
    with jax.default_matmul_precision(mode):
        matmul = jax.jit(lambda x, y: x @ y)

        def run() -> None:
            for _ in range(inner):
                c = matmul(a, b)
            c.block_until_ready()

        gflops = _best(run, 2.0 * n**3 * inner, repeats)
    return gflops, (f"jax {jax.__version__} matmul {n}x{n} {precision} (precision {mode}) on {dev}, "
                    f"best of {repeats}x{inner}")


def probe(device: str, precision: str, n: int | None = None, framework: str = "", inner: int | None = None,
          repeats: int = 5) -> tuple[float, str]:
    """The measured GFLOP/s and its description, in ``framework`` (default: the first of
    :data:`FRAMEWORKS` that can run it). Raises :class:`ProbeUnavailable` saying why each could not."""
    if precision not in ("fp32", "tf32", "bf16"):
        raise ProbeUnavailable(f"unknown precision {precision!r}; choose fp32, tf32 or bf16")
    n = n or DEFAULT_N.get(device, 1024)
    inner = inner or (20 if device == "gpu" else 2)
    why = []
    for name in [framework] if framework else FRAMEWORKS:
        run = {"torch": probe_torch, "jax": probe_jax}.get(name)
        if run is None:
            raise ProbeUnavailable(f"unknown probe framework {name!r}; choose {' or '.join(FRAMEWORKS)}")
        try:
            return run(device, precision, n, inner, repeats)
        except ProbeUnavailable as exc:
            why.append(f"{name}: {exc}")
    raise ProbeUnavailable("; ".join(why))


def main(argv: list[str]) -> int:
    device, precision = argv[0], argv[1]
    n = int(argv[2]) if len(argv) > 2 else None
    framework = argv[3] if len(argv) > 3 else ""
    try:
        gflops, source = probe(device, precision, n, framework)
    except ProbeUnavailable as exc:
        print(json.dumps({"error": str(exc)}))
        return 0
    print(json.dumps({"gflops": gflops, "source": source}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
