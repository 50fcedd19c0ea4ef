"""The per-framework lines of the GPU validation, run in a child process of ``validate.py``:
``python benchmarks/gpu/framework_checks.py FRAMEWORK GROUP CONFIG_JSON``.

One process per (framework, group) because an adapter is prepared once per process for one
precision, as a worker is: group ``fp32`` checks ResNet-50 logits against the float64 NumPy
reference and the synchronisation of ``evaluate``; group ``bf16`` measures training images/s and
then compares the allocator's peak with NVML's figure for this process. Everything goes through
the framework's public adapter contract (``zoo.contract``), found as ``zoo bench`` finds it.

Each result is printed as one line ``@@validate {"name": ..., "status": ..., "detail": ...}``
(status PASS, FAIL or SKIP); anything else on stdout/stderr is the framework's own noise.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Callable

import numpy as np

MARK = "@@validate "

#: Published ResNet-50 v1.5 training throughput on one A100 (NVIDIA DeepLearningExamples READMEs:
#: PyTorch/Classification/ConvNets/resnet50v1.5 and TensorFlow/Classification/ConvNets/resnet50v1.5,
#: mixed precision, batch 256, DALI input pipeline), as quoted in issue 17; re-check them against
#: the READMEs when a GPU run is published. JAX has no figure there; PyTorch AMP's is shown.
PUBLISHED = {
    "torch": (2470, "PyTorch AMP on 1x A100, NVIDIA DeepLearningExamples"),
    "tf": (2375, "TensorFlow AMP+XLA on 1x A100, NVIDIA DeepLearningExamples"),
    "jax": (2470, "no published JAX figure there; PyTorch AMP's on 1x A100"),
}


def emit(name: str, status: str, detail: str) -> None:
    print(MARK + json.dumps({"name": name, "status": status, "detail": detail}), flush=True)


def guarded(name: str, body: Callable[[], tuple[str, str]]) -> None:
    """Run one check; an exception becomes a FAIL line naming it (the other checks still run)."""
    try:
        status, detail = body()
    except Exception as exc:  # the adapter or its framework raised: say so, keep going
        status, detail = "FAIL", f"{type(exc).__name__}: {exc}"[:600]
    emit(name, status, detail)


def line_names(framework: str, group: str) -> list[str]:
    """The lines a (framework, group) child prints, in order (the parent reports missing ones)."""
    if group == "fp32":
        return [f"parity fp32 {framework}", f"sync {framework}"]
    return [f"train bf16 {framework}", f"memory {framework}"]


def _adapter(framework: str, cfg: dict[str, Any], precision: str):
    """The adapter, discovered like ``zoo bench`` does, with the worker's environment and prepared."""
    from zoo.contract import Runtime
    from zoo.testing.discovery import discover
    from zoo.threads import thread_env

    found = discover(framework, ())
    if found.adapter is None:
        return None, found.result.message
    adapter = found.adapter
    runtime = Runtime(cfg["device"], precision, cfg["threads"], seed=0, matmul_precision="highest",
                      variant=cfg["variants"].get(framework, "") if precision == "bf16" else "")
    for key, value in {**thread_env(cfg["threads"]), **adapter.subprocess_env(runtime)}.items():
        os.environ.setdefault(key, value)  # before the framework is imported, as the worker does
    adapter.prepare(runtime)
    devices = adapter.info().devices
    if cfg["device"] not in devices:
        raise RuntimeError(f"{framework} sees devices {list(devices)}, not {cfg['device']}: install its CUDA build "
                           "(benchmarks/gpu/README.md) or check CUDA_VISIBLE_DEVICES")
    return adapter, ""


def _load(adapter, spec, weights, shape, classes, device, precision):
    from zoo.contract import load_kwargs

    return adapter.load_pretrained(**load_kwargs(adapter, spec=spec, weights=weights, input_shape=shape,
                                                 num_classes=classes, device=device, precision=precision,
                                                 freeze="none"))


