"""Expand a :class:`~harness.plan.request.BenchRequest` into cells: resolve names (aliases,
variants, suggestions), validate every setting, ask each adapter whether it supports the cell,
and build the :class:`~harness.plan.cells.CellPlan` a worker needs. Nothing here runs a cell."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping, Sequence

from zoo.checkpoints import CheckpointError, locate_checkpoint, search_path
from zoo.checks import ContractViolation, check_task_inputs
from zoo.contract import DEVICES, PRECISIONS, Framework, Runtime, Support, input_support
from zoo.models.spec import parse_freeze
from zoo.threads import thread_env

from harness.measure.trackers import BUILTIN_TRACKERS
from harness.plan.cells import Cell, CellPlan, Settings
from harness.plan.interpreters import Interpreter, Query, probe
from harness.plan.placement import Placement, cell_env, resolve_placement
from harness.plan.request import BenchRequest, PlanError
from harness.plan.validate import check_env_label, validate_request
from harness.plugins.registry import Provided, Registry


@dataclass(frozen=True)
class PlannedCell:
    cell: Cell
    plan: CellPlan | None  # None when skipped
    skip_reason: str = ""
    interpreter: Interpreter | None = None  # the --python interpreter that runs it (None: zoo's own)


@dataclass(frozen=True)
class FrameworkChoice:
    """One entry of ``-f``: the adapter, its variant ("" = default) and environment label."""

    provided: Provided[Framework]
    variant: str = ""
    env_label: str = ""

    @property
    def environment(self) -> str:
        """``name`` or ``name@label``: what ``--python`` keys name."""
        name = self.provided.item.name
        return f"{name}@{self.env_label}" if self.env_label else name


def _check_choice(kind: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise PlanError(f"unknown {kind} {value!r}; choose one of: {', '.join(allowed)}")


def resolve_frameworks(names: Sequence[str], registry: Registry) -> list[FrameworkChoice]:
    """``["pytorch:compile", "torch@2.12", "tf", ...]`` -> :class:`FrameworkChoice` s; the
    adapter's default variant is stored as ``""`` so that ``torch`` and ``torch:eager`` are the
    same cell. ``NAME@LABEL`` is the framework in another environment (``--python NAME@LABEL=PATH``)."""
    out: dict[tuple[str, str, str], FrameworkChoice] = {}
    for spec in names or sorted(registry.frameworks):
        named, _, variant = spec.partition(":")
        name, at, label = named.partition("@")
        if "@" in variant:
            raise PlanError(f"-f {spec}: write the environment label before the variant, e.g. "
                            f"{name}@{variant.partition('@')[2]}:{variant.partition('@')[0]}")
        if at:
            check_env_label(spec, label)
        provided = registry.framework(name)
        variants = list(provided.item.variants)
        if variant and variant not in variants:
            raise PlanError(f"framework {provided.item.name!r} has no variant {variant!r}; "
                            f"it offers: {', '.join(variants)}")
        variant = "" if not variant or variant == variants[0] else variant
        out.setdefault((provided.item.name, label, variant), FrameworkChoice(provided, variant, label))
    return list(out.values())


def resolve_pythons(pythons: Mapping[str, str], frameworks: Sequence[FrameworkChoice],
                    registry: Registry) -> dict[str, str]:
    """``--python`` keys (aliases allowed) -> the interpreter of each environment this run uses,
    keyed ``name`` or ``name@label``, paths made absolute (not resolved: a venv's ``python`` is a
    link out of the venv). Every label of ``-f`` needs one; every ``--python`` must be used."""
    used = {choice.environment for choice in frameworks}
    out: dict[str, str] = {}
    for key, path in pythons.items():
        name, at, label = key.partition("@")
        canonical = registry.framework(name).item.name + (f"@{label}" if at else "")
        if canonical not in used:
            raise PlanError(f"--python {key}={path}: this run has no {canonical} cells (its frameworks: "
                            f"{', '.join(sorted(used))}); add it to -f, or drop this --python")
        out[canonical] = os.path.abspath(os.path.expanduser(str(path)))
    for choice in frameworks:
        if choice.env_label and choice.environment not in out:
            raise PlanError(f"-f {choice.environment}: a label names another environment of "
                            f"{choice.provided.item.name}; say which interpreter runs it: --python "
                            f"{choice.environment}=/path/to/that/env/bin/python")
    return out


def plan_cells(request: BenchRequest, registry: Registry, run_id: str,
               placement: Placement | None = None) -> list[PlannedCell]:
    """Expand the request into cells, resolving names (aliases, variants, labels, suggestions)
    and asking each adapter whether it supports the cell: the adapter of this environment, or
    for a framework given ``--python``, the adapter in that interpreter (checked here, one probe
    per interpreter). ``placement`` is the run's, already resolved by the caller; without one
    the request's is resolved (and so checked) here. Raises :class:`PlanError` or
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
    pythons = resolve_pythons(request.pythons, frameworks, registry)
    models = [registry.model(m) for m in request.models]
    tasks = [registry.task(t) for t in request.tasks]
    trackers, tracker_modules = cell_trackers(registry)
    if placement is None:  # the GPUs of the run: refused here when this machine cannot honour them
        resolve_placement(request)

    planned = []
    for task_p, model_p, precision, choice, feed in itertools.product(tasks, models, request.precisions, frameworks,
                                                                     request.feeds):
        fw_p, variant = choice.provided, choice.variant
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
                    "pretrained" if checkpoint else "scratch", variant, choice.env_label,
                    "" if feed == "device" else feed)  # the default feed keeps the key it always had
        try:  # a last-N policy must fit the model: fail before measuring, not in the worker
            spec.trainable_names(cell.freeze, task.input_shape, task.num_classes)
        except ValueError as exc:
            raise PlanError(str(exc)) from None
        python = pythons.get(choice.environment, "")
        # a framework in another interpreter is asked there (_ask_interpreters): its build may differ
        support = _inputs_fit(adapter, spec, task) or (
            Support.yes() if python else adapter.supports(spec, request.device, precision))
        if support.ok and request.checkpoint:
            support = _checkpoint_fits(request, spec.name)
        if support.ok:
            support = feed_support(adapter, feed)
        if not support.ok:
            planned.append(PlannedCell(cell, None, support.reason))
            continue
        runtime = Runtime(request.device, precision, request.threads, request.seed, variant=variant, feed=feed)
        plan = CellPlan(
            run_id=run_id, cell=cell, settings=settings,
            modules=tuple(dict.fromkeys([fw_p.origin.module, model_p.origin.module, task_p.origin.module,
                                         *tracker_modules])),
            checkpoint=checkpoint,
            env={**thread_env(request.threads), **adapter.subprocess_env(runtime), **cell_env(request.device)},
            trackers=trackers,
            python=python,
        )
        planned.append(PlannedCell(cell, plan))
    planned = _ask_interpreters(planned, pythons, registry, request)
    if request.only_cells:
        wanted = set(request.only_cells)
        planned = [p for p in planned if p.cell.key in wanted]
        missing = wanted - {p.cell.key for p in planned}
        if missing:
            raise PlanError(f"cells not in this matrix: {', '.join(sorted(missing))}")
    return planned


