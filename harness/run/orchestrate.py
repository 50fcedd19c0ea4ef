"""Plan a benchmark matrix, run each cell in its own worker process, and store every record as
soon as its cell ends."""

from __future__ import annotations

import itertools
import os
import sys
import traceback
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import zoo
from zoo.checkpoints import CheckpointError, locate_checkpoint, search_path
from zoo.contract import DEVICES, PRECISIONS, Framework, Runtime, Support
from zoo.models.spec import parse_freeze

from harness.measure import machine, peak
from harness.run.executors.local import run_cell
from harness.results.repeats import merge_repeats
from harness.plan.cells import Cell, CellPlan, Settings
from harness.plugins.manager import PluginHost
from harness.results.records import CellRecord, ErrorInfo, record_to_dict, record_to_json
from harness.plugins.registry import Provided, Registry
from harness.results.store import RunStore, StoreError, new_run_id, utc_now

DEFAULT_TASK = "digits"
DEFAULT_MODELS = ("mlp", "cnn")


class PlanError(ValueError):
    """The request cannot be run as given; the message says how to fix it."""


@dataclass(frozen=True)
class BenchRequest:
    """What ``zoo bench`` was asked to do. ``None`` means "the task's recipe decides"."""

    frameworks: Sequence[str] = ()  # empty = every installed framework
    models: Sequence[str] = DEFAULT_MODELS
    tasks: Sequence[str] = (DEFAULT_TASK,)
    device: str = "cpu"
    precisions: Sequence[str] = ("fp32",)
    batch_size: int | None = None
    epochs: int | None = None
    learning_rate: float | None = None
    freeze: str | None = None
    init: str = "pretrained"
    threads: int = field(default_factory=lambda: len(os.sched_getaffinity(0)))
    seed: int = 0
    windows: int = 5
    window_steps: int = 0
    warmup_cap: int = 50
    repeats: int = 1  # worker processes per cell, merged into one record (harness.results.repeats)
    timeout_s: float = 900.0
    results_dir: Path = Path("results")
    run_id: str = ""
    checkpoint_dir: str = ""  # searched before the user's and the shipped checkpoints
    checkpoint: str = ""  # start every cell of its model from this checkpoint (else the task's)
    trigger: str = "manual"


@dataclass(frozen=True)
class PlannedCell:
    cell: Cell
    plan: CellPlan | None  # None when skipped
    skip_reason: str = ""


