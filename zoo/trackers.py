"""The tracker seam: measurements taken around each phase of a cell (memory, energy, GPU clocks).

The host's worker runs every tracker of a cell around each measured phase, in the worker
process of that cell::

    tracker = TrackerClass(context)          # once, after the framework's prepare()
    tracker.start("fine_tune"); ...; values = tracker.stop("fine_tune")
    tracker.start("inference"); ...; values = tracker.stop("inference")
    ...
    values = tracker.finish()                 # once, after the last phase

``stop`` and ``finish`` return metric values keyed by metric name: a float, or a sequence of
samples (summarised by the host, which keeps the raw samples). The unit, direction, label and
compare rule of each name come from the metric catalogue (a plugin defines new names with
:func:`zoo.hookspecs.zoo_metrics`), so a tracker is only the measurement. A tracker must be
cheap enough not to disturb the phase it measures, must not import a framework unless the
cell's framework is already loaded, and must not raise for a missing counter: return nothing.

A plugin contributes a tracker class through :func:`zoo.hookspecs.zoo_trackers`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence, Union

#: What a tracker reports per metric name: one value, or raw samples.
Value = Union[float, Sequence[float]]


@dataclass(frozen=True)
class TrackerContext:
    """What the host tells a tracker about the cell it measures."""

    framework: str
    device: str  # "cpu" or "gpu"
    threads: int
    pid: int  # the worker process (the tracker runs inside it)


class Tracker(abc.ABC):
    """Measures something around each phase of one cell; subclass it in a plugin."""

    #: Unique short name, e.g. ``"host_memory"``; recorded in each record's measurement details.
    name: ClassVar[str] = ""

    def __init__(self, context: TrackerContext):
        self.context = context

    def start(self, phase: str) -> None:
        """Called right before ``phase`` starts (``load``, ``fine_tune``, ``evaluate``,
        ``inference_throughput``, ``latency``, ``train_throughput``, ...)."""

    def stop(self, phase: str) -> Mapping[str, Value]:
        """Called right after ``phase`` ends, also when it failed; returns that phase's metrics."""
        return {}

    def finish(self) -> Mapping[str, Value]:
        """Called once after the last phase; returns whole-cell metrics."""
        return {}

    def details(self) -> Mapping[str, Any]:
        """How the tracker measured (method, sampling interval), kept in the record."""
        return {}

    def close(self) -> None:
        """Release what the tracker holds (a sampling thread or process). Called once at the cell's
        end, also when a phase failed and :meth:`finish` never ran; must not raise."""
