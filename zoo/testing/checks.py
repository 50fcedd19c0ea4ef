"""The checks that exercise an adapter in this process, each a plain function of a
:class:`~zoo.testing.context.Context` returning its :class:`~zoo.testing.report.CheckResult` list
(the fine-tune check is in :mod:`zoo.testing.training`, the sync check in :mod:`zoo.testing.sync`).

Every check loads what it needs itself (a fresh model from canonical weights), so any subset
can run in any order; the runner only skips later checks when discovery or ``prepare`` failed.
"""

from __future__ import annotations

import json
import re
from importlib import metadata
from typing import Any, Mapping

import numpy as np

import zoo
from zoo import checks as contract
from zoo.batching import eval_order
from zoo.contract import EvalData, FrameworkInfo, Support
from zoo.init import init_weights
from zoo.models.inputs import batch_form, is_single_image, rows, select
from zoo.models.spec import ModelSpec
from zoo.testing.context import LOGIT_TOLERANCE, Context, Failed, RecordingMeter, run_subject
from zoo.testing.reference import check_data, random_inputs, shape_label, start_weights
from zoo.testing.report import FAILED, NOT_APPLICABLE, SKIPPED, CheckResult

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_.-]*$")
#: Classes of the odd input (``spec.example_shapes().odd``, for images 9x9x3: three channels make
#: the flatten order matter, an odd size makes stride-2 'SAME' padding asymmetric): 7 classes make
#: the head size matter.
ODD_CLASSES = 7


# -- helpers: the contract checks of zoo.checks, strict ----------------------------------------

def valid_logits(out: Any, rows: int, classes: int, method: str = "evaluate") -> np.ndarray:
    """:func:`zoo.checks.check_logits`, strict: a float32 NumPy array of the right shape."""
    return contract.check_logits(out, rows, classes, "", method=method, strict=True)


def evaluate(ctx: Context, model: Any, x: Any, batch_size: int, classes: int,
             meter: RecordingMeter | None = None) -> np.ndarray:
    """``evaluate`` on ``x`` (the batch form: an array, or a dict of arrays) in batches."""
    data = EvalData(x, eval_order(rows(x), batch_size))
    out = ctx.call("evaluate", model, data, meter if meter is not None else RecordingMeter())
    return valid_logits(out, data.num_rows, classes)


def export(ctx: Context, spec: ModelSpec, model: Any, shape: tuple[int, ...],
           classes: int) -> dict[str, np.ndarray]:
    return contract.check_exported_weights(spec, ctx.call("export_weights", model), shape, classes, strict=True)


def max_error(logits: np.ndarray, reference: np.ndarray) -> float:
    return float(np.abs(logits.astype(np.float64) - reference).max())


def needs_load(ctx: Context, check: str, spec: ModelSpec) -> CheckResult | None:
    if spec.name not in ctx.load_failed:
        return None
    return CheckResult(check, spec.name, SKIPPED, f"needs load_pretrained, which failed for {spec.name} (see load)")


def supported_models(ctx: Context, check: str) -> tuple[list[ModelSpec], list[CheckResult]]:
    specs, results = [], []
    for spec, reason in ctx.supported():
        if reason:
            results.append(CheckResult(check, spec.name, NOT_APPLICABLE, f"supports() says no: {reason}"))
        elif (skip := needs_load(ctx, check, spec)) is not None:
            results.append(skip)
        else:
            specs.append(spec)
    return specs, results


# -- plan: what the `zoo` command reads without importing the framework ----------------------