def _check_choice(kind: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise PlanError(f"unknown {kind} {value!r}; choose one of: {', '.join(allowed)}")


def resolve_frameworks(names: Sequence[str], registry: Registry) -> list[tuple[Provided[Framework], str]]:
    """``["pytorch:compile", "tf", ...]`` -> (framework, variant) pairs; the adapter's default
    variant is stored as ``""`` so that ``torch`` and ``torch:eager`` are the same cell."""
    out: dict[tuple[str, str], tuple[Provided[Framework], str]] = {}
    for spec in names or sorted(registry.frameworks):
        name, _, variant = spec.partition(":")
        provided = registry.framework(name)
        variants = list(provided.item.variants)
        if variant and variant not in variants:
            raise PlanError(f"framework {provided.item.name!r} has no variant {variant!r}; "
                            f"it offers: {', '.join(variants)}")
        variant = "" if not variant or variant == variants[0] else variant
        out.setdefault((provided.item.name, variant), (provided, variant))
    return list(out.values())


def plan_cells(request: BenchRequest, registry: Registry, run_id: str) -> list[PlannedCell]:
    """Expand the request into cells, resolving names (aliases, variants, suggestions) and
    asking each adapter whether it supports the cell. Raises :class:`PlanError` or
    :class:`~harness.plugins.registry.UnknownName` before anything runs."""
    if not registry.frameworks:
        raise PlanError(no_framework_message(registry))
    _check_choice("device", request.device, DEVICES)
    for precision in request.precisions:
        _check_choice("precision", precision, PRECISIONS)
    if request.freeze is not None:
        try:
            parse_freeze(request.freeze)
        except ValueError as exc:
            raise PlanError(str(exc)) from None
    _check_choice("init", request.init, ("pretrained", "scratch"))
    for name, value in (("batch size", request.batch_size), ("epochs", request.epochs)):
        if value is not None and value < 1:
            raise PlanError(f"{name} must be at least 1, got {value}")
    if request.threads < 1 or request.windows < 1 or request.timeout_s <= 0 or request.window_steps < 0 \
            or request.warmup_cap < 1 or request.repeats < 1:
        raise PlanError("--threads, --windows, --warmup-cap and --repeats must be at least 1, --window-steps at least 0 "
                        "and --timeout positive")
    frameworks = resolve_frameworks(request.frameworks, registry)
    models = [registry.model(m) for m in request.models]
    tasks = [registry.task(t) for t in request.tasks]

    planned = []
    for task_p, model_p, precision, (fw_p, variant) in itertools.product(tasks, models, request.precisions, frameworks):
        task, spec, adapter = task_p.item, model_p.item, fw_p.item
        recipe = task.recipe
        settings = Settings(
            epochs=request.epochs or recipe.epochs,
            learning_rate=request.learning_rate or recipe.learning_rate,
            threads=request.threads, seed=request.seed, windows=request.windows,
            window_steps=request.window_steps, warmup_cap=request.warmup_cap,
            checkpoint_dir=str(Path(request.checkpoint_dir).resolve()) if request.checkpoint_dir else "",
            target_accuracy=task.target_accuracy or 0.0,
        )
        checkpoint = (request.checkpoint or task.checkpoint_for(spec.name) or "") if request.init == "pretrained" else ""
        # a model without a zoo checkpoint for this task starts from random weights, and says so
        cell = Cell(adapter.name, spec.name, task.name, request.device, precision,
                    request.batch_size or recipe.batch_size, request.freeze or recipe.freeze,
                    "pretrained" if checkpoint else "scratch", variant)
        try:  # a last-N policy must fit the model: fail before measuring, not in the worker
            spec.trainable_names(cell.freeze, task.input_shape, task.num_classes)
        except ValueError as exc:
            raise PlanError(str(exc)) from None
        support = adapter.supports(spec, request.device, precision)
        if support.ok and request.checkpoint:
            support = _checkpoint_fits(request, spec.name)
        if not support.ok:
            planned.append(PlannedCell(cell, None, support.reason))
            continue
        runtime = Runtime(request.device, precision, request.threads, request.seed, variant=variant)
        plan = CellPlan(
            run_id=run_id, cell=cell, settings=settings,
            modules=tuple(dict.fromkeys([fw_p.origin.module, model_p.origin.module, task_p.origin.module])),
            checkpoint=checkpoint,
            env={**thread_env(request.threads), **adapter.subprocess_env(runtime)},
        )
        planned.append(PlannedCell(cell, plan))
    return planned


def _checkpoint_fits(request: BenchRequest, model: str) -> Support:
    """``--checkpoint NAME`` applies to the cells of its own model; it must exist."""
    try:
        entry, _ = locate_checkpoint(request.checkpoint, search_path(request.checkpoint_dir))
    except CheckpointError as exc:
        raise PlanError(str(exc)) from None
    if entry.model != model:
        return Support.no(f"checkpoint {entry.name!r} is for model {entry.model!r}, not {model!r}")
    return Support.yes()


def thread_env(threads: int) -> dict[str, str]:
    """The generic thread-pool settings every worker gets, whatever its framework."""
    n = str(threads)
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n}


def no_framework_message(registry: Registry) -> str:
    lines = [
        "no framework plugin is installed, so there is nothing to benchmark.",
        "Install one or more, for example:  pip install zoo-torch zoo-tf zoo-jax",
        "(from a checkout: pip install -e plugins/zoo-torch; or run `make bench`, which sets up everything)",
    ]
    for failure in registry.problems:
        lines.append(f"plugin {failure.name} ({failure.distribution}) failed to load: {failure.error}")
    return "\n".join(lines)


@dataclass(frozen=True)
class CellEvent:
    """Progress of a run, for displays: a cell starts ("start") or has its record ("end")."""

    kind: str
    cell: Cell
    index: int  # 0-based position in the run
    total: int
    record: CellRecord | None = None  # with --repeats, this repeat's record
    repeat: int = 1  # which of the cell's ``repeats`` worker processes (1-based)
    repeats: int = 1


Event = Callable[[CellEvent], None]


@dataclass
class RunOutcome:
    store: RunStore
    records: list[CellRecord]  # the records of this invocation, in order
    interrupted: bool = False
    store_error: str = ""  # the results could not be written (disk full): the run stopped
    unsaved: str = ""  # the JSON of the record that could not be written, so it is not lost
    already_done: list[CellRecord] = field(default_factory=list)  # --resume: kept from before
    quietness: dict = field(default_factory=dict)  # the matmul probe at the run's start and end


