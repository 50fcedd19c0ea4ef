"""Run the conformance suite: every check in order, each result recorded, nothing raised."""

from __future__ import annotations

import os
import traceback
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from zoo.contract import Framework, input_support
from zoo.threads import thread_env as zoo_thread_env
from zoo.models import BUILTIN_MODELS, ModelSpec
import zoo.testing.checks as checks
import zoo.testing.discovery as discovery
import zoo.testing.sync as sync
import zoo.testing.training as training
from zoo.testing.context import Context, run_subject
from zoo.testing.report import FAILED, PASSED, SKIPPED, CheckResult, ConformanceReport

#: The models checked by default (with those the plugin registers itself): small, so the suite
#: takes seconds: one per kind of input (NHWC images: the MLP and the CNN; token ids with an
#: attention mask: ``bert-tiny``). A default model whose family the adapter does not build is
#: reported as skipped, not failed. Others (ResNets, ``minilm-l6``) are checked when named, e.g.
#: ``--models resnet20``.
CORE_MODELS = ("mlp", "cnn", "bert-tiny")

#: The checks, in the order they run. Each is a plain function of a Context.
CHECKS: tuple[str, ...] = (
    "discovery", "lazy-import", "plan", "info", "load", "evaluate", "export", "fine-tune", "memory", "sync",
)

IN_PROCESS: Mapping[str, Callable[[Context], list[CheckResult]]] = {
    "plan": checks.check_plan,
    "info": checks.check_info,
    "load": checks.check_load,
    "evaluate": checks.check_evaluate,
    "export": checks.check_export,
    "fine-tune": training.check_fine_tune,
    "memory": checks.check_memory,
    "sync": sync.check_sync,
}


class UsageError(ValueError):
    """The suite was asked for checks or models that do not exist (the caller's mistake, not the adapter's)."""


#: ``progress(kind, value)``: ``("check", name)`` when a check starts, ``("results", [CheckResult])``
#: when results are recorded, ``("report", ConformanceReport)`` once the framework is known (and
#: again with its models), ``("call", method)`` when an adapter method is entered and
#: ``("call", "")`` when it returns. :mod:`zoo.testing.isolated` streams these out of its process.
Progress = Callable[[str, Any], None]


