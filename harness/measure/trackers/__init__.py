"""Trackers the host ships (see :mod:`zoo.trackers` for the protocol); plugins add more through
:func:`zoo.hookspecs.zoo_trackers`."""

from __future__ import annotations

from zoo.trackers import Tracker

from harness.measure.trackers.memory import HostMemoryTracker

#: Built-in trackers by name, run in every cell.
BUILTIN_TRACKERS: dict[str, type[Tracker]] = {HostMemoryTracker.name: HostMemoryTracker}
