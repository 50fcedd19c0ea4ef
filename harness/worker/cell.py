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
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from zoo.batching import train_order
from zoo.checkpoints import atomic_write_bytes, load_checkpoint, locate_checkpoint, search_path
from zoo.checks import check_exported_weights, check_task_data
from zoo.contract import FineTuneConfig, Runtime, TrainData, load_kwargs
from zoo.threads import THREAD_VARIABLES
from zoo.models.flops import train_step_flops
from zoo.init import init_weights, with_new_head

from harness.measure import machine
from harness.measure.affinity import pin_threads
from harness.measure.trackers.device_memory import AllocatorTracker
from harness.measure.threadpools import fairness, thread_pools
from harness.plan.cells import CellPlan
from zoo.plugin_host import worker_host
from harness.plugins.registry import build_registry
from harness.results.metrics import BUILTIN, Catalogue
from harness.results.records import CellRecord, ErrorInfo, Metric, record_to_json
from harness.results.store import utc_now
from harness.worker.export import save_pretrained
from harness.worker.parent import tie_to_parent
from harness.worker.phases import (
    Evaluator,
    fine_tune_recipe,
    inference_throughput,
    latency,
    train_throughput,
)
from harness.worker.tracking import TrackerSet

ENV_VARS_RECORDED = (
    *THREAD_VARIABLES, "XLA_FLAGS", "JAX_PLATFORMS",
    "XLA_PYTHON_CLIENT_PREALLOCATE", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS",
    "TF_FORCE_GPU_ALLOW_GROWTH", "KERAS_BACKEND", "CUDA_VISIBLE_DEVICES", "PJRT_NPROC",
)


