"""Run one benchmark cell in this process: ``python -m harness.worker PLAN.json RECORD.json``.

The parent ``zoo`` process never imports a framework; this worker does, through the plugin
that provides it. Its imports, thread pools, allocator state, crashes and peak memory therefore
belong to exactly one cell. The record is written atomically to ``RECORD.json`` at the end,
also when a phase fails (with the metrics measured before the failure).
"""

from __future__ import annotations

import faulthandler
import json
import os
import platform
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from zoo.batching import eval_order, train_order
from zoo.checkpoints import BUILTIN_DIR, atomic_write_bytes, load_checkpoint, save_checkpoint
from zoo.contract import EvalData, FineTuneConfig, Runtime, TrainData
from zoo.init import init_weights, with_new_head

from harness.cells import CellPlan
from harness.meter import StepMeter, warmup_steps, window_throughputs
from harness.plugin_manager import worker_host
from harness.records import CellRecord, ErrorInfo, Metric, record_to_json
from harness.registry import build_registry
from harness.stats import percentile
from harness.store import utc_now

ENV_VARS_RECORDED = (
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "XLA_FLAGS", "JAX_PLATFORMS",
    "XLA_PYTHON_CLIENT_PREALLOCATE", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS",
    "TF_FORCE_GPU_ALLOW_GROWTH", "KERAS_BACKEND", "CUDA_VISIBLE_DEVICES", "PJRT_NPROC",
)


class ContractViolation(RuntimeError):
    """A plugin returned something the contract forbids (wrong shape, NaN, missing weights)."""


