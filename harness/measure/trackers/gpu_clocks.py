"""GPU clocks, power, temperature, utilisation and throttle reasons of a GPU cell, per phase.

One ``nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu,
utilization.gpu,clocks_throttle_reasons.active --format=csv,noheader,nounits -i <GPU> -lms 100``
loop per cell
(:class:`~harness.measure.trackers.smi_loop.SmiLoop`), on the cell's GPU: the first device its
``CUDA_VISIBLE_DEVICES`` makes visible (:func:`harness.measure.gpu_info.visible_gpu`; GPU 0
without it), named by UUID so the index order cannot mislead. Each measured phase gets

* ``<phase>_gpu_sm_clock_mhz``: the median SM clock (a throttled GPU shows here first),
* ``<phase>_gpu_power_w`` / ``<phase>_gpu_power_peak_w``: mean and largest board power,
* ``<phase>_gpu_energy_j``: the power integrated over the phase (trapezoids between samples,
  the first and last sample held to the phase's edges),
* ``<phase>_gpu_temp_max_c`` and ``<phase>_gpu_util_pct`` (mean utilisation),

and, in the record's details, the throttle reasons seen (decoded bit names with the share of
samples that had each), the median memory clock, the sample count and any field the GPU does
not report (``[N/A]``, ``[Not Supported]``). ``power.draw`` is the driver's board power; on
Ampere and newer it is averaged over about a second, so the energy of a phase much shorter than
that is approximate. A CPU cell records nothing; a GPU cell without ``nvidia-smi`` or without a
visible GPU records no figure and says why. Nothing here imports a framework or raises.
"""

from __future__ import annotations

import re
import statistics
import subprocess
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from zoo.trackers import TrackerContext, Value

from harness.measure.gpu_info import visible_gpu
from harness.measure.trackers.phases import phase_metrics
from harness.measure.trackers.smi_loop import INTERVAL_MS, SmiLoop, SmiPhaseTracker, find_nvidia_smi, parse_timestamp

#: The queried fields, in order (``timestamp``: when the driver was asked, which places a sample
#: in its phase). Drivers from 535 on call the last one ``clocks_event_reasons`` and keep the old
#: name; :data:`THROTTLE_FIELD_NEW` is asked where the old one is refused.
FIELDS = ("timestamp", "clocks.sm", "clocks.mem", "power.draw", "temperature.gpu", "utilization.gpu",
          "clocks_throttle_reasons.active")
THROTTLE_FIELD_NEW = "clocks_event_reasons.active"
#: NVML's ``nvmlClocksThrottleReason*`` bits, by the names nvidia-smi gives them.
THROTTLE_BITS: dict[int, str] = {
    0x001: "gpu_idle",
    0x002: "applications_clocks_setting",
    0x004: "sw_power_cap",
    0x008: "hw_slowdown",
    0x010: "sync_boost",
    0x020: "sw_thermal_slowdown",
    0x040: "hw_thermal_slowdown",
    0x080: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}
#: Per-phase figure -> metric name, for every measured phase (defined in the metric catalogue).
SM_CLOCK = phase_metrics("gpu_sm_clock_mhz")
POWER = phase_metrics("gpu_power_w")
POWER_PEAK = phase_metrics("gpu_power_peak_w")
ENERGY = phase_metrics("gpu_energy_j")
TEMP_MAX = phase_metrics("gpu_temp_max_c")
UTIL = phase_metrics("gpu_util_pct")
PROBE_TIMEOUT_S = 20
_NUMBER = re.compile(r"^(-?\d+(?:\.\d+)?)\s*(?:MHz|W|C|%)?$")
_MASK = re.compile(r"^0x[0-9a-fA-F]+$")
#: What nvidia-smi prints for a field a GPU or driver does not report (with or without brackets).
_NOT_REPORTED = re.compile(r"^\[?(N/A|Not Supported|Unknown Error|Insufficient Permissions|GPU is lost|"
                           r"Requested functionality has been deprecated)\]?$", re.IGNORECASE)


@dataclass(frozen=True)
class GpuSample:
    """One line of the query; ``None`` where the GPU did not report the field (``t``: when it was
    taken, ``time.time()`` seconds; ``None`` when the line had no timestamp)."""

    t: float | None
    sm_mhz: float | None
    mem_mhz: float | None
    power_w: float | None
    temp_c: float | None
    util_pct: float | None
    throttle: int | None


def _number(field: str) -> float | None:
    m = _NUMBER.match(field)
    return float(m.group(1)) if m else None


def _field(field: str) -> bool:
    """Whether ``field`` is what nvidia-smi prints for one value: a number or a not-reported mark."""
    return _NUMBER.match(field) is not None or _NOT_REPORTED.match(field) is not None


def parse_sample(text: str) -> GpuSample | None:
    """One ``--format=csv,noheader,nounits`` line of :data:`FIELDS` (``[N/A]``, ``[Not Supported]``
    and the like become ``None``), or ``None`` when the line is not a sample (a message such as
    ``No devices were found``)."""
    fields = [f.strip() for f in text.split(",")]
    if len(fields) != len(FIELDS):
        return None
    stamp, *values, mask = fields
    t = parse_timestamp(stamp)
    if t is None and not _NOT_REPORTED.match(stamp):
        return None
    if not all(_field(f) for f in values):
        return None
    if _MASK.match(mask):
        throttle = int(mask, 16)
    elif _NOT_REPORTED.match(mask):
        throttle = None
    else:
        return None
    return GpuSample(t, *(_number(f) for f in values), throttle)


