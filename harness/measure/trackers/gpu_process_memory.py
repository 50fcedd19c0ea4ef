"""The GPU memory the driver attributes to the worker process (NVML's per-process figure), per phase.

An allocator's peak counts the tensors it handed out; the driver counts everything the process
holds on the GPU: the CUDA context, cuDNN/cuBLAS workspaces, the allocator's cached but unused
blocks, another library's allocations. The difference is what a user sizing a GPU needs, and
``allocator peak <= NVML peak`` is a check of both figures.

One ``nvidia-smi --query-compute-apps=timestamp,pid,gpu_uuid,used_memory
--format=csv,noheader,nounits -lms 100`` loop per GPU cell
(:class:`~harness.measure.trackers.smi_loop.SmiLoop`). The worker's rows of one sweep (one
timestamp) are summed over GPUs (TF and JAX open every visible GPU), and each measured phase
reports the largest sum among the sweeps taken during it as ``<phase>_nvml_mb``;
``nvml_peak_mb`` is the largest over the phases. The figure is *absent*, never zero, when
``nvidia-smi`` is missing, when it never lists the worker's pid (in a container the driver
reports host PIDs, which the worker cannot see), or when a phase is shorter than the interval;
the record's details say which. (``pynvml`` would avoid the subprocess; it is not a dependency
of zoo-bench, and nvidia-smi is NVML's own client.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from zoo.trackers import TrackerContext, Value

from harness.measure.trackers.phases import phase_metrics
from harness.measure.trackers.smi_loop import INTERVAL_MS, SmiLoop, SmiPhaseTracker, find_nvidia_smi, parse_timestamp

#: Measured phase -> the metric of the process footprint's peak in it.
PHASE_METRICS = phase_metrics("nvml_mb")
CELL_METRIC = "nvml_peak_mb"
QUERY = ("--query-compute-apps=timestamp,pid,gpu_uuid,used_memory", "--format=csv,noheader,nounits")


@dataclass(frozen=True)
class AppRow:
    """One line of the query: a process's memory on one GPU (MiB; ``None`` where not reported),
    and when it was taken (``time.time()`` seconds; ``None`` without a timestamp)."""

    t: float | None
    pid: int
    gpu: str
    used_mib: float | None


def parse_app_row(text: str) -> AppRow | None:
    """``2024/03/12 10:00:00.123, 12345, GPU-5a2f..., 1536`` (``[N/A]`` memory is ``None``), or
    ``None`` for another line (``No running processes found``, an error)."""
    fields = [f.strip() for f in text.split(",")]
    if len(fields) != 4 or not fields[1].isdigit():
        return None
    try:
        used = float(fields[3])
    except ValueError:
        used = None
    return AppRow(parse_timestamp(fields[0]), int(fields[1]), fields[2], used)


def sweep_totals(rows: Sequence[tuple[float, AppRow]], interval_s: float) -> list[float]:
    """The process's total over GPUs per sweep of the loop, from its rows ``(time, row)`` in time
    order: a sweep's rows share a time, so a row starts a new sweep when it comes more than half an
    interval after the sweep's first, or names a GPU the sweep already has."""
    totals: list[float] = []
    sweep_t, gpus = None, set()
    for t, row in rows:
        if row.used_mib is None:
            continue
        if sweep_t is None or t - sweep_t > interval_s / 2 or row.gpu in gpus:
            totals.append(0.0)
            sweep_t, gpus = t, set()
        gpus.add(row.gpu)
        totals[-1] += row.used_mib
    return totals


class GpuProcessMemoryTracker(SmiPhaseTracker):
    """Peak GPU memory the driver attributes to the worker's pid, per phase."""

    name = "gpu_process_memory"

    def __init__(self, context: TrackerContext, env: Mapping[str, str] | None = None):
        super().__init__(context)
        self.peaks: dict[str, float] = {}
        self.phases: dict[str, str] = {}
        self.other_pids: set[int] = set()
        if context.device == "cpu":
            return
        executable = find_nvidia_smi(env)
        if executable is None:
            self.reason = "nvidia-smi is not on PATH (it comes with the NVIDIA driver): no NVML process figure"
            return
        self.loop = SmiLoop(executable, QUERY, INTERVAL_MS, env)
        self.reason = self.loop.error

    def stop(self, phase: str) -> Mapping[str, Value]:
        span = self.span(phase)
        if span is None or self.loop is None:
            return {}
        start, stop = span
        rows = self.loop.samples(parse_app_row, start, stop)
        mine = [(t, r) for t, r in rows if r.pid == self.context.pid]
        self.other_pids.update(r.pid for _, r in rows if r.pid != self.context.pid)
        totals = sweep_totals(mine, self.loop.interval_s)
        if not totals:
            self.phases[phase] = self._why_none(stop - start, bool(mine))
            return {}
        self.peaks[phase] = max(totals)
        self.phases[phase] = f"{len(totals)} samples"
        return {PHASE_METRICS[phase]: self.peaks[phase]}

    def _why_none(self, seconds: float, listed: bool) -> str:
        stopped = self.loop.exited() if self.loop is not None else ""
        if stopped:
            return stopped
        if listed:
            return f"nvidia-smi lists pid {self.context.pid} without its memory ([N/A]: the driver does not report it)"
        if seconds < 2 * INTERVAL_MS / 1000:
            return f"no sample in the {seconds:.3f} s phase (one every {INTERVAL_MS} ms)"
        return (f"nvidia-smi did not list pid {self.context.pid} (it listed {len(self.other_pids)} other "
                "process(es)): in a container the driver reports host PIDs, or the process holds no GPU memory")

    def finish(self) -> Mapping[str, Value]:
        self.close()
        return {CELL_METRIC: max(self.peaks.values())} if self.peaks else {}

    def details(self) -> Mapping[str, Any]:
        short = self.loop_details()
        if short is not None:
            return short
        return {**self.method_details(), "pid": self.context.pid, "phases": dict(self.phases)}