def parity(adapter, cfg: dict[str, Any]) -> tuple[str, str]:
    """ResNet-50 fp32 logits against the float64 NumPy reference, at unit logit scale: random
    He-initialised ResNet-50 logits reach hundreds, so the head is scaled to make the reference's
    largest logit 1 (exactly linear: the head is a dense layer with zero bias) and the promised
    absolute tolerance then means what it means for the small models."""
    from zoo.batching import eval_order
    from zoo.contract import EvalData
    from zoo.init import init_weights
    from zoo.models import builtin_model
    from zoo.testing import NullMeter

    p = cfg["parity"]
    spec, shape, classes = builtin_model(p["model"]), (p["px"], p["px"], 3), 10
    weights = dict(init_weights(spec, shape, classes, seed=0))
    x = np.random.default_rng(1).normal(size=(p["batch"], *shape)).astype(np.float32)
    reference = spec.reference_forward(weights, x)
    scale = float(np.abs(reference).max())
    for name in spec.head_names(shape, classes):
        weights[name] = (weights[name] / scale).astype(np.float32)
    reference = reference / scale
    model = _load(adapter, spec, weights, shape, classes, cfg["device"], "fp32")
    logits = adapter.evaluate(model, EvalData(x, eval_order(len(x), len(x))), NullMeter())
    err = float(np.abs(np.asarray(logits, np.float64)[: len(x)] - reference).max())
    status = "PASS" if err <= cfg["tolerance"] else "FAIL"
    return status, (f"max |logit - reference| {err:.1e} (limit {cfg['tolerance']:.0e}) at unit logit scale "
                    f"(head / {scale:.0f}); {p['model']} fp32 {p['px']} px, batch {p['batch']}, on {cfg['device']}")


def sync(adapter, cfg: dict[str, Any]) -> tuple[str, str]:
    """The share of one ``evaluate`` call's wall time inside its timed steps (zoo.testing.sync)."""
    from zoo.batching import eval_order
    from zoo.contract import EvalData
    from zoo.init import init_weights
    from zoo.models import builtin_model
    from zoo.testing import RecordingMeter
    from zoo.testing.sync import step_share

    s = cfg["sync"]
    spec, shape, classes = builtin_model(s["model"]), (s["px"], s["px"], 3), 10
    model = _load(adapter, spec, init_weights(spec, shape, classes, seed=0), shape, classes, cfg["device"], "fp32")
    n = s["batch"] * s["batches"]
    data = EvalData(np.random.default_rng(2).normal(size=(n, *shape)).astype(np.float32), eval_order(n, s["batch"]))

    def call(meter: RecordingMeter) -> Any:
        return adapter.evaluate(model, data, meter)

    np.asarray(call(RecordingMeter()))  # warm-up: compilation, autotuning, allocation
    best, wall = 0.0, 0.0
    for _ in range(3):
        share, took, meter = step_share(call, np.asarray)
        meter.expect("evaluate", s["batches"], [s["batch"]] * s["batches"])
        if share > best:
            best, wall = share, took
    status = "PASS" if best >= s["threshold"] else "FAIL"
    return status, (f"timed steps cover {best:.0%} of the {wall * 1e3:.0f} ms evaluate took (best of 3; "
                    f"{s['batches']} batches of {s['batch']} at {s['px']} px; limit {s['threshold']:.0%})")


