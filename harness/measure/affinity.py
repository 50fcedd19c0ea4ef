"""CPU affinity: every worker (and the peak probe) computes on the same ``threads`` cores."""

from __future__ import annotations

import os


def pin_threads(threads: int) -> list[int]:
    """Restrict this process to its first ``threads`` allowed CPUs, so every framework's cell (and
    the peak probe) computes on the same cores; returns the CPUs it may use now ([] where the OS
    has no affinity API)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
        if threads < len(cpus):
            os.sched_setaffinity(0, cpus[:threads])
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return []