def decode_throttle(mask: int) -> list[str]:
    """The names of the reasons set in a ``clocks_throttle_reasons.active`` bit mask (an unknown bit
    as ``bit_0x...``); ``[]`` for ``0x0``: nothing holds the clocks back."""
    names = [name for bit, name in THROTTLE_BITS.items() if mask & bit]
    return names + [f"bit_{1 << i:#x}" for i in range(64) if mask & (1 << i) and (1 << i) not in THROTTLE_BITS]


def energy_j(points: Sequence[tuple[float, float]], start: float, stop: float) -> float:
    """Power samples ``(t, watts)`` integrated over ``[start, stop]`` in joules: trapezoids between
    samples, the first and the last held to the edges of the interval."""
    if not points:
        return 0.0
    points = sorted(points)
    total = points[0][1] * max(0.0, points[0][0] - start) + points[-1][1] * max(0.0, stop - points[-1][0])
    for (t0, p0), (t1, p1) in zip(points, points[1:]):
        total += 0.5 * (p0 + p1) * (t1 - t0)
    return total


def aggregate(samples: Sequence[tuple[float, GpuSample]], phase: str, start: float,
              stop: float) -> tuple[dict[str, float], dict[str, Any]]:
    """The metrics of measured phase ``phase`` from its samples ``(arrival time, sample)`` in
    ``[start, stop]``, and what the details say about them (sample count, memory clock, throttle
    reasons with the share of samples, fields never reported)."""
    details: dict[str, Any] = {"samples": len(samples)}
    if not samples:
        return {}, details

    def present(attr: str) -> list[tuple[float, float]]:
        return [(t, getattr(s, attr)) for t, s in samples if getattr(s, attr) is not None]

    sm, mem, power, temp, util = (present(a) for a in ("sm_mhz", "mem_mhz", "power_w", "temp_c", "util_pct"))
    metrics: dict[str, float] = {}
    if sm:
        metrics[SM_CLOCK[phase]] = statistics.median(v for _, v in sm)
    if power:
        metrics[POWER[phase]] = statistics.fmean(v for _, v in power)
        metrics[POWER_PEAK[phase]] = max(v for _, v in power)
        metrics[ENERGY[phase]] = energy_j(power, start, stop)
    if temp:
        metrics[TEMP_MAX[phase]] = max(v for _, v in temp)
    if util:
        metrics[UTIL[phase]] = statistics.fmean(v for _, v in util)
    if mem:
        details["mem_clock_mhz"] = statistics.median(v for _, v in mem)
    masks = [s.throttle for _, s in samples if s.throttle is not None]
    if masks:
        seen: dict[str, int] = {}
        for mask in masks:
            for name in decode_throttle(mask):
                seen[name] = seen.get(name, 0) + 1
        details["throttle_reasons"] = {name: round(n / len(masks), 3) for name, n in sorted(seen.items())}
    missing = [field for field, values in zip(FIELDS[1:], (sm, mem, power, temp, util, masks)) if not values]
    if missing:
        details["not_reported"] = missing
    return metrics, details


def _probe(executable: str, fields: Sequence[str], gpu: str, env: Mapping[str, str] | None) -> str:
    """Ask the query once: ``""`` when nvidia-smi answers it, else what it said."""
    try:
        proc = subprocess.run([executable, f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits",
                               "-i", gpu], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S,
                              env=None if env is None else dict(env))
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{type(exc).__name__}: {exc}"
    said = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        return f"exit status {proc.returncode}: {said}"
    return "" if any(parse_sample(line) for line in said.splitlines()) else f"no sample in its answer: {said!r}"


class GpuClocksTracker(SmiPhaseTracker):
    """Clocks, power, temperature, utilisation and throttle reasons of the cell's GPU, per phase."""

    name = "gpu_clocks"

    def __init__(self, context: TrackerContext, env: Mapping[str, str] | None = None):
        super().__init__(context)
        self.gpu = ""
        self.phases: dict[str, dict[str, Any]] = {}
        if context.device == "cpu":
            return
        executable = find_nvidia_smi(env)
        if executable is None:
            self.reason = "nvidia-smi is not on PATH (it comes with the NVIDIA driver): no clocks, power or throttling"
            return
        row, why = visible_gpu(env)
        if row is None:
            self.reason = f"the cell's GPU is not known ({why}): no clocks, power or throttling"
            return
        self.gpu = f"GPU {row.index} ({row.name}, {row.uuid})"
        fields = list(FIELDS)
        refused = _probe(executable, fields, row.uuid, env)
        if refused:
            fields[-1] = THROTTLE_FIELD_NEW
            if _probe(executable, fields, row.uuid, env):
                self.reason = f"nvidia-smi refused the query: {refused}"
                return
        self.loop = SmiLoop(executable, [f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits",
                                         "-i", row.uuid], INTERVAL_MS, env)
        self.reason = self.loop.error

    def stop(self, phase: str) -> Mapping[str, Value]:
        span = self.span(phase)
        if span is None or self.loop is None:
            return {}
        start, stop = span
        samples = self.loop.samples(parse_sample, start, stop)
        metrics, details = aggregate(samples, phase, start, stop)
        details["seconds"] = round(stop - start, 3)
        if not samples:
            details["why_none"] = self.loop.exited() or (
                f"no sample was taken in the {stop - start:.3f} s phase (one every {INTERVAL_MS} ms)")
        self.phases[phase] = details
        return metrics

    def finish(self) -> Mapping[str, Value]:
        self.close()
        return {}

    def details(self) -> Mapping[str, Any]:
        short = self.loop_details()
        if short is not None or self.loop is None:
            return short or {}
        out: dict[str, Any] = {**self.method_details(), "gpu": self.gpu, "phases": dict(self.phases)}
        if self.loop.cpus:
            out["sampler_cpus"] = self.loop.cpus
        return out
