"""Where a run's cells go on one machine: which GPU each GPU cell is pinned to, which CPUs a cell
running beside others may use, and that CPU cells never see a GPU.

TensorFlow and JAX open every GPU they can see, so a GPU cell's worker gets
``CUDA_VISIBLE_DEVICES`` set to exactly one GPU (its device 0), and a CPU cell's worker gets
``CUDA_VISIBLE_DEVICES=""``. The GPUs come from ``--gpus`` (entries as ``CUDA_VISIBLE_DEVICES``
takes them: indices or UUIDs), else from what the ``zoo`` process sees: its own
``CUDA_VISIBLE_DEVICES``, else every GPU ``nvidia-smi`` lists. Indices are nvidia-smi's (PCI bus
order): GPU cells get ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` unless the caller set an order, so that
CUDA numbers the GPUs the same way on a machine with mixed models.

With ``--parallel-gpus`` the local executor runs up to one cell per GPU at a time, each pinned to
its own GPU and to its own ``--threads`` CPUs (cells that share cores disturb each other's
timings); CPU cells always run one at a time. Nothing here starts a process but ``nvidia-smi``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from harness.measure.gpu_info import GpuRow, query_gpus
from harness.plan.request import BenchRequest, PlanError
from harness.plan.validate import validate_gpus, validate_placement

VISIBLE = "CUDA_VISIBLE_DEVICES"
ORDER = "CUDA_DEVICE_ORDER"


@dataclass(frozen=True)
class Placement:
    """The GPUs of a run and how its GPU cells use them (recorded in the manifest)."""

    gpus: tuple[str, ...] = ()  # CUDA_VISIBLE_DEVICES entries; each GPU cell is pinned to one of them
    parallel: bool = False  # up to one GPU cell per GPU at the same time
    source: str = ""  # where the list came from: "--gpus", "CUDA_VISIBLE_DEVICES", "nvidia-smi" or why none

    def slots(self) -> int:
        """How many cells may run at the same time: one per GPU when parallel, else one."""
        return max(1, len(self.gpus)) if self.parallel else 1


def resolve_placement(request: BenchRequest, env: Mapping[str, str] | None = None,
                      list_gpus: Callable[[], list[GpuRow]] = query_gpus) -> Placement:
    """The run's GPUs (``--gpus`` checked against what this machine lists, else what this process
    sees) and whether they run cells side by side. CPU runs need no GPU and ask nothing.
    Raises :class:`PlanError` naming a GPU this machine does not have, or a parallel run it
    cannot give each cell its own CPUs."""
    env = os.environ if env is None else env
    validate_gpus(request.gpus, request.parallel_gpus, request.device)
    if request.device != "gpu":
        return Placement(source="CPU cells see no GPU")
    rows = list_gpus()
    visible = env.get(VISIBLE)
    if request.gpus:
        gpus, source = tuple(request.gpus), "--gpus"
        _check_listed(gpus, rows, visible)
    elif visible is not None:
        gpus = tuple(e.strip() for e in visible.split(",") if e.strip())
        source = f"{VISIBLE}={visible}" if gpus else f"{VISIBLE} is empty: this process sees no GPU"
    elif rows:
        gpus, source = tuple(str(r.index) for r in rows), "nvidia-smi"
    else:
        gpus, source = (), f"nvidia-smi lists no GPU and {VISIBLE} is unset"
    validate_placement(gpus, request.parallel_gpus, request.threads, f"the GPUs are {source}" if gpus else source)
    if request.parallel_gpus:
        _check_one_model(gpus, rows)
    return Placement(gpus, request.parallel_gpus, source)


def _check_one_model(gpus: Sequence[str], rows: Sequence[GpuRow]) -> None:
    """Cells of one run share one fingerprint and one measured peak: side by side, they must run
    on GPUs of one model."""
    names = {}
    for g in gpus:
        row = next((r for r in rows if str(r.index) == g or (g.startswith("GPU-") and r.uuid.startswith(g))), None)
        if row is not None:
            names[g] = row.name
    if len(set(names.values())) > 1:
        listed = ", ".join(f"{g}: {n}" for g, n in names.items())
        raise PlanError(f"--parallel-gpus would spread one run over different GPU models ({listed}), whose cells "
                        "cannot be compared as one run; choose GPUs of one model with --gpus")


def _check_listed(gpus: Sequence[str], rows: Sequence[GpuRow], visible: str | None) -> None:
    """Each ``--gpus`` entry names a GPU nvidia-smi lists (when it lists any) and one this process
    may use (when its ``CUDA_VISIBLE_DEVICES`` is set, e.g. by a scheduler)."""
    if visible is not None:
        allowed = [e.strip() for e in visible.split(",") if e.strip()]
        outside = [g for g in gpus if g not in allowed]
        if outside:
            raise PlanError(f"--gpus {','.join(outside)}: this process may use only {VISIBLE}={visible!r} (a "
                            "scheduler may have given it just those); choose among them, written the same way")
    if not rows:
        return  # nothing to check against: the workers will say what they see
    indices = {str(r.index) for r in rows}
    listed = ", ".join(f"{r.index} ({r.name}, {r.uuid})" for r in rows)
    for g in gpus:
        if g.isdigit() and g not in indices:
            raise PlanError(f"--gpus {g}: nvidia-smi lists no GPU {g}; it lists {listed}")
        if g.startswith("GPU-") and sum(r.uuid.startswith(g) for r in rows) != 1:
            raise PlanError(f"--gpus {g}: matches {sum(r.uuid.startswith(g) for r in rows)} of the GPUs "
                            f"nvidia-smi lists ({listed}); give a UUID (prefix) of exactly one")


def cell_env(device: str) -> dict[str, str]:
    """What the plan of every cell on ``device`` sets: a CPU cell sees no GPU at all (its GPU pin,
    for GPU cells, is given where it runs: :func:`gpu_env`)."""
    return {VISIBLE: ""} if device == "cpu" else {}


def gpu_env(gpu: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables that pin a GPU cell's worker to ``gpu`` (its only visible device), numbered as
    nvidia-smi numbers them unless ``env`` (the caller's environment) chose an order."""
    env = os.environ if env is None else env
    return {VISIBLE: gpu, ORDER: env.get(ORDER) or "PCI_BUS_ID"}


def cpu_slice(slot: int, threads: int, cpus: Sequence[int] | None = None) -> list[int]:
    """The CPUs of parallel slot ``slot``: the slot-th run of ``threads`` of this process's CPUs,
    so cells running side by side never share a core (the worker then pins its threads there)."""
    cpus = sorted(os.sched_getaffinity(0)) if cpus is None else sorted(cpus)
    chosen = cpus[slot * threads:(slot + 1) * threads]
    if len(chosen) < threads:
        raise PlanError(f"slot {slot} needs {threads} CPUs, and this process may use {len(cpus)} in all")
    return chosen