def _new_manifest(request: BenchRequest, planned: list[PlannedCell], host: PluginHost, run_id: str) -> dict:
    stable = machine.stable_info()
    return {
        "schema_version": 1,
        "run_id": run_id,
        "trigger": request.trigger,
        "started_at": utc_now(),
        "status": "running",
        "harness": {"zoo_bench": zoo.__version__, "contract_version": zoo.CONTRACT_VERSION, **machine.harness_commit()},
        "machine": {"fingerprint": machine.fingerprint(stable), "stable": stable, "volatile": machine.volatile_info()},
        "request": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(request).items()},
        "cells": [p.cell.key for p in planned],
        "plugins": {name: asdict(origin) for name, origin in host.origins.items()},
    }


def request_from_manifest(results_dir: Path, run_id: str) -> BenchRequest:
    """The request an earlier run was started with, for ``zoo bench --resume``."""
    manifest = RunStore.existing(results_dir, run_id).read_manifest()
    fields = dict(manifest["request"])
    fields["results_dir"] = Path(results_dir)
    fields["run_id"] = run_id
    known = set(BenchRequest.__dataclass_fields__)
    return BenchRequest(**{k: v for k, v in fields.items() if k in known})


def run_bench(request: BenchRequest, registry: Registry, host: PluginHost,
              on_event: Event | None = None, resume: bool = False) -> RunOutcome:
    """Run every planned cell, one at a time, storing each record as it finishes (with
    ``request.repeats`` > 1: in rounds, each cell's record merged from its repeats after the last).

    With ``resume``, ``request.run_id`` names an earlier run in ``request.results_dir``: cells
    whose latest record is ok or skipped are kept, the others (missing, failed, timeout) run again
    and their new records are appended (the latest record of a cell is the one that counts)."""
    run_id = request.run_id or new_run_id()
    planned = plan_cells(request, registry, run_id)
    if resume:
        store = RunStore.existing(request.results_dir, run_id)
        manifest = store.read_manifest()
        here = machine.fingerprint()
        if manifest["machine"]["fingerprint"] != here:
            raise PlanError(
                f"run {run_id} was measured on another machine (fingerprint {manifest['machine']['fingerprint']}, "
                f"this one is {here}); results from two machines are not comparable, so start a new run"
            )
        latest = store.latest_records()
        done = [latest[p.cell.key] for p in planned if p.cell.key in latest
                and latest[p.cell.key].status in ("ok", "skipped")]
        done_keys = {r.cell.key for r in done}
        planned = [p for p in planned if p.cell.key not in done_keys]
        manifest.setdefault("resumed", []).append({"at": utc_now(), "cells": [p.cell.key for p in planned]})
        manifest["status"] = "running"
    else:
        store = RunStore(request.results_dir, run_id)  # fails here, before measuring, if unwritable
        manifest = _new_manifest(request, planned, host, run_id)
        done = []
        store.write_manifest(manifest)
        manifest["peaks"] = measure_peaks(planned, request.threads)
        start = manifest["peaks"].get("cpu/fp32") or asdict(peak.measure("cpu", "fp32", request.threads))
        manifest["quietness"] = {"start_gflops": start["gflops"]}
    planned = with_peaks(planned, manifest.get("peaks", {}))
    store.write_manifest(manifest)
    emit = on_event or (lambda _event: None)
    outcome = RunOutcome(store, [], already_done=done)
    repeats = request.repeats  # at least 1: plan_cells refuses less
    runs: dict[str, list[CellRecord]] = {p.cell.key: [] for p in planned}
    total = len(planned) * repeats
    try:
        # With --repeats, round r runs every cell's r-th repeat: a cell's processes are spread over
        # the whole run, so a slow spell of the machine hits one repeat of several cells rather
        # than every repeat of one (harness/repeats.py).
        for index, (r, p) in enumerate((r, p) for r in range(repeats) for p in planned):
            key = p.cell.key
            if r > 0 and (p.plan is None or runs[key][-1].status != "ok"):
                continue  # skipped, or failed in an earlier repeat: its record is already stored
            emit(CellEvent("start", p.cell, index, total, repeat=r + 1, repeats=repeats))
            try:
                record = _run_one(p, request, registry, store, run_id, repeat=r)
            except OSError as exc:  # no room for the cell's plan or log: nothing measured yet
                outcome.store_error = (
                    f"cannot start cell {key} in {store.dir}: {exc.strerror or exc}; free some space, "
                    f"then `zoo bench --resume {run_id}` runs the cells that are missing")
                break
            runs[key].append(record)
            final = r == repeats - 1 or p.plan is None or record.status != "ok"
            cell_record = merge_repeats(runs[key], repeats) if final else None
            try:
                if repeats > 1 and p.plan is not None:
                    store.append_repeat(record)
                if cell_record is not None:
                    store.append(cell_record)
            except StoreError as exc:
                outcome.store_error, outcome.unsaved = str(exc), record_to_json(cell_record or record)
                break
            if cell_record is not None:
                outcome.records.append(cell_record)
                notify_observers(host, cell_record)
            emit(CellEvent("end", p.cell, index, total, record, repeat=r + 1, repeats=repeats))
    except KeyboardInterrupt:
        outcome.interrupted = True
    if outcome.store_error:
        manifest["status"] = "failed"
        manifest["error"] = outcome.store_error
    else:
        manifest["status"] = "interrupted" if outcome.interrupted else "completed"
    manifest["finished_at"] = utc_now()
    if outcome.records and not outcome.store_error and not outcome.interrupted:  # Ctrl-C: no more waiting
        manifest["quietness"] = outcome.quietness = quietness(
            manifest.get("quietness", {}).get("start_gflops", 0.0), request.threads)
    try:
        store.write_manifest(manifest)
        (store.dir / "work").rmdir()
    except OSError:
        pass  # a full disk: the records already written are intact; the message says what to do
    return outcome


