"""zoo-bench's own models and tasks, registered through the same hooks as any plugin."""

from __future__ import annotations

from zoo import hookimpl
from zoo.models import BUILTIN_MODELS
from zoo.tasks import BUILTIN_TASKS


@hookimpl
def zoo_models():
    return list(BUILTIN_MODELS)


@hookimpl
def zoo_tasks():
    return list(BUILTIN_TASKS)
