"""Trackers the host ships (see :mod:`zoo.trackers` for the protocol); plugins add more through
:func:`zoo.hookspecs.zoo_trackers`.

The allocator's per-phase peaks (:mod:`~harness.measure.trackers.device_memory`) are measured
by a tracker too, but not listed here: it needs the cell's adapter, so the worker attaches it.
"""

from __future__ import annotations

from zoo.trackers import Tracker

from harness.measure.trackers.gpu_clocks import GpuClocksTracker
from harness.measure.trackers.gpu_process_memory import GpuProcessMemoryTracker
from harness.measure.trackers.memory import HostMemoryTracker

#: Built-in trackers by name, run in every cell (the GPU ones record nothing in a CPU cell).
BUILTIN_TRACKERS: dict[str, type[Tracker]] = {
    t.name: t for t in (HostMemoryTracker, GpuProcessMemoryTracker, GpuClocksTracker)}