def _ask_interpreters(planned: list[PlannedCell], pythons: Mapping[str, str], registry: Registry,
                      request: BenchRequest) -> list[PlannedCell]:
    """Probe each ``--python`` interpreter once (:func:`harness.plan.interpreters.probe`) and let
    its environment's adapter decide its cells: supported or skipped (its reason), and the
    worker variables it asks for (``subprocess_env``)."""
    out = list(planned)
    for path in dict.fromkeys(pythons.values()):
        mine = [i for i, p in enumerate(out) if p.plan is not None and p.plan.python == path]
        if not mine:
            continue  # every cell of that environment was refused before it mattered (inputs, checkpoint)
        spec = next(k for k, v in pythons.items() if v == path)
        modules = list(dict.fromkeys(m for i in mine for m in out[i].plan.modules if m != "zoo.builtin"))
        distributions = list(dict.fromkeys(
            registry.frameworks[out[i].cell.framework].origin.distribution for i in mine))
        distributions = [d for d in distributions if not d.startswith("(") and d != "zoo-bench"]
        queries = [Query(out[i].cell.framework, out[i].cell.model, out[i].cell.device, out[i].cell.precision,
                         request.threads, request.seed, out[i].cell.variant) for i in mine]
        found = probe(spec, path, modules, distributions, queries)
        answers = found.answers if len(found.answers) == len(mine) else (None,) * len(mine)
        for i, answer in zip(mine, answers):
            p = out[i]
            if answer is None:
                out[i] = PlannedCell(p.cell, p.plan, interpreter=found)
            elif not answer.ok:
                out[i] = PlannedCell(p.cell, None, f"{answer.reason} (in {path})", interpreter=found)
            else:
                env = {**thread_env(request.threads), **answer.env, **cell_env(p.cell.device)}
                out[i] = PlannedCell(p.cell, replace(p.plan, env=env), interpreter=found)
    return out


def cell_trackers(registry: Registry) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The trackers every cell runs (the built-ins, then those plugins registered) and the plugin
    modules the worker must import for them and for the metric definitions plugins add (so the
    worker's catalogue knows their units)."""
    plugin = dict(registry.trackers)
    names = tuple(dict.fromkeys([*BUILTIN_TRACKERS, *plugin]))
    modules = [p.origin.module for p in plugin.values()] + [p.origin.module for p in registry.metrics.values()]
    return names, tuple(dict.fromkeys(modules))


def feed_support(adapter: Framework, feed: str) -> Support:
    """Whether ``adapter`` implements ``feed`` (``--feed``): it lists it in :attr:`Framework.feeds`
    (a class attribute, read without importing the framework); an adapter written before feeds
    existed has the contract's default, ``("device",)``."""
    feeds = tuple(getattr(adapter, "feeds", ("device",)))
    if feed in feeds:
        return Support.yes()
    return Support.no(f"{adapter.name} does not implement the {feed!r} feed (it offers: {', '.join(feeds)}); "
                      f"its cells run with --feed {feeds[0]}")


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

