"""What the loaded plugins provide, by name: framework adapters, model specs and tasks.

Names are resolved here, with aliases and "did you mean" suggestions, so that every command
reports an unknown name the same way.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import zoo
from zoo.contract import Framework
from zoo.models.spec import ModelSpec
from zoo.tasks.task import Task
from zoo.trackers import Tracker

from zoo.plugin_host import PluginFailure, PluginHost, PluginOrigin
from zoo.plugin_host import collect as _collect

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
    problems: list[PluginFailure] = field(default_factory=list)

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


def build_registry(host: PluginHost) -> Registry:
    """Ask every plugin what it registers. Duplicates and contract mismatches become problems
    that name the distributions involved; the first registration wins."""
    reg = Registry()

    def problem(origin: PluginOrigin, message: str) -> None:
        reg.problems.append(PluginFailure(origin.name, origin.distribution, message, ""))

    for adapter, origin in _collect(host, "zoo_frameworks"):
        name = getattr(adapter, "name", "")
        if not isinstance(adapter, Framework) or not name:
            problem(origin, f"zoo_frameworks returned {adapter!r}, not a named zoo.contract.Framework")
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
            other = reg.frameworks[name].origin.distribution
            problem(origin, f"framework {name!r} is provided by both {other} and {origin.distribution}; using {other}")
            continue
        reg.frameworks[name] = Provided(adapter, origin)
        for alias in adapter.aliases:
            reg.aliases.setdefault(alias.lower(), name)

    for spec, origin in _collect(host, "zoo_models"):
        if not isinstance(spec, ModelSpec):
            problem(origin, f"zoo_models returned {spec!r}, not a zoo.models.ModelSpec")
        elif spec.name in reg.models:
            problem(origin, f"model {spec.name!r} is provided by both {reg.models[spec.name].origin.distribution} "
                            f"and {origin.distribution}")
        else:
            reg.models[spec.name] = Provided(spec, origin)

    for task, origin in _collect(host, "zoo_tasks"):
        if not isinstance(task, Task):
            problem(origin, f"zoo_tasks returned {task!r}, not a zoo.tasks.Task")
        elif task.name in reg.tasks:
            problem(origin, f"task {task.name!r} is provided by both {reg.tasks[task.name].origin.distribution} "
                            f"and {origin.distribution}")
        else:
            reg.tasks[task.name] = Provided(task, origin)
    _collect_classes(host, reg, "zoo_trackers", Tracker, reg.trackers, problem)
    _collect_classes(host, reg, "zoo_executors", None, reg.executors, problem)
    reg.problems[:0] = host.failures
    return reg


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
