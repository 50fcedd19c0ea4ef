"""What the loaded plugins provide, by name: framework adapters, model specs, tasks, metric
definitions and output formats.

Names are resolved here, with aliases and "did you mean" suggestions, so that every command
reports an unknown name the same way.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import zoo
from zoo.contract import Framework
from zoo.metrics import MetricDef
from zoo.models.spec import ModelSpec
from zoo.renderers import Renderer
from zoo.tasks.task import Task
from zoo.trackers import Tracker

from zoo.plugin_host import PluginFailure, PluginHost, PluginOrigin
from zoo.plugin_host import collect as _collect

from harness.render.registry import BUILTIN_FORMATS
from harness.results.metrics import BUILTIN, Catalogue

T = TypeVar("T")


class UnknownName(ValueError):
    """A name on the command line that no plugin provides."""


@dataclass(frozen=True)
class Provided(Generic[T]):
    """A registered item and the plugin it came from."""

    item: T
    origin: PluginOrigin


@dataclass
class Registry:
    frameworks: dict[str, Provided[Framework]] = field(default_factory=dict)
    models: dict[str, Provided[ModelSpec]] = field(default_factory=dict)
    tasks: dict[str, Provided[Task]] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)  # alias -> framework name
    trackers: dict[str, Provided[type]] = field(default_factory=dict)  # zoo.trackers.Tracker subclasses
    executors: dict[str, Provided[type]] = field(default_factory=dict)  # harness.run.executors.base.Executor
    metrics: dict[str, Provided[MetricDef]] = field(default_factory=dict)  # plugin metric definitions
    renderers: dict[str, Provided[Renderer]] = field(default_factory=dict)  # plugin output formats
    problems: list[PluginFailure] = field(default_factory=list)

    @property
    def catalogue(self) -> Catalogue:
        """The metric catalogue: the built-in definitions, then the plugins'."""
        return BUILTIN.extended(p.item for p in self.metrics.values())

    def framework(self, name: str) -> Provided[Framework]:
        key = self.aliases.get(name.strip().lower(), name.strip().lower())
        if key in self.frameworks:
            return self.frameworks[key]
        raise UnknownName(_unknown("framework", name, list(self.frameworks), self.aliases))

    def model(self, name: str) -> Provided[ModelSpec]:
        if name in self.models:
            return self.models[name]
        raise UnknownName(_unknown("model", name, list(self.models)))

    def task(self, name: str) -> Provided[Task]:
        if name in self.tasks:
            return self.tasks[name]
        raise UnknownName(_unknown("task", name, list(self.tasks)))


def _unknown(kind: str, name: str, known: list[str], aliases: dict[str, str] | None = None) -> str:
    installed = ", ".join(sorted(set(known))) or "none"
    candidates = {k: k for k in known} | dict(aliases or {})  # alias -> the name it stands for
    close = difflib.get_close_matches(name.lower(), list(candidates), n=1, cutoff=0.5)
    hint = f" (did you mean {candidates[close[0]]!r}?)" if close else ""
    return f"unknown {kind} {name!r}; installed: {installed}{hint}"


#: Distributions shipped with zoo-bench: on a name clash they win over any other plugin, whatever
#: order the plugins were loaded in, so a third-party plugin cannot take over ``torch``.
BUILTIN_DISTRIBUTIONS = ("zoo-bench", "zoo-torch", "zoo-tf", "zoo-jax")
MAX_NAME_LENGTH = 100


def _precedence(item_and_origin: tuple[object, PluginOrigin]) -> tuple[int, str, str]:
    """Who wins a name clash: built-in distributions first, then by distribution and entry-point
    name (a fixed order, never pluggy's registration order)."""
    origin = item_and_origin[1]
    return (0 if origin.distribution in BUILTIN_DISTRIBUTIONS else 1, origin.distribution, origin.name)


def _ranked(host: PluginHost, hook_name: str) -> list[tuple[object, PluginOrigin]]:
    return sorted(_collect(host, hook_name), key=_precedence)


def bad_name(name: object) -> str:
    """Why ``name`` cannot name a framework, model or task (``""`` when it can): names reach the
    command line (comma-separated lists, ``framework:variant``), terminals and file names."""
    if not isinstance(name, str) or not name:
        return "it must be a non-empty string"
    if len(name) > MAX_NAME_LENGTH:
        return f"it is longer than {MAX_NAME_LENGTH} characters"
    if any(not c.isprintable() or c.isspace() for c in name):
        return "it contains whitespace or control characters"
    if any(c in name for c in ",:"):
        return "it contains ',' or ':' (separators on the command line)"
    return ""


def _clash(kind: str, name: str, winner: PluginOrigin, loser: PluginOrigin) -> str:
    why = ("it is built into zoo-bench" if winner.distribution in BUILTIN_DISTRIBUTIONS
           else "it sorts first by distribution name")
    return (f"{kind} {name!r} is provided by both {winner.distribution} and {loser.distribution}; using "
            f"{winner.distribution} ({why})")


