"""The hooks a zoo-bench plugin may implement.

A plugin is a module registered under the ``zoo`` entry-point group (in its
``pyproject.toml``: ``[project.entry-points.zoo] myname = "my_package"``) that defines one or
more of the functions below, each decorated with :data:`zoo.hookimpl`. Hooks only *register*
things; behaviour lives in the returned objects. Every hook may be implemented by any number
of plugins and the host concatenates the lists; call order is not defined, so never rely on it.

Hook modules are imported by the ``zoo`` command itself, so they must not import a
deep-learning framework at module level: do that inside the adapter's methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import pluggy

if TYPE_CHECKING:  # pragma: no cover - imports for type checkers only
    from zoo.contract import Framework
    from zoo.models.spec import ModelSpec
    from zoo.tasks.task import Task

hookspec = pluggy.HookspecMarker("zoo")


@hookspec
def zoo_frameworks() -> Sequence["Framework"]:
    """Return the framework adapters this plugin provides.

    Called once per process after plugin discovery: by the ``zoo`` command to list and plan
    (where only the adapter's class attributes, :meth:`~zoo.contract.Framework.supports` and
    :meth:`~zoo.contract.Framework.subprocess_env` are used), and in each benchmark cell's
    worker process, where the adapter does the real work.

    :returns: a list of :class:`zoo.contract.Framework` instances, each with a unique ``name``.

    Example::

        @zoo.hookimpl
        def zoo_frameworks():
            return [MyFramework()]
    """


@hookspec
def zoo_models() -> Sequence["ModelSpec"]:
    """Return framework-neutral model specs this plugin adds to the zoo.

    :returns: a list of :class:`zoo.models.spec.ModelSpec` instances with unique names. A
        framework adapter declares which spec families it can build through
        :meth:`~zoo.contract.Framework.supports`.
    """


@hookspec
def zoo_tasks() -> Sequence["Task"]:
    """Return classification tasks this plugin adds.

    :returns: a list of :class:`zoo.tasks.task.Task` instances with unique names. A task's
        ``load()`` must work offline from files it ships or caches.
    """


@hookspec
def zoo_result(record: dict) -> None:
    """Observe one finished benchmark cell.

    Called in the ``zoo`` process after each cell's record has been written to the results
    store, for exporters and trackers. An exception raised here is reported and does not stop
    the run.

    :param record: the cell's record as a JSON-compatible dict (the same object that was
        written as one line of ``results.jsonl``).
    """