def train(adapter, framework: str, cfg: dict[str, Any]) -> tuple[str, str]:
    """Steady bf16 training images/s (the first step of the timed call left out), beside the
    published figure. Batches come from host memory (the contract's TrainData): until batches are
    staged on the device (issue 17, defect 1) this includes the host-to-device feed."""
    from zoo.batching import train_order
    from zoo.contract import FineTuneConfig, TrainData
    from zoo.init import init_weights
    from zoo.models import builtin_model
    from zoo.testing import RecordingMeter

    t = cfg["train"]
    spec, shape, classes, batch = builtin_model(t["model"]), (t["px"], t["px"], 3), 10, t["batch"]
    rng = np.random.default_rng(3)
    n = 2 * batch  # the rows; epochs over them give the steps
    x = rng.normal(size=(n, *shape)).astype(np.float32)
    y = rng.integers(0, classes, n).astype(np.int64)
    model = _load(adapter, spec, init_weights(spec, shape, classes, seed=0), shape, classes, cfg["device"], "bf16")
    config = FineTuneConfig(learning_rate=1e-3)
    warm = adapter.fine_tune(model, TrainData(x, y, train_order(n, batch, epochs=1, seed=0)), config,
                             RecordingMeter())  # compile
    meter = RecordingMeter()
    epochs = max(1, t["steps"] // 2)
    result = adapter.fine_tune(warm.model, TrainData(x, y, train_order(n, batch, epochs=epochs, seed=1)), config, meter)
    losses = [float(v) for v in result.losses]
    if not np.all(np.isfinite(losses)):
        return "FAIL", f"non-finite training losses {losses[:4]}"
    images_s = sum(meter.samples[1:]) / sum(meter.durations_s[1:])
    figure, source = PUBLISHED[framework]
    where = (f"{t['model']} bf16 {t['px']} px, batch {batch}, {len(meter.durations_s) - 1} steady steps, "
             f"host-fed batches; variant {cfg['variants'].get(framework) or 'default'}")
    if cfg["dry_run"]:
        status = "PASS" if images_s > 0 else "FAIL"
        return status, (f"{images_s:,.1f} images/s ({where}); published {figure:,} ({source}) applies to ResNet-50 "
                        "224 px on a GPU only")
    status = "PASS" if images_s >= figure else "FAIL"
    return status, f"{images_s:,.0f} images/s vs published {figure:,} ({source}); an H200 should beat it ({where})"


def memory(adapter, cfg: dict[str, Any]) -> tuple[str, str]:
    """The allocator's peak (``adapter.memory``) against the GPU memory NVML counts for this
    process: the allocator cannot hold more than the process has. Caching allocators keep what
    they reserved, so NVML's figure after the work is at least its peak reservation."""
    from harness.measure.gpu_info import process_gpu_memory_mib

    stats = adapter.memory(cfg["device"])
    nvml_mib = process_gpu_memory_mib(os.getpid())
    if nvml_mib is None:
        return "SKIP", ("NVML absent or blind to this process (no nvidia-smi, or a container's PID namespace hides "
                        f"pid {os.getpid()}): the allocator peak is checked against NVML on a GPU only; "
                        f"allocator on {cfg['device']} reports {stats or 'nothing'}")
    if "peak_bytes" not in stats:
        return "FAIL", f"adapter.memory({cfg['device']!r}) reports no peak_bytes ({stats}); NVML: {nvml_mib} MiB"
    peak_mib = stats["peak_bytes"] / 2**20
    status = "PASS" if peak_mib <= nvml_mib else "FAIL"
    return status, f"allocator peak {peak_mib:,.0f} MiB vs NVML process {nvml_mib:,} MiB (allocator must not exceed)"


def main(argv: list[str]) -> int:
    framework, group, cfg = argv[0], argv[1], json.loads(argv[2])
    names = line_names(framework, group)
    started = time.perf_counter()
    try:
        adapter, why = _adapter(framework, cfg, group)
    except Exception as exc:
        for name in names:
            emit(name, "FAIL", f"preparing {framework} failed: {type(exc).__name__}: {exc}"[:600])
        return 0
    if adapter is None:
        for name in names:
            emit(name, "FAIL" if cfg["require_all"] else "SKIP", f"{framework} is not usable here: {why}"[:600])
        return 0
    if group == "fp32":
        guarded(names[0], lambda: parity(adapter, cfg))
        guarded(names[1], lambda: sync(adapter, cfg))
    else:
        guarded(names[0], lambda: train(adapter, framework, cfg))
        guarded(names[1], lambda: memory(adapter, cfg))
    print(f"{framework} {group}: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