def measure_peaks(planned: list[PlannedCell], threads: int) -> dict[str, dict]:
    """The device peak for every (device, precision) the run uses, keyed ``"cpu/fp32"``."""
    pairs = sorted({(p.cell.device, p.cell.precision) for p in planned if p.plan is not None})
    return {f"{device}/{precision}": asdict(peak.measure(device, precision, threads)) for device, precision in pairs}


#: A change of the matmul probe between a run's start and end beyond this says the machine was busy.
QUIET_CHANGE = 0.05


def quietness(start_gflops: float, threads: int) -> dict:
    """The CPU matmul probe of :mod:`harness.measure.peak` measured again at the end of a run and set
    beside its value at the start: a machine whose speed changed during the run was not quiet,
    and its numbers shifted with it (an input to ``zoo bench``'s warning, kept in the manifest)."""
    end = peak.measure("cpu", "fp32", threads).gflops
    change = end / start_gflops - 1 if start_gflops > 0 and end > 0 else None
    return {"probe": "best of 5 numpy float32 2048x2048 matmuls", "start_gflops": start_gflops, "end_gflops": end,
            "change": change, "quiet": None if change is None else abs(change) <= QUIET_CHANGE}


def with_peaks(planned: list[PlannedCell], peaks: dict[str, dict]) -> list[PlannedCell]:
    out = []
    for p in planned:
        found = peaks.get(f"{p.cell.device}/{p.cell.precision}", {})
        if p.plan is not None and found.get("gflops"):
            p = replace(p, plan=replace(p.plan, settings=replace(p.plan.settings, peak_gflops=found["gflops"])))
        out.append(p)
    return out


def _run_one(p: PlannedCell, request: BenchRequest, registry: Registry, store: RunStore, run_id: str,
             repeat: int = 0) -> CellRecord:
    if p.plan is None:
        return CellRecord(run_id, p.cell, "skipped", error=ErrorInfo("plan", "Unsupported", p.skip_reason),
                          started_at=utc_now())
    log = store.log_path(p.cell.key if repeat == 0 else f"{p.cell.key}.repeat{repeat + 1}")
    record = run_cell(p.plan, store.dir / "work", log, request.timeout_s)
    origin = registry.frameworks[p.cell.framework].origin
    return replace(record, environment={
        **record.environment,
        "plugin": {"distribution": origin.distribution, "version": origin.version},
        "machine": machine.record_info(),
        "peak_gflops": p.plan.settings.peak_gflops,
    })


def notify_observers(host: PluginHost, record: CellRecord) -> None:
    """Call every ``zoo_result`` observer; one that raises is reported and the rest still run."""
    data = record_to_dict(record)
    for impl in host.pm.hook.zoo_result.get_hookimpls():
        try:
            impl.function(record=data)
        except Exception:
            origin = host.origin_of(impl.plugin)
            print(f"warning: zoo_result observer of plugin {origin.name} ({origin.distribution}) raised:\n"
                  f"{traceback.format_exc()}", file=sys.stderr)
