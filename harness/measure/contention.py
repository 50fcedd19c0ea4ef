"""Was the cell alone on its cores? Evidence gathered inside each timing window, so a contended
machine cannot produce confident garbage.

At each window boundary the worker reads how busy the CPUs it is pinned to were
(``/proc/stat``: user, system, interrupts and hypervisor steal) and how much CPU its own threads
used (``/proc/self/task/*/schedstat``). What the pinned CPUs did beyond the cell's own work was
done by another process (or stolen by the hypervisor): ``others_share`` is that time over the
CPUs' capacity in the phase's measured windows. The run-queue wait of the cell's threads, the
involuntary context switches and the load average are kept beside it as diagnostics (a
framework whose own threads outnumber its cores waits on the run queue with no one else there,
so the wait alone cannot be the verdict).

A cell is *disturbed* when another process took more than :data:`MAX_OTHERS_SHARE` of its CPUs
during a phase's windows, or when the device peak probed after the cell drifted from the
run-start probe by more than :data:`MAX_PEAK_DRIFT`.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

MAX_OTHERS_SHARE = 0.10
MAX_PEAK_DRIFT = 0.15
_TASKS = Path("/proc/self/task")
_STAT = Path("/proc/stat")
_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class SchedSample:
    """A point in time: wall clock, this process's CPU time, run-queue wait and involuntary switches."""

    wall: float
    cpu_s: float
    wait_s: float | None  # None without schedstat
    nivcsw: int
    busy_s: float | None = None  # how busy this process's CPUs were (all processes), None without /proc/stat
    cpus: int = 1


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


def _cpus_busy() -> tuple[float | None, int]:
    """Seconds the CPUs this process may run on were busy (any process, steal included), and how many."""
    try:
        mine = os.sched_getaffinity(0)
        busy = 0
        for line in _STAT.read_text().splitlines():
            name, *fields = line.split()
            if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in mine:
                user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
                busy += user + nice + system + irq + softirq + steal
        return busy / _HZ, len(mine)
    except (OSError, ValueError, AttributeError):
        return None, 1


def sample() -> SchedSample:
    """Now, for this process (all its threads) and the CPUs it is pinned to."""
    stat = _schedstat()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = stat[0] if stat else usage.ru_utime + usage.ru_stime
    busy, cpus = _cpus_busy()
    return SchedSample(time.perf_counter(), cpu, stat[1] if stat else None, usage.ru_nivcsw, busy, cpus)


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


def others_share(first: SchedSample, last: SchedSample) -> float | None:
    """The share of the pinned CPUs' capacity between two samples that other processes used."""
    if first.busy_s is None or last.busy_s is None:
        return None
    wall = max(last.wall - first.wall, 1e-9)
    others = (last.busy_s - first.busy_s) - (last.cpu_s - first.cpu_s)
    return max(0.0, others) / (wall * max(1, last.cpus))


def summary(per_window: Sequence[dict[str, float]], marks: Sequence[SchedSample] = ()) -> dict[str, Any]:
    """A phase's measured windows: the share of its CPUs other processes took (the verdict's
    input), and the worst and median run-queue share of its own threads (diagnostics)."""
    shares = sorted(w["cpu_share"] for w in per_window)
    if not shares:
        return {}
    out = {"min_cpu_share": shares[0], "median_cpu_share": shares[len(shares) // 2],
           "involuntary_switches": sum(w["involuntary_switches"] for w in per_window),
           "windows": len(shares), "loadavg": list(os.getloadavg())}
    others = others_share(marks[0], marks[-1]) if len(marks) >= 2 else None
    if others is not None:
        out["others_share"] = others
    return out


def judge(phases: dict[str, dict[str, Any]], peak_start: float, peak_end: float) -> dict[str, Any]:
    """The cell's verdict from its phases' window summaries and the peak before and after it."""
    reasons = []
    for phase, s in phases.items():
        if s and s.get("others_share", 0.0) > MAX_OTHERS_SHARE:
            reasons.append(f"{phase}: other processes used {100 * s['others_share']:.0f}% of the cell's CPUs during its "
                           f"timing windows (more than {100 * MAX_OTHERS_SHARE:.0f}%: it was not alone on its cores)")
    drift = peak_end / peak_start - 1 if peak_start > 0 and peak_end > 0 else None
    if drift is not None and abs(drift) > MAX_PEAK_DRIFT:
        reasons.append(f"the device peak moved {100 * drift:+.0f}% between the run's start and this cell's end "
                       f"({peak_start:.0f} -> {peak_end:.0f} GFLOP/s)")
    return {"disturbed": bool(reasons), "reasons": reasons, "peak_start_gflops": peak_start,
            "peak_after_gflops": peak_end, "peak_drift": drift}
