"""Expand a :class:`~harness.plan.request.BenchRequest` into cells: resolve names (aliases,
variants, suggestions), validate every setting, ask each adapter whether it supports the cell,
and build the :class:`~harness.plan.cells.CellPlan` a worker needs. Nothing here runs a cell."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from zoo.checkpoints import CheckpointError, locate_checkpoint, search_path
from zoo.checks import ContractViolation, check_task_inputs
from zoo.contract import DEVICES, PRECISIONS, Framework, Runtime, Support, input_support
from zoo.models.spec import parse_freeze
from zoo.threads import thread_env

from harness.measure.trackers import BUILTIN_TRACKERS
from harness.plan.cells import Cell, CellPlan, Settings
from harness.plan.request import BenchRequest, PlanError
from harness.plan.validate import validate_request
from harness.plugins.registry import Provided, Registry

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
    validate_request(request)
    frameworks = resolve_frameworks(request.frameworks, registry)
    models = [registry.model(m) for m in request.models]
    tasks = [registry.task(t) for t in request.tasks]
    trackers, tracker_modules = cell_trackers(registry)

    planned = []
    for task_p, model_p, precision, (fw_p, variant) in itertools.product(tasks, models, request.precisions, frameworks):
        task, spec, adapter = task_p.item, model_p.item, fw_p.item
        recipe = task.recipe
        settings = Settings(
            epochs=recipe.epochs if request.epochs is None else request.epochs,
            learning_rate=recipe.learning_rate if request.learning_rate is None else request.learning_rate,
            threads=request.threads, seed=request.seed, windows=request.windows,
            window_steps=request.window_steps, warmup_cap=request.warmup_cap,
            checkpoint_dir=str(Path(request.checkpoint_dir).resolve()) if request.checkpoint_dir else "",
            target_accuracy=task.target_accuracy or 0.0,
        )
        checkpoint = (request.checkpoint or task.checkpoint_for(spec.name) or "") if request.init == "pretrained" else ""
        # a model without a zoo checkpoint for this task starts from random weights, and says so
        cell = Cell(adapter.name, spec.name, task.name, request.device, precision,
                    recipe.batch_size if request.batch_size is None else request.batch_size, request.freeze or recipe.freeze,
                    "pretrained" if checkpoint else "scratch", variant)
        try:  # a last-N policy must fit the model: fail before measuring, not in the worker
            spec.trainable_names(cell.freeze, task.input_shape, task.num_classes)
        except ValueError as exc:
            raise PlanError(str(exc)) from None
        support = _inputs_fit(adapter, spec, task) or adapter.supports(spec, request.device, precision)
        if support.ok and request.checkpoint:
            support = _checkpoint_fits(request, spec.name)
        if not support.ok:
            planned.append(PlannedCell(cell, None, support.reason))
            continue
        runtime = Runtime(request.device, precision, request.threads, request.seed, variant=variant)
        plan = CellPlan(
            run_id=run_id, cell=cell, settings=settings,
            modules=tuple(dict.fromkeys([fw_p.origin.module, model_p.origin.module, task_p.origin.module,
                                         *tracker_modules])),
            checkpoint=checkpoint,
            env={**thread_env(request.threads), **adapter.subprocess_env(runtime)},
            trackers=trackers,
        )
        planned.append(PlannedCell(cell, plan))
    if request.only_cells:
        wanted = set(request.only_cells)
        planned = [p for p in planned if p.cell.key in wanted]
        missing = wanted - {p.cell.key for p in planned}
        if missing:
            raise PlanError(f"cells not in this matrix: {', '.join(sorted(missing))}")
    return planned


def cell_trackers(registry: Registry) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The trackers every cell runs (the built-ins, then those plugins registered) and the plugin
    modules the worker must import for them and for the metric definitions plugins add (so the
    worker's catalogue knows their units)."""
    plugin = dict(registry.trackers)
    names = tuple(dict.fromkeys([*BUILTIN_TRACKERS, *plugin]))
    modules = [p.origin.module for p in plugin.values()] + [p.origin.module for p in registry.metrics.values()]
    return names, tuple(dict.fromkeys(modules))


def _inputs_fit(adapter: Framework, spec, task) -> Support | None:
    """A skip reason when the task's inputs are not the model's, or the adapter's contract
    predates them (contract 2 knows only NHWC images); ``None`` when they fit."""
    try:
        check_task_inputs(spec, task)
    except ContractViolation as exc:
        return Support.no(str(exc))
    fits = input_support(adapter, spec.inputs(task.input_shape))
    return None if fits.ok else fits


def _checkpoint_fits(request: BenchRequest, model: str) -> Support:
    """``--checkpoint NAME`` applies to the cells of its own model; it must exist."""
    try:
        entry, _ = locate_checkpoint(request.checkpoint, search_path(request.checkpoint_dir))
    except CheckpointError as exc:
        raise PlanError(str(exc)) from None
    if entry.model != model:
        return Support.no(f"checkpoint {entry.name!r} is for model {entry.model!r}, not {model!r}")
    return Support.yes()


def no_framework_message(registry: Registry) -> str:
    lines = [
        "no framework plugin is installed, so there is nothing to benchmark.",
        "Install one or more, for example:  pip install zoo-torch zoo-tf zoo-jax",
        "(from a checkout: pip install -e plugins/zoo-torch; or run `make bench`, which sets up everything)",
    ]
    for failure in registry.problems:
        lines.append(f"plugin {failure.name} ({failure.distribution}) failed to load: {failure.error}")
    return "\n".join(lines)