class CellRun:
    """The phases of one cell, in order, accumulating metrics as they complete. Each phase runs
    inside :meth:`TrackerSet.phase`, so every tracker measures it and a failure names it."""

    def __init__(self, plan: CellPlan):
        self.plan = plan
        self.cell = plan.cell
        self.settings = plan.settings
        self.metrics: dict[str, Metric] = {}
        self.framework_info: dict[str, Any] = {}
        self.environment: dict[str, Any] = {}
        self.not_applicable: list[str] = []  # phases the adapter does not have (inference-only)
        self.details: dict[str, Any] = {}  # how each phase was measured (warm-up, window sizes)
        self.adapter_trains = True
        self.catalogue: Catalogue = BUILTIN  # then the registry's: plugin metrics too
        self.trackers = TrackerSet(self.metrics, lambda name, value: self.catalogue.metric(name, value))

    @property
    def phase(self) -> str:
        """The phase running now (or the last one): what a failure record names."""
        return self.trackers.current

    def metric(self, name: str, value: float) -> None:
        """Record ``name``; its unit and direction come from the metric catalogue."""
        self.metrics[name] = self.catalogue.metric(name, float(value))

    def run(self) -> None:
        cell, settings, phase = self.cell, self.settings, self.trackers.phase
        adapter, spec, task, info, registry = self._setup()
        self.trackers.start(self.plan.trackers, registry, cell, settings.threads)
        allocator = self.trackers.attach(AllocatorTracker, adapter)  # per-phase device peaks (GPU cells)
        with phase("data"):
            data = check_task_data(task, task.load())
        model = self._load(adapter, spec, task)
        shape, classes = task.input_shape, task.num_classes
        x_test = data.test_inputs  # one array per declared input (a plain array for one input)
        evaluate = Evaluator(adapter, x_test, data.y_test, cell.batch_size, classes)
        recipe = TrainData(data.train_inputs, data.y_train,
                           train_order(len(data.y_train), cell.batch_size, settings.epochs, settings.seed),
                           specs=task.inputs)
        config = FineTuneConfig(learning_rate=settings.learning_rate, freeze=cell.freeze)
        if adapter.can_train:
            with phase("fine_tune"):
                model, metrics, details = fine_tune_recipe(adapter, model, recipe, config, evaluate,
                                                           settings.target_accuracy)
            self.metrics.update(metrics)
            self.details["fine_tune"] = details
        else:
            self.not_applicable.append("fine_tune")

        with phase("evaluate"):
            accuracy = evaluate(model)
        self.metric("accuracy", 100.0 * accuracy)
        with phase("export"):
            exported = check_exported_weights(spec, adapter.export_weights(model), shape, classes)
            if self.plan.export is not None:
                save_pretrained(self.plan, spec, task, exported, accuracy, info)

        with phase("inference_throughput"):
            self.metrics["infer_throughput"], self.details["inference"] = inference_throughput(
                adapter, model, x_test, cell.batch_size, classes, settings, device=cell.device,
                first_evaluate=evaluate.first_call)
        self.metric("infer_compile_s", self.details["inference"]["compile"]["compile_s"])
        with phase("latency"):
            self.metrics.update(latency(adapter, model, x_test, classes, settings))
        if adapter.can_train:
            with phase("train_throughput"):
                probe = self.details.get("fine_tune", {}).get("steady_step_s", 0.0)
                model, self.metrics["train_throughput"], self.details["training"] = train_throughput(
                    adapter, model, recipe, config, probe, settings, device=cell.device)
            self._utilisation(spec, shape, classes)

        with phase("memory", tracked=False):
            self.trackers.finish()
            # every pool is loaded by now: compare them with what the cell was given
            self.environment["thread_pools"] = fairness(thread_pools(), settings.threads)
            stats = allocator.cell_stats() if isinstance(allocator, AllocatorTracker) else adapter.memory(cell.device)
            for key, value in stats.items():  # the allocator's peak over the whole cell, whatever the resets
                self.metric(f"framework_{key.removesuffix('_bytes')}_mb", value / 2**20)
            self._parameter_bytes(spec, shape, classes)

    def _utilisation(self, spec, shape, classes) -> None:
        """Achieved FLOP/s of the training phase, and its share of the measured device peak."""
        flops = train_step_flops(spec, shape, classes, self.cell.freeze)
        if not flops:
            return
        achieved = self.metrics["train_throughput"].value * flops
        self.metric("train_gflops", achieved / 1e9)
        if self.settings.peak_gflops > 0:
            self.metric("train_utilisation", 100.0 * achieved / (self.settings.peak_gflops * 1e9))

    def _parameter_bytes(self, spec, shape, classes) -> None:
        """Parameter and Adam-state sizes from the spec: the same count for every framework, and
        which parameters the freeze policy let train."""
        params = spec.parameters(shape, classes)
        trainable = spec.trainable_names(self.cell.freeze, shape, classes)
        self.environment["trained_parameters"] = sorted(trainable) if self.adapter_trains else []
        total = sum(int(np.prod(p.shape)) for p in params)
        n_train = sum(int(np.prod(p.shape)) for p in params if p.name in trainable)
        self.metric("parameters", total)
        self.metric("trainable_parameters", n_train)
        self.metric("param_mb", 4 * total / 2**20)
        self.metric("optimizer_state_mb", 2 * 4 * n_train / 2**20 if self.adapter_trains else 0.0)

    def _setup(self):
        """Import the plugins, apply the runtime settings, check the device."""
        cell, settings = self.cell, self.settings
        self.trackers.current = "import"
        affinity = pin_threads(settings.threads)
        registry = build_registry(worker_host(self.plan.modules))
        self.catalogue = registry.catalogue
        adapter = registry.framework(cell.framework).item
        spec = registry.model(cell.model).item
        task = registry.task(cell.task).item
        # the cell's feed ("" = the default, device-resident); the record names it in cell.feed
        runtime = Runtime(cell.device, cell.precision, settings.threads, settings.seed, variant=cell.variant,
                          feed=cell.feed or "device")
        feeds = tuple(getattr(adapter, "feeds", ("device",)))
        if runtime.feed not in feeds:  # planned against another build of the plugin (--python): never mislabel
            raise RuntimeError(f"the cell asks for the {runtime.feed!r} feed, and {cell.framework} in this "
                               f"environment ({sys.executable}) implements only: {', '.join(feeds)}; run it with "
                               f"--feed {feeds[0]}, or upgrade the plugin there")
        self.adapter_trains = adapter.can_train
        self.environment = {
            "threads": settings.threads,
            "cpu_affinity": affinity,
            "python": platform.python_version(),
            "executable": sys.executable,  # the interpreter that ran this worker (zoo bench --python)
            "env": {k: os.environ[k] for k in ENV_VARS_RECORDED if k in os.environ},
            "matmul_precision": runtime.matmul_precision,
            "tf32": runtime.tf32,
        }
        self.trackers.current = "prepare"
        t0 = time.perf_counter()
        adapter.prepare(runtime)
        info = adapter.info()
        self.metric("import_s", time.perf_counter() - t0)
        self.framework_info = {"versions": dict(info.versions), "devices": list(info.devices), "details": dict(info.details)}
        if cell.device not in info.devices:
            raise RuntimeError(
                f"device {cell.device!r} was requested but {cell.framework} sees only {list(info.devices)}; "
                "run with --device cpu, or install the framework's GPU build and check its driver"
            )
        return adapter, spec, task, info, registry

    def _load(self, adapter, spec, task):
        """Checkpoint (sha256-verified) with a new NumPy head, or seeded random weights."""
        cell, settings = self.cell, self.settings
        shape, classes = task.input_shape, task.num_classes
        with self.trackers.phase("data"):
            if self.plan.checkpoint and cell.init == "pretrained":
                _, directory = locate_checkpoint(self.plan.checkpoint, search_path(settings.checkpoint_dir))
                entry, source = load_checkpoint(self.plan.checkpoint, directory)
                weights = with_new_head(spec, source, shape, classes, seed=settings.seed + 1)
                self.environment["checkpoint"] = {"name": entry.name, "sha256": entry.sha256}
            else:
                weights = init_weights(spec, shape, classes, seed=settings.seed)
        with self.trackers.phase("load"):
            t0 = time.perf_counter()
            model = adapter.load_pretrained(**load_kwargs(  # `inputs` only for adapters of contract 3+
                adapter, spec=spec, weights=weights, input_shape=shape, num_classes=classes,
                device=cell.device, precision=cell.precision, freeze=cell.freeze))
            self.metric("load_s", time.perf_counter() - t0)
        return model


def run_plan(plan: CellPlan) -> CellRecord:
    started, t0 = utc_now(), time.perf_counter()
    run = CellRun(plan)
    error = None
    try:
        run.run()
    except Exception as exc:
        error = ErrorInfo(run.phase, type(exc).__name__, str(exc), traceback.format_exc())
    run.trackers.close()  # sampling processes end with the cell, also a failed one
    run.details.update(run.trackers.details())
    return CellRecord(
        run_id=plan.run_id, cell=plan.cell, status="failed" if error else "ok",
        metrics=run.metrics, error=error, framework=run.framework_info,
        # where the cell ran, measured here: on a cluster that is not the machine that planned it
        environment={**run.environment, "measurement": run.details, "machine": machine.record_info(),
                     "peak_gflops": plan.settings.peak_gflops},
        not_applicable=tuple(run.not_applicable),
        started_at=started, duration_s=time.perf_counter() - t0,
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m harness.worker PLAN.json RECORD.json", file=sys.stderr)
        return 2
    tie_to_parent()  # never outlive the zoo process that started this cell
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
