"""Host memory of the worker process, per phase, as a tracker.

* The baseline is the worker's *current* resident set when the first phase after the task's data
  is loaded starts (``load``): the framework is imported and prepared and the host's arrays are in
  memory, which every framework carries alike. (It used to be the high-water mark right after
  ``prepare``, before the data: TF imports SciPy and scikit-learn during ``prepare``, torch and
  JAX only with the data, so the old figure ranked the frameworks wrongly.)
* Each measured phase reports the peak working set it reached over that baseline. On Linux the
  high-water mark is reset at the phase's start (``5`` into ``/proc/self/clear_refs``) and read at
  its end (``VmHWM``): exact, at no cost while the phase runs. Elsewhere (or where the reset is
  refused) a thread samples the resident set every millisecond (as optimum-benchmark's memory
  tracker does); a peak shorter than that can be missed, and the record says which method ran.
* ``peak_rss_mb`` is the largest of the phases' figures; ``process_peak_mb`` the process's own
  peak resident set, data, imports and all.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Mapping

from zoo.trackers import Tracker, TrackerContext, Value

from harness.measure.trackers.phases import phase_metrics

#: Phase -> the metric of its peak over the baseline (``fine_tune_peak_mb``, ``inference_peak_mb``, ...).
PHASE_METRICS = phase_metrics("peak_mb")
#: The phase whose start takes the baseline: the first one after the task's data are loaded.
BASELINE_PHASE = "load"
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
MIB = 2**20


def _status_kib(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def current_rss_bytes() -> int:
    """This process's resident set now."""
    kib = _status_kib("VmRSS")
    if kib is not None:
        return kib * 1024
    import psutil  # the portable fallback

    return int(psutil.Process().memory_info().rss)


def reset_high_water_mark() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux); False where it cannot."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return _status_kib("VmHWM") is not None


class _Sampler:
    """The peak of :func:`current_rss_bytes` sampled every ``interval`` seconds in a thread."""

    def __init__(self, interval: float = 0.001):
        self.interval, self.peak = interval, current_rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="zoo-rss-sampler")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, current_rss_bytes())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return max(self.peak, current_rss_bytes())


class HostMemoryTracker(Tracker):
    """Peak working set of the worker per phase over the post-data baseline."""

    name = "host_memory"

    def __init__(self, context: TrackerContext):
        super().__init__(context)
        self.baseline: int | None = None
        self.process_peak = current_rss_bytes()
        self.method = "VmHWM reset per phase (clear_refs)" if reset_high_water_mark() else "RSS sampled every 1 ms"
        self._sampler: _Sampler | None = None
        self.phase_peaks: dict[str, int] = {}

    def _note_process_peak(self) -> None:
        hwm = _status_kib("VmHWM")
        self.process_peak = max(self.process_peak, hwm * 1024 if hwm is not None else current_rss_bytes())

    def start(self, phase: str) -> None:
        if phase == BASELINE_PHASE and self.baseline is None:
            self.baseline = current_rss_bytes()
        if phase not in PHASE_METRICS:
            return
        self._note_process_peak()  # the reset below forgets the peak so far
        if self.method.startswith("VmHWM") and reset_high_water_mark():
            return
        self.method = "RSS sampled every 1 ms"
        self._sampler = _Sampler()

    def stop(self, phase: str) -> Mapping[str, Value]:
        if phase not in PHASE_METRICS:
            return {}
        if self._sampler is not None:
            peak, self._sampler = self._sampler.stop(), None
        else:
            hwm = _status_kib("VmHWM")
            peak = hwm * 1024 if hwm is not None else current_rss_bytes()
        self.process_peak = max(self.process_peak, peak)
        self.phase_peaks[phase] = peak
        return {PHASE_METRICS[phase]: max(0, peak - (self.baseline or 0)) / MIB}

    def finish(self) -> Mapping[str, Value]:
        self._note_process_peak()
        baseline = self.baseline if self.baseline is not None else current_rss_bytes()
        over = [max(0, p - baseline) for p in self.phase_peaks.values()]
        return {"peak_rss_mb": (max(over) if over else 0.0) / MIB, "baseline_rss_mb": baseline / MIB,
                "process_peak_mb": self.process_peak / MIB}

    def details(self) -> Mapping[str, Any]:
        return {"method": self.method, "baseline": "resident set when the load phase starts (after the data)"}