def _maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _pin_threads(threads: int) -> list[int]:
    """Restrict this process to ``threads`` CPUs, so every framework gets the same cores."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
        if threads < len(cpus):
            os.sched_setaffinity(0, cpus[:threads])
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return []


def _check_logits(logits: Any, rows: int, num_classes: int, phase: str) -> np.ndarray:
    arr = np.asarray(logits)
    if arr.shape != (rows, num_classes):
        raise ContractViolation(f"{phase}: evaluate returned logits of shape {arr.shape}, expected {(rows, num_classes)}")
    if not np.all(np.isfinite(arr)):
        raise ContractViolation(f"{phase}: evaluate returned non-finite logits (NaN or inf)")
    return arr.astype(np.float32, copy=False)


class CellRun:
    """The phases of one cell, accumulating metrics as they complete."""

    def __init__(self, plan: CellPlan):
        self.plan = plan
        self.cell = plan.cell
        self.settings = plan.settings
        self.metrics: dict[str, Metric] = {}
        self.framework_info: dict[str, Any] = {}
        self.environment: dict[str, Any] = {}
        self.not_applicable: list[str] = []  # phases the adapter does not have (inference-only)
        self.baseline_rss = 0
        self.phase = "plan"

    def metric(self, name: str, value: float, unit: str, direction: str) -> None:
        self.metrics[name] = Metric(float(value), unit, direction)

    def run(self) -> None:
        adapter, spec, task, info = self._setup()
        data = task.load()
        model = self._load(adapter, spec, task)
        if adapter.can_train:
            model = self._fine_tune(adapter, model, data)
        else:
            self.not_applicable.append("fine_tune")
        accuracy = self._evaluate(adapter, model, data, task.num_classes)
        self._latency(adapter, model, data, task.num_classes)
        self.phase = "export"
        exported = adapter.export_weights(model)
        try:
            spec.check_weights(exported, task.input_shape, task.num_classes)
        except ValueError as exc:
            raise ContractViolation(f"export_weights: {exc}") from exc
        if self.settings.export_to:
            self._save(spec, task, exported, accuracy, info)
        self.phase = "memory"
        self.metric("peak_rss_mb", max(0, _maxrss_bytes() - self.baseline_rss) / 2**20, "MiB", "lower")
        self.metric("baseline_rss_mb", self.baseline_rss / 2**20, "MiB", "info")
        for key, value in adapter.memory(self.cell.device).items():
            self.metric(f"framework_{key.removesuffix('_bytes')}_mb", value / 2**20, "MiB", "lower")

    def _setup(self):
        """Import the plugins, apply the runtime settings, check the device."""
        cell, settings = self.cell, self.settings
        self.phase = "import"
        affinity = _pin_threads(settings.threads)
        registry = build_registry(worker_host(self.plan.modules))
        adapter = registry.framework(cell.framework).item
        spec = registry.model(cell.model).item
        task = registry.task(cell.task).item
        runtime = Runtime(cell.device, cell.precision, settings.threads, settings.seed)
        self.environment = {
            "threads": settings.threads,
            "cpu_affinity": affinity,
            "python": platform.python_version(),
            "env": {k: os.environ[k] for k in ENV_VARS_RECORDED if k in os.environ},
            "matmul_precision": runtime.matmul_precision,
        }
        self.phase = "prepare"
        t0 = time.perf_counter()
        adapter.prepare(runtime)
        info = adapter.info()
        self.metric("import_s", time.perf_counter() - t0, "s", "lower")
        self.framework_info = {"versions": dict(info.versions), "devices": list(info.devices), "details": dict(info.details)}
        if cell.device not in info.devices:
            raise RuntimeError(
                f"device {cell.device!r} was requested but {cell.framework} sees only {list(info.devices)}; "
                "run with --device cpu, or install the framework's GPU build and check its driver"
            )
        self.baseline_rss = _maxrss_bytes()
        return adapter, spec, task, info

    def _load(self, adapter, spec, task):
        """Checkpoint (sha256-verified) with a new NumPy head, or seeded random weights."""
        cell, settings = self.cell, self.settings
        self.phase = "data"
        shape, classes = task.input_shape, task.num_classes
        if self.plan.checkpoint and cell.init == "pretrained":
            directory = Path(settings.checkpoint_dir) if settings.checkpoint_dir else BUILTIN_DIR
            entry, source = load_checkpoint(self.plan.checkpoint, directory)
            weights = with_new_head(spec, source, shape, classes, seed=settings.seed + 1)
            self.environment["checkpoint"] = {"name": entry.name, "sha256": entry.sha256}
        else:
            weights = init_weights(spec, shape, classes, seed=settings.seed)
        self.phase = "load"
        t0 = time.perf_counter()
        model = adapter.load_pretrained(
            spec=spec, weights=weights, input_shape=shape, num_classes=classes,
            device=cell.device, precision=cell.precision, freeze=cell.freeze,
        )
        self.metric("load_s", time.perf_counter() - t0, "s", "lower")
        return model

    def _fine_tune(self, adapter, model, data):
        cell, settings = self.cell, self.settings
        self.phase = "fine_tune"
        train = TrainData(data.x_train, data.y_train,
                          train_order(len(data.x_train), cell.batch_size, settings.epochs, settings.seed))
        config = FineTuneConfig(learning_rate=settings.learning_rate, freeze=cell.freeze)
        meter = StepMeter()
        t0 = time.perf_counter()
        result = adapter.fine_tune(model, train, config, meter)
        self.metric("fine_tune_wall_s", time.perf_counter() - t0, "s", "lower")
        if len(meter.durations_s) != train.num_steps:
            raise ContractViolation(
                f"fine_tune timed {len(meter.durations_s)} steps with meter.step, expected {train.num_steps}"
            )
        losses = np.asarray(result.losses, dtype=np.float64)
        if losses.size and not np.all(np.isfinite(losses)):
            raise ContractViolation("fine_tune returned non-finite losses")
        skip = warmup_steps(len(meter.durations_s))
        steady = meter.durations_s[skip:]
        self.metrics["train_throughput"] = Metric.from_samples(
            window_throughputs(meter, settings.windows, skip), "samples/s", "higher")
        self.metric("first_step_s", meter.durations_s[0], "s", "lower")
        self.metric("compile_s", max(0.0, meter.durations_s[0] - float(np.median(steady))), "s", "lower")
        if losses.size:
            self.metric("final_loss", float(losses[-len(train.order[-1]):].mean()), "", "info")
        return result.model

    def _evaluate(self, adapter, model, data, classes: int) -> float:
        """Accuracy from one pass (which also warms up), then one timed pass per window."""
        self.phase = "evaluate"
        test = EvalData(data.x_test, eval_order(len(data.x_test), self.cell.batch_size))
        rows = len(test.order) * test.batch_size
        logits = _check_logits(adapter.evaluate(model, test, StepMeter()), rows, classes, "evaluate")
        accuracy = float((logits[: len(data.y_test)].argmax(axis=1) == data.y_test).mean())
        self.metric("accuracy", 100.0 * accuracy, "%", "higher")
        rates = []
        for _ in range(self.settings.windows):
            m = StepMeter()
            _check_logits(adapter.evaluate(model, test, m), rows, classes, "evaluate")
            rates.append(sum(m.samples) / m.total_s)
        self.metrics["infer_throughput"] = Metric.from_samples(rates, "samples/s", "higher")
        return accuracy

    def _latency(self, adapter, model, data, classes: int) -> None:
        """Batch-1 forward passes after a short warm-up (a new batch shape may compile)."""
        self.phase = "latency"
        n_lat = min(self.settings.latency_samples, len(data.x_test))
        adapter.evaluate(model, EvalData(data.x_test, eval_order(min(5, n_lat), 1)), StepMeter())
        m = StepMeter()
        _check_logits(adapter.evaluate(model, EvalData(data.x_test, eval_order(n_lat, 1)), m), n_lat, classes, "latency")
        lat_ms = [d * 1e3 for d in m.durations_s]
        self.metrics["latency_p50_ms"] = Metric.from_samples(lat_ms, "ms", "lower")
        self.metric("latency_p90_ms", percentile(lat_ms, 90), "ms", "lower")
        self.metric("latency_p99_ms", percentile(lat_ms, 99), "ms", "lower")

    def _save(self, spec, task, weights, accuracy, info) -> None:
        cell, settings = self.cell, self.settings
        save_checkpoint(
            {
                "name": settings.export_name,
                "model": spec.name,
                "source_task": task.name,
                "num_classes": task.num_classes,
                "input_shape": list(task.input_shape),
                "accuracy": round(accuracy, 4),
                "recipe": {"epochs": settings.epochs, "batch_size": cell.batch_size,
                           "learning_rate": settings.learning_rate, "optimizer": "adam",
                           "init": "zoo.init.init_weights", "seed": settings.seed, "freeze": cell.freeze},
                "produced_by": {"framework": cell.framework, "versions": dict(info.versions)},
                "command": f"zoo pretrain --model {spec.name} --task {task.name} --framework {cell.framework}",
            },
            weights,
            Path(settings.export_to),
        )


def run_plan(plan: CellPlan) -> CellRecord:
    started, t0 = utc_now(), time.perf_counter()
    run = CellRun(plan)
    error = None
    try:
        run.run()
    except Exception as exc:
        error = ErrorInfo(run.phase, type(exc).__name__, str(exc), traceback.format_exc())
    return CellRecord(
        run_id=plan.run_id, cell=plan.cell, status="failed" if error else "ok",
        metrics=run.metrics, error=error, framework=run.framework_info, environment=run.environment,
        not_applicable=tuple(run.not_applicable),
        started_at=started, duration_s=time.perf_counter() - t0,
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m harness.worker PLAN.json RECORD.json", file=sys.stderr)
        return 2
    faulthandler.enable()  # a crash in native code leaves a Python traceback in the cell's log
    plan = CellPlan.from_dict(json.loads(Path(argv[0]).read_text()))
    record = run_plan(plan)
    atomic_write_bytes(Path(argv[1]), record_to_json(record).encode())
    if record.error:
        print(f"cell failed in {record.error.phase}: {record.error.type}: {record.error.message}", file=sys.stderr)
        print(record.error.detail, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