def build_registry(host: PluginHost) -> Registry:
    """Ask every plugin what it registers. Invalid names, duplicates and contract mismatches
    become problems that name the distributions involved; on a clash the built-in distribution,
    else the first by distribution name, wins (:func:`_precedence`)."""
    reg = Registry()

    def problem(origin: PluginOrigin, message: str) -> None:
        reg.problems.append(PluginFailure(origin.name, origin.distribution, message, ""))

    for adapter, origin in _ranked(host, "zoo_frameworks"):
        name = getattr(adapter, "name", "")
        if not isinstance(adapter, Framework) or not name:
            problem(origin, f"zoo_frameworks returned {adapter!r}, not a named zoo.contract.Framework")
            continue
        why = bad_name(name) or next((f"alias {a!r}: {bad_name(a)}" for a in adapter.aliases if bad_name(a)), "") \
            or next((f"variant {v!r}: {bad_name(v)}" for v in adapter.variants if bad_name(v)), "")
        if why:
            problem(origin, f"framework name {name!r} is refused: {why}")
            continue
        if adapter.contract_version > zoo.CONTRACT_VERSION:
            problem(
                origin,
                f"framework {name!r} implements contract version {adapter.contract_version}, but this "
                f"zoo-bench understands up to {zoo.CONTRACT_VERSION}; upgrade zoo-bench or pin an older "
                f"{origin.distribution}",
            )
            continue
        if name in reg.frameworks:
            problem(origin, _clash("framework", name, reg.frameworks[name].origin, origin))
            continue
        reg.frameworks[name] = Provided(adapter, origin)
        for alias in adapter.aliases:
            reg.aliases.setdefault(alias.lower(), name)

    _collect_specs(host, "zoo_models", ModelSpec, "zoo.models.ModelSpec", "model", reg.models, problem)
    _collect_specs(host, "zoo_tasks", Task, "zoo.tasks.Task", "task", reg.tasks, problem)
    _collect_classes(host, reg, "zoo_trackers", Tracker, reg.trackers, problem)
    _collect_classes(host, reg, "zoo_executors", None, reg.executors, problem)
    _collect_named(host, "zoo_metrics", MetricDef, "metric", reg.metrics, _builtin_metric, problem)
    _collect_named(host, "zoo_renderers", Renderer, "format", reg.renderers, BUILTIN_FORMATS.__contains__, problem)
    reg.problems[:0] = host.failures
    return reg


def _collect_specs(host: PluginHost, hook_name: str, record: type, record_name: str, kind: str,
                   into: dict[str, Provided], problem) -> None:
    """Models or tasks from a registration hook: of the right type, a usable name, and on a
    clash the winner by :func:`_precedence`."""
    for item, origin in _ranked(host, hook_name):
        if not isinstance(item, record):
            problem(origin, f"{hook_name} returned {item!r}, not a {record_name}")
        elif bad_name(item.name):
            problem(origin, f"{kind} name {item.name!r} is refused: {bad_name(item.name)}")
        elif item.name in into:
            problem(origin, _clash(kind, item.name, into[item.name].origin, origin))
        else:
            into[item.name] = Provided(item, origin)


def _collect_classes(host: PluginHost, reg: Registry, hook_name: str, base: type | None,
                     into: dict[str, Provided[type]], problem) -> None:
    """Named classes from a registration hook (trackers, executors); the first name wins."""
    kind = hook_name.removeprefix("zoo_").rstrip("s")
    for cls, origin in _collect(host, hook_name):
        name = getattr(cls, "name", "")
        if not isinstance(cls, type) or not name or (base is not None and not issubclass(cls, base)):
            expected = f"a subclass of {base.__module__}.{base.__name__}" if base else "a class"
            problem(origin, f"{hook_name} returned {cls!r}, not {expected} with a name")
        elif name in into:
            problem(origin, f"{kind} {name!r} is provided by both {into[name].origin.distribution} and "
                            f"{origin.distribution}; using {into[name].origin.distribution}")
        else:
            into[name] = Provided(cls, origin)


def _builtin_metric(name: str) -> bool:
    return name in BUILTIN or any(d.name == name for d in BUILTIN.definitions)


def _collect_named(host: PluginHost, hook_name: str, record: type, kind: str, into: dict[str, Provided],
                   is_builtin, problem) -> None:
    """Named records from a registration hook (metric definitions, renderers): a name zoo-bench
    defines itself is refused, and between plugins the first name wins."""
    for item, origin in _collect(host, hook_name):
        name = getattr(item, "name", "")
        if not isinstance(item, record):
            problem(origin, f"{hook_name} returned {item!r}, not a {record.__module__}.{record.__name__}")
        elif is_builtin(name):
            problem(origin, f"{kind} {name!r} from {origin.distribution} is built into zoo-bench and cannot be "
                            f"redefined by a plugin; give the {kind} another name")
        elif name in into:
            problem(origin, f"{kind} {name!r} is provided by both {into[name].origin.distribution} and "
                            f"{origin.distribution}; using {into[name].origin.distribution}")
        else:
            into[name] = Provided(item, origin)
