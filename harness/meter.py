"""The host's step timer, handed to adapters as :class:`zoo.contract.Meter`, and the window
logic that turns step times into throughput samples. Every framework is timed by this code."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator


@dataclass
class StepMeter:
    """Records the wall time and sample count of each step the adapter wraps."""

    durations_s: list[float] = field(default_factory=list)
    samples: list[int] = field(default_factory=list)

    @contextmanager
    def step(self, samples: int) -> Iterator[None]:
        start = time.perf_counter_ns()
        yield
        self.durations_s.append((time.perf_counter_ns() - start) / 1e9)
        self.samples.append(int(samples))

    @property
    def total_s(self) -> float:
        return sum(self.durations_s)


def warmup_steps(n_steps: int) -> int:
    """Steps excluded from steady-state throughput: the first (compile/trace) step plus a short
    settling period, at most 10 % of the steps."""
    return min(n_steps - 1, max(1, n_steps // 10)) if n_steps > 1 else 0


def window_throughputs(meter: StepMeter, windows: int, skip: int) -> list[float]:
    """Samples per second of ``windows`` consecutive equal groups of steps after ``skip``."""
    durations, samples = meter.durations_s[skip:], meter.samples[skip:]
    windows = max(1, min(windows, len(durations)))
    size = len(durations) // windows
    out = []
    for w in range(windows):
        lo, hi = w * size, (w + 1) * size if w < windows - 1 else len(durations)
        seconds = sum(durations[lo:hi])
        if seconds > 0:
            out.append(sum(samples[lo:hi]) / seconds)
    return out