@contextmanager
def worker_environment(env: Mapping[str, str]) -> Iterator[None]:
    """Set what the host puts in a worker's environment (unless already set), restore after."""
    saved = {k: os.environ.get(k) for k in env}
    for key, value in env.items():
        os.environ.setdefault(key, value)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_conformance(
    framework: str | Framework,
    *,
    checks: Sequence[str] = CHECKS,
    models: Sequence[str | ModelSpec] = (),
    device: str = "cpu",
    threads: int | None = None,
    seed: int = 0,
    plugins: Sequence[str] = (),
    progress: Progress | None = None,
) -> ConformanceReport:
    """Run the conformance suite against one framework adapter, in this process.

    :param framework: a framework name (or alias), found through the installed plugins exactly as
        ``zoo bench`` finds it; or a :class:`~zoo.contract.Framework` instance, to test an adapter
        before it is packaged (the discovery checks are then skipped).
    :param checks: which of :data:`CHECKS` to run (default: all).
    :param models: the zoo models to check, by name (default: :data:`CORE_MODELS` and the models
        the plugin's own distribution registers; if the adapter supports none of them, the
        smallest model it supports); a :class:`~zoo.models.ModelSpec` object is checked as it is,
        registered or not (e.g. a new model family, before its plugin exists).
    :param device: ``"cpu"`` or ``"gpu"``.
    :param threads: the runtime's intra-op thread count (default 1: the checks are about
        correctness, and one thread keeps them quick and steady on a busy machine).
    :param plugins: modules to load explicitly, like ``zoo -p MODULE``.
    :param progress: called as the suite goes (see :data:`Progress`), e.g. to stream results out.
    :returns: a :class:`~zoo.testing.report.ConformanceReport`; it never raises for a broken adapter.

    The adapter is prepared in this process (``prepare`` is called once, first), as a worker would:
    run the suite in a fresh process (``zoo check-plugin``, or a pytest run of its own). An adapter
    that exits the process, hangs, crashes or raises a ``BaseException`` takes this process with
    it: :func:`zoo.testing.isolated.run_isolated` runs the suite in a child process with a
    timeout and reports those as failures.
    """
    unknown = sorted(set(checks) - set(CHECKS))
    if unknown:
        raise UsageError(f"unknown checks {unknown}; choose from {', '.join(CHECKS)}")
    order = [c for c in CHECKS if c in checks]
    note: Progress = progress or (lambda kind, value: None)
    sent = 0

    def flush() -> None:
        nonlocal sent
        if len(report.results) > sent:
            note("results", report.results[sent:])
            sent = len(report.results)

    if isinstance(framework, Framework):
        adapter, specs, module, own = framework, list(BUILTIN_MODELS), "", ()
        report = ConformanceReport(framework.name, f"adapter object {type(framework).__name__}", order)
        for name in ("discovery", "lazy-import"):
            if name in order:
                report.results.append(CheckResult(name, "", SKIPPED, "an adapter object was passed in; "
                                                  "run with its name to check discovery"))
        note("report", report)
    else:
        note("check", "discovery")
        found = discovery.discover(framework, plugins)
        report = ConformanceReport(found.adapter.name if found.adapter else framework, found.origin, order)
        note("report", report)
        report.results.append(found.result)
        if found.adapter is None:
            report.results += [CheckResult(c, "", SKIPPED, "needs discovery") for c in order if c != "discovery"]
            flush()
            return report
        adapter, specs, module, own = found.adapter, found.models, found.module, found.own_models
    flush()
    given = {m.name: m for m in models if isinstance(m, ModelSpec)}
    specs = [s for s in specs if s.name not in given] + list(given.values())
    names = [m.name if isinstance(m, ModelSpec) else m for m in models]
    ctx = Context(adapter, choose_models(adapter, specs, names, own, device), device=device,
                  threads=threads or 1, seed=seed, on_call=progress and (lambda method: note("call", method)))
    report.models = [s.name for s in ctx.models]
    note("report", report)

    if module and "lazy-import" in order:
        note("check", "lazy-import")
        report.results += discovery.check_lazy_import(ctx, module)
        flush()
    thread_env = zoo_thread_env(ctx.threads)
    try:
        env = {**thread_env, **adapter.subprocess_env(ctx.runtime)}
    except Exception:
        env = thread_env  # the plan check reports it
    with worker_environment(env):
        for name in order:
            if name in ("discovery", "lazy-import"):
                continue
            note("check", name)
            if name != "plan" and not ctx.prepared and not ctx.blocked:  # once, before the first call
                prepared = run_subject(ctx, "info", "prepare", lambda: _prepare(ctx))
                if prepared.status != PASSED:
                    report.results.append(prepared)
                    ctx.blocked = f"needs prepare(), which did not pass ({prepared.status})"
            if ctx.blocked:
                if not report.results_for(name):
                    report.results.append(CheckResult(name, "", SKIPPED, ctx.blocked))
                continue
            try:
                report.results += IN_PROCESS[name](ctx)
            except Exception as exc:  # a bug in a check, or an adapter raising where it may not
                report.results.append(CheckResult(name, "", FAILED, f"{type(exc).__name__}: {exc}",
                                                  traceback.format_exc()))
            flush()
    return report


def choose_models(adapter: Framework, specs: Sequence[ModelSpec], names: Sequence[str], own: Sequence[str],
                  device: str) -> list[ModelSpec]:
    """``names`` if given; else the core models plus the plugin's own; else, when the adapter
    supports none of those, the smallest model it supports."""
    if names:
        missing = sorted(set(names) - {s.name for s in specs})
        if missing:
            raise UsageError(f"unknown models {missing}; registered: {', '.join(s.name for s in specs)}")
        return [s for s in specs if s.name in names]
    chosen = [s for s in specs if s.name in CORE_MODELS or s.name in own]
    if any(_supports(adapter, s, device) for s in chosen):
        return chosen
    supported = [s for s in specs if _supports(adapter, s, device)]
    size = lambda s: sum(int(np.prod(p.shape)) for p in s.parameters(s.example_shapes().typical, 10))  # noqa: E731
    return [min(supported, key=size)] if supported else chosen


def _supports(adapter: Framework, spec: ModelSpec, device: str) -> bool:
    try:
        if not input_support(adapter, spec.inputs(spec.example_shapes().typical)).ok:
            return False  # an adapter older than contract 3 is never given a non-image model
        return bool(adapter.supports(spec, device, "fp32").ok)
    except Exception:  # the plan check reports it
        return False


def _prepare(ctx: Context) -> str:
    ctx.call("prepare", ctx.runtime)
    ctx.prepared = True
    return f"prepare(Runtime(device={ctx.device!r}, threads={ctx.threads}, seed={ctx.seed}))"