def check_plan(ctx: Context) -> list[CheckResult]:
    def body() -> str:
        a, problems = ctx.adapter, []
        if not isinstance(a.name, str) or not NAME_PATTERN.match(a.name):
            problems.append(f"name {a.name!r} must be lowercase letters, digits, '_', '.', '-' (it is typed "
                            "on the command line and used in file names)")
        if not all(isinstance(x, str) for x in a.aliases) or not isinstance(a.aliases, tuple):
            problems.append(f"aliases must be a tuple of strings, got {a.aliases!r}")
        for package in a.packages:
            try:
                metadata.version(package)
            except metadata.PackageNotFoundError:
                problems.append(f"packages lists {package!r}, which is not an installed distribution "
                                "(packages are distribution names whose versions are recorded)")
        if not isinstance(a.contract_version, int) or a.contract_version > zoo.CONTRACT_VERSION:
            problems.append(f"contract_version {a.contract_version!r}: this zoo-bench implements "
                            f"{zoo.CONTRACT_VERSION}")
        if not isinstance(a.can_train, bool):
            problems.append(f"can_train must be True or False, got {a.can_train!r}")
        env = a.subprocess_env(ctx.runtime)
        if not isinstance(env, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            problems.append(f"subprocess_env must return a mapping of strings to strings, got {env!r}")
        supported = []
        for spec in ctx.models:
            answer = a.supports(spec, ctx.device, ctx.precision)
            if not isinstance(answer, Support):
                problems.append(f"supports({spec.name!r}, ...) returned {answer!r}; return Support.yes() "
                                "or Support.no(reason)")
            elif answer.ok:
                supported.append(spec.name)
        if not supported and not problems:
            problems.append(f"supports() accepts none of the zoo's models ({', '.join(s.name for s in ctx.models)}) "
                            f"on {ctx.device}/{ctx.precision}, so nothing can be benchmarked")
        if problems:
            raise Failed("; ".join(problems))
        kind = "trains and evaluates" if a.can_train else "inference-only (can_train = False)"
        return (f"{a.name!r} ({a.display_name or 'no display_name'}), {kind}, supports "
                f"{', '.join(supported)} on {ctx.device}/{ctx.precision}")

    return [run_subject(ctx, "plan", "", body)]


# -- info ------------------------------------------------------------------------------------

def check_info(ctx: Context) -> list[CheckResult]:
    def body() -> str:
        info = ctx.call("info")
        if not isinstance(info, FrameworkInfo):
            raise Failed(f"info() returned {type(info).__name__}, expected zoo.contract.FrameworkInfo")
        problems = []
        if info.name != ctx.adapter.name:
            problems.append(f"info().name is {info.name!r}, but the adapter's name is {ctx.adapter.name!r}")
        if not info.versions or not all(isinstance(k, str) and isinstance(v, str) for k, v in info.versions.items()):
            problems.append(f"info().versions must name at least one package and its version as strings, got "
                            f"{dict(info.versions)!r}")
        if ctx.device not in info.devices:
            problems.append(f"info().devices is {list(info.devices)}, without {ctx.device!r}: the host refuses "
                            "the cell")
        try:
            json.dumps({"versions": dict(info.versions), "devices": list(info.devices), "details": dict(info.details)},
                       allow_nan=True)
        except (TypeError, ValueError) as exc:
            problems.append(f"info() must be JSON-serialisable, it is written into every record ({exc})")
        if problems:
            raise Failed("; ".join(problems))
        versions = ", ".join(f"{k} {v}" for k, v in info.versions.items())
        return f"{versions}; devices {', '.join(info.devices)}"

    return [run_subject(ctx, "info", "", body)]


# -- load: the canonical checkpoint gives the reference logits -------------------------------

def check_load(ctx: Context) -> list[CheckResult]:
    results = []
    for spec, reason in ctx.supported():
        if reason:
            results.append(CheckResult("load", spec.name, NOT_APPLICABLE, f"supports() says no: {reason}"))
            continue
        results.append(run_subject(ctx, "load", spec.name, lambda: _load_matches_reference(ctx, spec)))
    if all(r.status == NOT_APPLICABLE for r in results):
        results.append(CheckResult("load", "", FAILED, "supports() accepts none of the zoo's models, "
                                   "so nothing can be loaded or benchmarked"))
    return results


def _load_matches_reference(ctx: Context, spec: ModelSpec) -> str:
    weights, source = start_weights(spec, ctx.seed)
    checked = check_data(spec)
    x = select(batch_form(checked.data.test_inputs), slice(0, 128))
    logits = evaluate(ctx, ctx.load(spec, weights, checked.input_shape, checked.classes), x, 64, checked.classes)
    err = max_error(logits[: rows(x)], spec.reference_forward(weights, x))

    odd_shape = spec.example_shapes().odd
    odd = init_weights(spec, odd_shape, ODD_CLASSES, seed=ctx.seed + 3)
    x_odd = batch_form(random_inputs(spec.inputs(odd_shape), 10, seed=ctx.seed + 4))
    logits_odd = evaluate(ctx, ctx.load(spec, odd, odd_shape, ODD_CLASSES), x_odd, 4, ODD_CLASSES)
    err_odd = max_error(logits_odd[: rows(x_odd)], spec.reference_forward(odd, x_odd))

    typical, other = shape_label(checked.input_shape), shape_label(odd_shape)
    found = (f"max |logit - reference| {err:.1e} on {rows(x)} {checked.label} ({source}) and {err_odd:.1e} on "
             f"random {other} inputs with {ODD_CLASSES} classes (tolerance {LOGIT_TOLERANCE:g})")
    image = is_single_image(spec.inputs(odd_shape))
    if err > LOGIT_TOLERANCE and err_odd > LOGIT_TOLERANCE:
        layouts = "images NHWC" if image else "embedding tables [rows, dim] as they are"
        raise Failed(f"{found}: convert the canonical layout at load by each parameter's role (dense kernels "
                     f"[in, out], conv kernels HWIO [kh, kw, in, out], {layouts}) and build the model exactly as "
                     "the spec's reference_forward computes it")
    if err_odd > LOGIT_TOLERANCE:
        hint = ("flatten NHWC row-major (as reference_forward does), pad convolutions explicitly and "
                "symmetrically (stride-2 'SAME' pads asymmetrically on odd sizes), size the head from "
                "num_classes") if image else "size every layer from input_shape and the head from num_classes"
        raise Failed(f"{found}: {typical} matches but {other} does not; {hint}")
    if err > LOGIT_TOLERANCE:
        raise Failed(f"{found}: random weights match but the checkpoint does not; load every parameter "
                     "from `weights`, including the new head")
    return found


# -- evaluate --------------------------------------------------------------------------------

def check_evaluate(ctx: Context) -> list[CheckResult]:
    specs, results = supported_models(ctx, "evaluate")
    for spec in specs:
        results.append(run_subject(ctx, "evaluate", spec.name, lambda: _evaluate_contract(ctx, spec)))
    return results


def _evaluate_contract(ctx: Context, spec: ModelSpec) -> str:
    weights, _ = start_weights(spec, ctx.seed)
    checked = check_data(spec)
    classes = checked.classes
    model = ctx.load(spec, weights, checked.input_shape, classes)
    x = select(batch_form(checked.data.test_inputs), slice(0, 100))
    meter = RecordingMeter()
    first = evaluate(ctx, model, x, 64, classes, meter)  # the load check's batch shape
    meter.expect("evaluate", 2, [64, 64])
    again = evaluate(ctx, model, x, 64, classes)
    if (diff := max_error(again, first)) > 1e-6:
        raise Failed(f"two evaluate calls on the same model differ by {diff:.1e}: evaluate must not change the "
                     "model (inference mode: no dropout, no batch-statistics updates)")
    meter = RecordingMeter()
    single = evaluate(ctx, model, select(x, slice(0, 3)), 1, classes, meter)
    meter.expect("evaluate with batch size 1", 3, [1, 1, 1])
    if (diff := max_error(single, first[:3])) > LOGIT_TOLERANCE:
        raise Failed(f"batch size 1 gives logits {diff:.1e} away from batch size 64 (the latency phase uses 1)")
    return (f"2 batches of 64 -> (128, {classes}) float32, one meter.step per batch; repeatable; batch size 1 "
            "agrees")


# -- export ----------------------------------------------------------------------------------

def check_export(ctx: Context) -> list[CheckResult]:
    specs, results = supported_models(ctx, "export")
    for spec in specs:
        results.append(run_subject(ctx, "export", spec.name, lambda: _export_round_trip(ctx, spec)))
    return results


def _export_round_trip(ctx: Context, spec: ModelSpec) -> str:
    checked, shapes = [], spec.example_shapes()
    for shape, classes in ((check_data(spec).input_shape, check_data(spec).classes), (shapes.odd, ODD_CLASSES)):
        weights = init_weights(spec, shape, classes, seed=ctx.seed + 5)
        exported = export(ctx, spec, ctx.load(spec, weights, shape, classes), shape, classes)
        worst = max(weights, key=lambda k: float(np.abs(exported[k] - weights[k]).max()))
        if (diff := float(np.abs(exported[worst] - weights[worst]).max())) > 1e-6:
            raise Failed(f"export_weights(load_pretrained(w)) differs from w by {diff:.1e} in {worst} "
                         f"({shape_label(shape)} inputs): export must undo the load conversion exactly "
                         "(by role: dense [in, out], conv HWIO, embeddings as they are)")
        checked.append((len(weights), shape_label(shape)))
    return (f"export_weights(load_pretrained(w)) == w for all {checked[0][0]} parameters "
            f"({checked[0][1]} and {checked[1][1]})")


# -- memory ----------------------------------------------------------------------------------

def check_memory(ctx: Context) -> list[CheckResult]:
    def body() -> str:
        stats = ctx.call("memory", ctx.device)
        if not isinstance(stats, Mapping):
            raise Failed(f"memory() returned {type(stats).__name__}, expected a dict like {{'peak_bytes': 123}}")
        for key, value in stats.items():
            if not isinstance(key, str) or not key.endswith("_bytes"):
                raise Failed(f"memory() key {key!r}: name byte counts '<what>_bytes', e.g. 'peak_bytes'")
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise Failed(f"memory()[{key!r}] = {value!r}: give a non-negative int number of bytes")
        if not stats:
            return f"memory({ctx.device!r}) -> {{}}: no allocator statistics (the host measures process memory)"
        return f"memory({ctx.device!r}) -> " + ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in stats.items())

    return [run_subject(ctx, "memory", "", body)]
