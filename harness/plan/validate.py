"""Every setting of a request checked before anything runs: zero, negative and non-finite values
and values this machine cannot honour are refused with the flag's name and what to give instead.
Nothing is replaced silently by a default."""

from __future__ import annotations

import math
import os
from typing import Any

from harness.plan.request import BenchRequest, PlanError

#: Seeds feed NumPy's generator and every framework's: non-negative and below 2**32 for all.
MAX_SEED = 2**32 - 1


def _int(flag: str, value: Any, minimum: int, maximum: int | None = None, hint: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PlanError(f"{flag} must be a whole number, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise PlanError(f"{flag} must be {bound}, got {value}{hint}")


def _positive_finite(flag: str, value: Any, hint: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise PlanError(f"{flag} must be a finite number above 0, got {value!r}{hint}")


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity), which is what a cell can be pinned to."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def validate_request(request: BenchRequest) -> None:
    """Raise :class:`PlanError` naming the first setting of ``request`` that cannot be run."""
    if request.batch_size is not None:
        _int("--batch-size", request.batch_size, 1)
    if request.epochs is not None:
        _int("--epochs", request.epochs, 1)
    if request.learning_rate is not None:
        _positive_finite("--lr", request.learning_rate, " (Adam's step size; e.g. 1e-3)")
    cpus = available_cpus()
    _int("--threads", request.threads, 1, cpus, f": this process may use {cpus} CPU(s), and a cell is pinned to "
         f"its own threads' worth of them")
    _int("--seed", request.seed, 0, MAX_SEED)
    _int("--windows", request.windows, 1)
    _int("--window-steps", request.window_steps, 0, hint=" (0 sizes each window to at least 50 ms)")
    _int("--warmup-cap", request.warmup_cap, 1)
    _int("--repeats", request.repeats, 1)
    _int("--retry-disturbed", request.retry_disturbed, 0, 10)
    _positive_finite("--timeout", request.timeout_s, " seconds (it is the limit that stops a hung cell)")
