"""The host's step timer, handed to adapters as :class:`zoo.contract.Meter`, and the window
logic that turns step times into throughput samples. Every framework is timed by this code.

A window's throughput is its samples divided by the wall time from the start of its first step
to the end of its last, so work an adapter does between steps (slicing the next batch, Python
loop overhead) counts, as it would for a user. How long a window and the warm-up before the
windows must be depends on the device (:class:`WindowRule`, :func:`window_rule`): a CPU runs each
step synchronously, a GPU starts every window with an empty queue. :class:`FirstStep` is where
the first step of one adapter call fell, from which the compile times are computed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

#: A CPU window must be at least this long for timer resolution and scheduling noise not to matter.
MIN_WINDOW_S = 0.05
#: A GPU window must be at least this long (:data:`GPU_RULE`).
GPU_MIN_WINDOW_S = 1.0
#: The longest a GPU is taken to stay idle at a window's start, waiting for the host to issue the
#: window's first kernel after the synchronisation that ended the previous window: a kernel launch
#: costs 5-20 us and a compiled call's dispatch (tf.function, jax.jit) up to about 1 ms, so 10 ms
#: is a generous bound. Not measured on a GPU yet.
GPU_QUEUE_FILL_S = 0.01
#: The most steps a GPU warm-up may take (about 3 s of 30 us steps): it bounds the meter's
#: memory and the warm-up's length where the step-time estimate is far too short.
MAX_WARMUP_STEPS = 100_000


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


@dataclass(frozen=True)
class WindowRule:
    """How a throughput phase sizes its timing windows and its warm-up on one kind of device.

    A window lasts at least :meth:`window_s` and holds at least ``min_steps`` steps. On an
    asynchronous device (``queue_fill_s > 0``) every window starts with an empty queue, since the
    previous one ended with a synchronisation: the device idles until the host has issued the
    window's first work, at most ``queue_fill_s`` and at most one step. The window is made long
    enough that this idle time is at most ``max_fill_share`` of it. The warm-up is about
    ``warmup_s`` of work: capped by ``--warmup-cap`` steps on a synchronous device, in whole
    windows (so the steady point can be found among them) on an asynchronous one."""

    device: str
    min_window_s: float
    min_steps: int = 5
    warmup_s: float = 2.0
    queue_fill_s: float = 0.0  # 0: steps are synchronous, no queue to fill
    max_fill_share: float = 0.01
    #: Windows sized for steps this much faster than estimated, so one a little faster than its
    #: estimate still lasts ``window_s`` (0 on a CPU: the 50 ms rule is a floor with room to spare).
    size_margin: float = 0.0
    why: str = ""

    @property
    def asynchronous(self) -> bool:
        """The device queues work, so a window's start can leave it idle."""
        return self.queue_fill_s > 0

    def window_s(self, step_s: float) -> float:
        """The shortest window for steps of ``step_s`` seconds."""
        fill = min(step_s, self.queue_fill_s) if self.asynchronous and step_s > 0 else 0.0
        return max(self.min_window_s, fill / self.max_fill_share)

    def steps(self, step_s: float) -> int:
        """Steps per window for steps of ``step_s`` seconds (``min_steps`` when unknown)."""
        if step_s <= 0:
            return self.min_steps
        return max(self.min_steps, int(np.ceil(self.window_s(step_s) * (1 + self.size_margin) / step_s)))

    def warmup_steps(self, cap: int, step_s: float, window_steps: int) -> int:
        """The warm-up budget in steps, for windows of ``window_steps`` steps of ``step_s``.

        Synchronous device: at most ``cap`` (``--warmup-cap``) and about ``warmup_s`` of work, at
        least ``min(cap, 3)``. Asynchronous device: whole windows, at least ``warmup_s`` of work
        (clocks ramping up, autotuning, allocator growth take seconds, not steps); ``cap`` is a
        CPU-sized step count and does not shorten it. At most :data:`MAX_WARMUP_STEPS` (whole
        windows, at least one): the budget is sized from a step time that leaves out the
        per-window synchronisation and the meter's own cost, so for microsecond steps in windows
        fixed small with ``--window-steps`` it would otherwise run to millions of steps."""
        if not self.asynchronous:
            if step_s <= 0:
                return cap
            return int(min(cap, max(3, np.ceil(self.warmup_s / step_s))))
        window = window_steps * step_s if step_s > 0 else self.min_window_s
        windows = int(max(1, np.ceil(self.warmup_s / window - 1e-9)))
        return min(windows, max(1, MAX_WARMUP_STEPS // max(1, window_steps))) * window_steps

    def details(self) -> dict[str, Any]:
        """The rule as recorded in a phase's details."""
        return {"device": self.device, "window_s_target": self.min_window_s, "min_steps": self.min_steps,
                "queue_fill_bound_s": self.queue_fill_s, "max_fill_share": self.max_fill_share,
                "size_margin": self.size_margin,
                "warmup_s": self.warmup_s,
                "warmup_in": "whole windows" if self.asynchronous else "steps, at most --warmup-cap",
                "why": self.why}


CPU_RULE = WindowRule(
    "cpu", MIN_WINDOW_S, min_steps=5, warmup_s=2.0,
    why="CPU steps run synchronously: a window of at least 50 ms and 5 steps keeps timer resolution "
        "and scheduling noise small; the warm-up is at most --warmup-cap steps and about 2 s of work")
GPU_RULE = WindowRule(
    "gpu", GPU_MIN_WINDOW_S, min_steps=5, warmup_s=3.0, queue_fill_s=GPU_QUEUE_FILL_S, max_fill_share=0.01,
    size_margin=0.1,
    why="each GPU window starts with an empty queue (the previous one ended with a synchronisation): "
        "the GPU idles until the window's first kernel is issued, taken as at most 10 ms or one step, "
        "so a window of at least 1 s keeps that under 1 %; windows are sized from the per-step time of "
        "one pipelined window (synchronised only at its end), with 10 % to spare; the warm-up is whole windows, at least 3 s "
        "of work (clocks, autotuning, allocator growth), not --warmup-cap steps")
RULES: dict[str, WindowRule] = {"cpu": CPU_RULE, "gpu": GPU_RULE}


def window_rule(device: str) -> WindowRule:
    """The window rule of ``device`` (``"cpu"`` or ``"gpu"``, as in a cell)."""
    try:
        return RULES[device]
    except KeyError:
        raise ValueError(f"no timing-window rule for device {device!r}; known: {', '.join(RULES)} "
                         "(add a WindowRule to harness.measure.meter.RULES)") from None


def steps_for_window(step_s: float, minimum: int = 5, device: str = "cpu") -> int:
    """Steps per timing window on ``device`` so that a window lasts at least its rule's
    minimum (:data:`MIN_WINDOW_S` on a CPU, :data:`GPU_MIN_WINDOW_S` on a GPU), and at least
    ``minimum`` steps."""
    rule = window_rule(device)
    return max(minimum, rule.steps(step_s))


def pipelined_step_s(meter: StepMeter) -> float:
    """Seconds per step of one window timed with ``sync_every`` = its length: from the end of
    its first (synchronised) step to the end of its last, over the steps in between. On an
    asynchronous device this is shorter than a synchronised step; 0 with fewer than 2 steps."""
    if len(meter.ends) < 2:
        return 0.0
    return (meter.ends[-1] - meter.ends[0]) / (len(meter.ends) - 1)


@dataclass(frozen=True)
class FirstStep:
    """Where the first timed step of one adapter call fell, from the start of the call.

    ``before_s`` is the adapter's work before that step (building or tracing its step function,
    building the optimiser, staging the split on the device); ``step_s`` is the first step itself
    (with any compilation at first call, autotuning, CUDA module loading)."""

    before_s: float
    step_s: float

    @classmethod
    def of(cls, call_start: float, meter: StepMeter) -> "FirstStep | None":
        """From the ``time.perf_counter()`` taken just before the adapter call and the meter
        that call used; ``None`` when it timed no step."""
        if not meter.starts:
            return None
        return cls(meter.starts[0] - call_start, meter.ends[0] - meter.starts[0])

    def compile_s(self, steady_step_s: float) -> float:
        """Call start to the end of the first step, minus one steady step (never negative)."""
        return max(0.0, self.before_s + self.step_s - steady_step_s)

    def details(self, steady_step_s: float, includes: str) -> dict[str, Any]:
        """The figure and its parts, as recorded in a phase's details: ``compile_s`` =
        ``before_first_step_s`` + ``first_step_extra_s`` (clipped at 0)."""
        return {"compile_s": self.compile_s(steady_step_s), "before_first_step_s": self.before_s,
                "first_step_s": self.step_s, "first_step_extra_s": self.step_s - steady_step_s,
                "steady_step_s": steady_step_s, "includes": includes}
