"""The measured phases of a cell and the prefix each gives its per-phase metrics.

Every per-phase figure (host peak working set, device allocator peak, the NVML process
footprint, GPU clocks and power) is named ``<prefix>_<what>``: ``fine_tune_peak_mb``,
``inference_device_peak_mb``, ``training_gpu_energy_j``. The trackers build their names here and
the metric catalogue (:mod:`harness.results.metrics`) defines the same names from the same
table, so a new phase or a new per-phase figure is one line in each.
"""

from __future__ import annotations

#: Measured phase (as :class:`harness.worker.tracking.TrackerSet` names it) -> metric prefix.
PHASE_PREFIX: dict[str, str] = {
    "load": "load",
    "fine_tune": "fine_tune",
    "inference_throughput": "inference",
    "latency": "latency",
    "train_throughput": "training",
}


def phase_metric(phase: str, what: str) -> str:
    """The name of phase ``phase``'s figure ``what`` (``phase_metric("latency", "nvml_mb")`` is
    ``"latency_nvml_mb"``); ``KeyError`` for a phase that is not measured."""
    return f"{PHASE_PREFIX[phase]}_{what}"


def phase_metrics(what: str) -> dict[str, str]:
    """Measured phase -> the name of its figure ``what``, for every measured phase."""
    return {phase: phase_metric(phase, what) for phase in PHASE_PREFIX}
