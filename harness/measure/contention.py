"""Was the cell alone on its cores? Evidence gathered inside each timing window, so a contended
machine cannot produce confident garbage.

Per window the worker records how much CPU its threads got and how long they waited, runnable,
for a CPU (``/proc/self/task/*/schedstat``: time on CPU and time on the run queue), the
involuntary context switches and the load average. A thread that waits on the run queue is one
another process displaced, so ``cpu / (cpu + wait)`` is the share of the CPU the cell asked for
that it got (a framework that simply uses fewer threads than it was given is not penalised:
idle threads do not wait on the run queue). Where schedstat is missing the share falls back to
CPU time over wall time times the threads.

A cell is *disturbed* when a window got less than :data:`MIN_CPU_SHARE` of the CPU it asked for,
or when the device peak probed after the cell drifted from the run-start probe by more than
:data:`MAX_PEAK_DRIFT`.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

MIN_CPU_SHARE = 0.90
MAX_PEAK_DRIFT = 0.15
_TASKS = Path("/proc/self/task")


@dataclass(frozen=True)
class SchedSample:
    """A point in time: wall clock, this process's CPU time, run-queue wait and involuntary switches."""

    wall: float
    cpu_s: float
    wait_s: float | None  # None without schedstat
    nivcsw: int


def _schedstat() -> tuple[float, float] | None:
    cpu = wait = 0
    try:
        for task in _TASKS.iterdir():
            try:
                on_cpu, queued, _ = (task / "schedstat").read_text().split()
            except (OSError, ValueError):
                continue  # a thread that just ended
            cpu += int(on_cpu)
            wait += int(queued)
    except OSError:
        return None
    return cpu / 1e9, wait / 1e9


def sample() -> SchedSample:
    """Now, for this process (all its threads)."""
    stat = _schedstat()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = stat[0] if stat else usage.ru_utime + usage.ru_stime
    return SchedSample(time.perf_counter(), cpu, stat[1] if stat else None, usage.ru_nivcsw)


def windows(marks: Sequence[SchedSample], threads: int) -> list[dict[str, float]]:
    """Each interval between consecutive marks: its CPU share and what it is made of."""
    out = []
    for a, b in zip(marks, marks[1:]):
        wall = max(b.wall - a.wall, 1e-9)
        cpu = max(0.0, b.cpu_s - a.cpu_s)
        if a.wait_s is not None and b.wait_s is not None:
            wait = max(0.0, b.wait_s - a.wait_s)
            share = cpu / (cpu + wait) if cpu + wait > 0 else 1.0
        else:
            wait, share = float("nan"), min(1.0, cpu / (wall * threads))
        out.append({"wall_s": wall, "cpu_s": cpu, "wait_s": wait, "cpu_share": share,
                    "involuntary_switches": b.nivcsw - a.nivcsw})
    return out


def summary(per_window: Sequence[dict[str, float]]) -> dict[str, Any]:
    """The worst and the median window share, for a phase's measurement details."""
    shares = sorted(w["cpu_share"] for w in per_window)
    if not shares:
        return {}
    return {"min_cpu_share": shares[0], "median_cpu_share": shares[len(shares) // 2],
            "involuntary_switches": sum(w["involuntary_switches"] for w in per_window),
            "windows": len(shares), "loadavg": list(os.getloadavg())}


def judge(phases: dict[str, dict[str, Any]], peak_start: float, peak_end: float) -> dict[str, Any]:
    """The cell's verdict from its phases' window summaries and the peak before and after it."""
    reasons = []
    for phase, s in phases.items():
        if s and s["min_cpu_share"] < MIN_CPU_SHARE:
            reasons.append(f"{phase}: a timing window got {100 * s['min_cpu_share']:.0f}% of the CPU it asked for "
                           f"(below {100 * MIN_CPU_SHARE:.0f}%: another process ran on its cores)")
    drift = peak_end / peak_start - 1 if peak_start > 0 and peak_end > 0 else None
    if drift is not None and abs(drift) > MAX_PEAK_DRIFT:
        reasons.append(f"the device peak moved {100 * drift:+.0f}% between the run's start and this cell's end "
                       f"({peak_start:.0f} -> {peak_end:.0f} GFLOP/s)")
    return {"disturbed": bool(reasons), "reasons": reasons, "peak_start_gflops": peak_start,
            "peak_after_gflops": peak_end, "peak_drift": drift}
