"""The host's step timer, handed to adapters as :class:`zoo.contract.Meter`, and the window
logic that turns step times into throughput samples. Every framework is timed by this code.

A window's throughput is its samples divided by the wall time from the start of its first step
to the end of its last, so work an adapter does between steps (slicing the next batch, Python
loop overhead) counts, as it would for a user.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

#: A window must be at least this long for timer resolution and scheduling noise not to matter.
MIN_WINDOW_S = 0.05


@dataclass
class StepMeter:
    """Records the start, end and sample count of each step the adapter wraps.

    ``on_epoch_end`` (set by the host) is called by :meth:`end_epoch` with the model handle;
    the time it takes is excluded from the training clock (``paused_s``)."""

    starts: list[float] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)
    samples: list[int] = field(default_factory=list)
    on_epoch_end: Callable[[Any], None] | None = None
    paused_s: float = 0.0
    epoch_ends: list[float] = field(default_factory=list)  # training-clock time at each epoch end
    #: Ask for synchronisation only at the last step of every ``sync_every`` steps (and the first
    #: step), so an asynchronous framework can pipeline inside a timing window; 1 = every step.
    sync_every: int = 1
    #: Steps before the first window (a warm-up shorter than a window): synchronised at their
    #: last step, and windows of ``sync_every`` steps count from there.
    sync_offset: int = 0
    #: Called at every synchronised step's end (the window boundaries), its result kept in
    #: :attr:`marks` as ``(step index, value)``: the contention evidence of each window.
    mark: Callable[[], Any] | None = None
    marks: list[tuple[int, Any]] = field(default_factory=list)
    _pending: int = field(default=0, init=False, repr=False)  # samples of the step being timed
    _start: float = field(default=0.0, init=False, repr=False)
    _sync: bool = field(default=True, init=False, repr=False)

    def wants_sync(self, index: int) -> bool:
        if index == 0 or index == self.sync_offset - 1:
            return True
        return index >= self.sync_offset and (index + 1 - self.sync_offset) % self.sync_every == 0

    def step(self, samples: int) -> "StepMeter":
        """``with meter.step(n) as sync:`` times one step (the meter is its own context manager:
        a generator-based one cost 1.4 us per step, 3 % of a 50 us MLP inference step)."""
        self._pending = int(samples)
        return self

    def __enter__(self) -> bool:
        sync = self._sync = self.wants_sync(len(self.starts))
        self._start = time.perf_counter()
        return sync

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        end = time.perf_counter()
        if exc_type is None:  # a step that raised is not a step
            self.ends.append(end)
            self.starts.append(self._start)
            self.samples.append(self._pending)
            if self.mark is not None and self._sync:
                self.marks.append((len(self.starts) - 1, self.mark()))

    def end_epoch(self, model: Any) -> None:
        t0 = time.perf_counter()
        self.epoch_ends.append(t0 - self.paused_s)
        if self.on_epoch_end is not None:
            self.on_epoch_end(model)
        self.paused_s += time.perf_counter() - t0

    @property
    def durations_s(self) -> list[float]:
        return [e - s for s, e in zip(self.starts, self.ends)]

    @property
    def total_s(self) -> float:
        return sum(self.durations_s)


def steady_start(durations: Sequence[float], cap: int, tolerance: float = 0.10, run: int = 5) -> int:
    """Warm-up length: the first step from which ``run`` consecutive steps all lie within
    ``tolerance`` of the median of the second half of the steps (taken as steady state); at
    least 1 (the first step includes tracing/compilation) and at most ``cap``."""
    d = np.asarray(durations, dtype=np.float64)
    if len(d) <= 1:
        return 0
    steady = float(np.median(d[len(d) // 2:]))
    ok = np.abs(d - steady) <= tolerance * steady
    for i in range(1, min(cap, len(d) - run) + 1):
        if ok[i:i + run].all():
            return i
    return min(cap, len(d) - 1)


def window_throughputs(meter: StepMeter, windows: int, skip: int, steps_per_window: int | None = None) -> list[float]:
    """Samples per second of ``windows`` consecutive groups of steps after ``skip`` (each
    ``steps_per_window`` long, or an equal share of the remaining steps). With
    ``meter.sync_every = K``, pass ``skip`` and ``steps_per_window`` as multiples of ``K`` so
    each window ends on a synchronised step."""
    starts, ends, samples = meter.starts[skip:], meter.ends[skip:], meter.samples[skip:]
    windows = max(1, min(windows, len(starts)))
    size = steps_per_window or len(starts) // windows
    out = []
    for w in range(windows):
        lo, hi = w * size, (w + 1) * size
        if hi > len(starts):
            break
        seconds = ends[hi - 1] - starts[lo]
        if seconds > 0:
            out.append(sum(samples[lo:hi]) / seconds)
    return out


def window_durations(meter: StepMeter, size: int, start: int = 0) -> list[float]:
    """Wall time of each complete group of ``size`` steps after the first ``start`` steps, from
    its first start to its last end."""
    return [meter.ends[i + size - 1] - meter.starts[i] for i in range(start, len(meter.starts) - size + 1, size)]


def steps_for_window(step_s: float, minimum: int = 5) -> int:
    """Steps per timing window so that a window lasts at least :data:`MIN_WINDOW_S`."""
    if step_s <= 0:
        return minimum
    return max(minimum, int(np.ceil(MIN_WINDOW_S / step_s)))
