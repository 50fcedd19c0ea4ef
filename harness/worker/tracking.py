"""The trackers of one cell (:mod:`zoo.trackers`), run around each of its phases.

:class:`TrackerSet` also names the phase that is running, so that a failure anywhere in the
cell is reported with the phase it happened in. A tracker that raises is not allowed to fail
the cell it measures: its error is kept in the record's measurement details instead.
"""

from __future__ import annotations

import os
import traceback
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping, Sequence

from zoo.trackers import Tracker, TrackerContext, Value

from harness.measure.trackers import BUILTIN_TRACKERS
from harness.plan.cells import Cell
from harness.plugins.registry import Registry
from harness.results.records import Metric

#: Builds a record's Metric from a tracker's value (the catalogue knows each name's unit).
MakeMetric = Callable[[str, Value], Metric]


def tracker_classes(registry: Registry | None) -> dict[str, type[Tracker]]:
    """Every tracker this process can run: the built-ins and those plugins registered."""
    found = {name: p.item for name, p in registry.trackers.items()} if registry is not None else {}
    found.update(BUILTIN_TRACKERS)  # a plugin never replaces a built-in of the same name
    return found


class TrackerSet:
    """The cell's trackers and its current phase; metrics go into the ``metrics`` dict given."""

    def __init__(self, metrics: dict[str, Metric], make_metric: MakeMetric):
        self.current = "plan"
        self.metrics = metrics
        self.make_metric = make_metric
        self.trackers: list[Tracker] = []
        self.errors: dict[str, str] = {}
        self.context: TrackerContext | None = None  # set by start()

    def start(self, names: Sequence[str], registry: Registry | None, cell: Cell, threads: int) -> None:
        """Create the trackers ``names`` (all built-ins when empty), right after ``prepare``."""
        classes = tracker_classes(registry)
        names = list(names) or list(BUILTIN_TRACKERS)
        unknown = [n for n in names if n not in classes]
        if unknown:
            raise RuntimeError(f"unknown tracker {', '.join(map(repr, unknown))}: the plan names trackers that "
                               f"no plugin of this worker provides (known: {', '.join(sorted(classes))})")
        self.context = TrackerContext(cell.framework, cell.device, threads, os.getpid())
        for name in names:
            self._guard(name, lambda cls=classes[name]: self.trackers.append(cls(self.context)))

    def attach(self, cls: Callable[..., Tracker], *args: Any) -> Tracker | None:
        """Add a tracker the worker builds itself, ``cls(context, *args)`` (one that needs the
        cell's adapter), after :meth:`start`; ``None`` when its construction raised (the error
        goes into the details, as for any tracker)."""
        before = len(self.trackers)
        self._guard(getattr(cls, "name", "") or getattr(cls, "__name__", "tracker"),
                    lambda: self.trackers.append(cls(self.context, *args)))
        return self.trackers[-1] if len(self.trackers) > before else None

    @contextmanager
    def phase(self, name: str, tracked: bool = True) -> Iterator[None]:
        """Run a phase: name it, and let every tracker measure it (also when it raises)."""
        self.current = name
        active = self.trackers if tracked else []
        for t in active:
            self._guard(t.name, lambda t=t: t.start(name))
        try:
            yield
        finally:
            for t in active:
                self._guard(t.name, lambda t=t: self._absorb(t.stop(name)))

    def finish(self) -> None:
        """Whole-cell metrics of every tracker, after the last phase."""
        for t in self.trackers:
            self._guard(t.name, lambda t=t: self._absorb(t.finish()))

    def close(self) -> None:
        """Let every tracker with a ``close()`` release what it holds (a sampling process): at
        the cell's end, also when a phase failed and :meth:`finish` never ran."""
        for t in self.trackers:
            close = getattr(t, "close", None)
            if callable(close):
                self._guard(t.name, close)

    def details(self) -> dict[str, Any]:
        """How each tracker measured, and the errors of those that raised."""
        out: dict[str, Any] = {}
        for t in self.trackers:
            try:
                details = dict(t.details())
            except Exception as exc:  # noqa: BLE001 - a tracker must not fail the cell
                details = {"error": f"{type(exc).__name__}: {exc}"}
            if details:
                out[t.name] = details
        for name, error in self.errors.items():
            out.setdefault(name, {})["error"] = error
        return {"trackers": out} if out else {}

    def _absorb(self, values: Mapping[str, Value] | None) -> None:
        for metric, value in (values or {}).items():
            self.metrics[metric] = self.make_metric(metric, value)

    def _guard(self, name: str, action: Callable[[], Any]) -> None:
        try:
            action()
        except Exception:  # noqa: BLE001 - a tracker must not fail the cell it measures
            self.errors.setdefault(name, traceback.format_exc(limit=3))
