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
    from zoo.metrics import MetricDef
    from zoo.models.spec import ModelSpec
    from zoo.renderers import Renderer
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
def zoo_metrics() -> Sequence["MetricDef"]:
    """Return definitions of the metrics this plugin's trackers or adapters record.

    Called once per process after plugin discovery, by every command that reads results
    (``zoo report``, ``zoo compare``, ``zoo history``, ``zoo export``) and by ``zoo bench`` and
    its workers. Each definition is the only place the host learns a metric's unit, direction,
    label, format, compare rule and whether it gates CI, history rule, whether it is plotted or
    a default report column, the phase that produces it, how ``--repeats`` merges it and how
    exports see it (see :class:`zoo.metrics.MetricDef` for every field). A metric recorded
    without a definition is still stored and shown by its name, but not compared or plotted.

    A name that zoo-bench defines itself (``accuracy``, ``train_throughput``, ...; see
    ``docs/results.md``), or that another plugin already defined, is refused with a warning
    naming this plugin's distribution; the others still count.

    :returns: a list of :class:`zoo.metrics.MetricDef`, each with a unique ``name``.

    Example::

        from zoo.metrics import MetricDef, Rule

        @zoo.hookimpl
        def zoo_metrics():
            return [MetricDef("gpu_energy_j", "J", "lower", label="GPU energy J", format="{:,.1f}",
                              phase="train_throughput", compare=Rule("relative", 0.05, tested=False),
                              gates=True, plotted=True, column=95)]
    """


@hookspec
def zoo_renderers() -> Sequence["Renderer"]:
    r"""Return output formats this plugin adds to the commands that have ``--format``.

    Called once per process after plugin discovery by ``zoo report``, ``zoo compare``,
    ``zoo history`` and ``zoo export``. A renderer lists the *views* it renders (``report``,
    ``compare``, ``history``, ``export``) and, for each, a function that receives that view
    (the loaded runs, the analysis and the metric catalogue; :mod:`zoo.renderers` lists their
    attributes) and returns text, bytes, files or rich renderables as its ``output`` says. Its
    ``name`` then appears among the ``--format`` choices of each command whose view it renders.
    A name that zoo-bench uses itself (``table``, ``markdown``, ``html``, ``json``, ``csv``,
    ``parquet``, ``pytest-benchmark``, ``github-action-benchmark``, ``bencher``) or that another
    plugin already registered is refused with a warning naming this plugin's distribution.

    :returns: a list of :class:`zoo.renderers.Renderer`, each with a unique ``name``.

    Example::

        from zoo.renderers import Renderer

        def report_text(view):  # one line per row of the side-by-side table
            return "".join(f"{r.label}: " + ", ".join(f"{fw} {r.text(fw)}" for fw in view.table.frameworks) + "\n"
                           for r in view.table.rows)

        @zoo.hookimpl
        def zoo_renderers():
            return [Renderer("lines", {"report": report_text}, description="one line per metric")]
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
