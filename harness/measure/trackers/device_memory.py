"""The framework allocator's device memory, per phase, as a tracker the worker attaches itself.

An allocator's peak (``Framework.memory(device)["peak_bytes"]``) is a high-water mark since the
process started, so read once per cell it is the fine-tune peak and hides every smaller phase.
For a GPU cell this tracker asks the adapter to reset it at the start of each measured phase
(:meth:`zoo.contract.Framework.reset_memory_peak`) and reads it at the phase's end:
``<phase>_device_peak_mb`` is then the phase's own peak ("since phase start"). An adapter that
cannot reset returns ``False``; the phase's figure is then the peak since the process started,
recorded as such ("since process start") so nobody reads it as the phase's own.

The whole-cell ``framework_peak_mb`` stays what it was: the peak is read just before every reset
(so the reset forgets nothing) and the largest reading is the cell's peak. CPU cells record
nothing new: the host measures their memory itself and adapters report ``{}`` there.

Unlike the trackers of ``BUILTIN_TRACKERS`` it needs the cell's adapter, which only the worker
holds, so the worker creates it (:meth:`harness.worker.tracking.TrackerSet.attach`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from zoo.trackers import Tracker, TrackerContext, Value

from harness.measure.trackers.phases import phase_metrics

if TYPE_CHECKING:  # the contract module is only needed for the annotation
    from zoo.contract import Framework

#: Measured phase -> the metric of its allocator peak.
PHASE_METRICS = phase_metrics("device_peak_mb")
#: The key of :meth:`Framework.memory` that holds the allocator's peak.
PEAK_KEY = "peak_bytes"
SINCE_PHASE = "since phase start"
SINCE_PROCESS = "since process start"
MIB = 2**20


class AllocatorTracker(Tracker):
    """Per-phase allocator peaks of a GPU cell (reset per phase where the adapter can), and the
    allocator's statistics for the whole cell."""

    name = "device_memory"

    def __init__(self, context: TrackerContext, adapter: "Framework"):
        super().__init__(context)
        self.adapter = adapter
        self.device = context.device
        self.per_phase = context.device != "cpu"
        self.cell_peak: int | None = None  # the largest peak read so far (before resets, at the end)
        self.phases: dict[str, str] = {}  # phase -> since phase start / since process start / why none

    def _peak_now(self) -> int | None:
        value = self.adapter.memory(self.device).get(PEAK_KEY)
        if value is None:
            return None
        peak = int(value)
        self.cell_peak = peak if self.cell_peak is None else max(self.cell_peak, peak)
        return peak

    def start(self, phase: str) -> None:
        if not self.per_phase or phase not in PHASE_METRICS:
            return
        self.phases[phase] = SINCE_PROCESS  # until the reset says otherwise (also when it raises)
        self._peak_now()  # the reset below forgets the peak so far: keep it for the cell's figure
        if self.adapter.reset_memory_peak(self.device):
            self.phases[phase] = SINCE_PHASE

    def stop(self, phase: str) -> Mapping[str, Value]:
        if not self.per_phase or phase not in PHASE_METRICS:
            return {}
        peak = self._peak_now()
        if peak is None:
            self.phases[phase] = f"no allocator peak: memory({self.device!r}) has no {PEAK_KEY!r}"
            return {}
        return {PHASE_METRICS[phase]: peak / MIB}

    def cell_stats(self) -> dict[str, int]:
        """The allocator's statistics at the cell's end (``Framework.memory``), its peak replaced by
        the largest peak seen over the whole cell: what ``framework_*_mb`` records."""
        stats = {k: int(v) for k, v in self.adapter.memory(self.device).items()}
        if PEAK_KEY in stats:
            self.cell_peak = stats[PEAK_KEY] if self.cell_peak is None else max(self.cell_peak, stats[PEAK_KEY])
        if self.cell_peak is not None:
            stats[PEAK_KEY] = self.cell_peak
        return stats

    def details(self) -> Mapping[str, Any]:
        if not self.per_phase:
            return {}
        return {"method": f"allocator peak (memory({self.device!r})[{PEAK_KEY!r}]) read at each phase's end; "
                          "reset at its start with reset_memory_peak where the adapter can",
                "phases": dict(self.phases)}
