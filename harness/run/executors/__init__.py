"""Executors: where a run's cells execute (see :mod:`harness.run.executors.base`).

The built-in ``local`` executor runs one worker subprocess per cell on this machine. Plugins add
executors through :func:`zoo.hookspecs.zoo_executors`; :func:`executor_classes` lists them all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from harness.plan.request import PlanError
from harness.plugins.registry import Registry
from harness.run.executors.base import CellJob, Executor, ExecutorOptions
from harness.run.executors.local import LocalExecutor
from harness.run.executors.ray import RayExecutor

__all__ = ["BUILTIN_EXECUTORS", "CellJob", "Executor", "ExecutorOptions", "executor_classes", "make_executor"]

#: Executors the host ships, by name.
BUILTIN_EXECUTORS: dict[str, type[Executor]] = {LocalExecutor.name: LocalExecutor, RayExecutor.name: RayExecutor}


def executor_classes(registry: Registry | None = None) -> dict[str, type[Executor]]:
    """Every executor available: the built-ins and those plugins registered."""
    found = {name: p.item for name, p in registry.executors.items()} if registry is not None else {}
    found.update(BUILTIN_EXECUTORS)  # a plugin never replaces a built-in of the same name
    return found


class UnknownExecutor(PlanError):
    """``--executor NAME`` names no executor; the message lists the available ones."""


def make_executor(name: str, registry: Registry | None, work_dir: Path, timeout_s: float,
                  settings: Mapping[str, str] | None = None) -> Executor:
    """An executor instance by name, for one run."""
    classes = executor_classes(registry)
    if name not in classes:
        raise UnknownExecutor(f"unknown executor {name!r}; available: {', '.join(sorted(classes))}")
    return classes[name](ExecutorOptions(work_dir=work_dir, timeout_s=timeout_s, settings=dict(settings or {})))
