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
    from zoo.trackers import Tracker

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


@hookspec
def zoo_trackers() -> Sequence[type["Tracker"]]:
    """Return measurement trackers (classes) that run around every phase of every cell.

    A tracker measures something the host does not (energy from RAPL or NVML, GPU clocks, a
    custom counter) inside each cell's worker process: the worker creates one instance per cell
    after the framework's ``prepare``, calls ``start(phase)``/``stop(phase)`` around each phase
    and ``finish()`` at the end, and records the values they return under their metric names
    (see :mod:`zoo.trackers`). Give each metric a definition with :func:`zoo_metrics` so that
    reports, comparisons and exports know its unit, direction and label. A tracker that raises
    is recorded as broken in the cell's measurement details; it never fails the cell.

    :returns: a list of :class:`zoo.trackers.Tracker` subclasses, each with a unique ``name``.

    Example::

        class Wakeups(zoo.trackers.Tracker):
            name = "wakeups"
            def finish(self):
                return {"wakeups": read_counter()}

        @zoo.hookimpl
        def zoo_trackers():
            return [Wakeups]
    """


@hookspec
def zoo_executors() -> Sequence[type]:
    """Return executors (classes) that run a benchmark's cells somewhere other than this machine.

    For host extensions, not framework plugins: an executor subclasses
    ``harness.run.executors.base.Executor`` (it starts the host's worker, so it depends on the
    host), and ``zoo bench --executor NAME`` picks it by its ``name``. The executor receives cell
    plans and yields one record per cell as each finishes; see that class for the full contract
    (timeouts, cancellation on Ctrl-C, where the machine information comes from).

    :returns: a list of executor classes, each with a unique ``name``.

    Example::

        @zoo.hookimpl
        def zoo_executors():
            from my_cluster.executor import ClusterExecutor
            return [ClusterExecutor]
    """
