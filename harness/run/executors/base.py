"""The executor seam: where and how the cells of a run are executed.

The orchestrator (:mod:`harness.run.orchestrate`) decides *what* runs (the cells, their repeat
rounds, resume, the store); an executor decides *where*: the local executor starts one worker
subprocess per cell on this machine, a cluster executor would send each cell to a node. An
executor never interprets a record: it returns whatever the worker wrote, or a failed/timeout
record saying what happened to the worker, so that no cell is ever without a record.

Adding an executor is one module: subclass :class:`Executor`, give it a ``name``, and return
the class from a plugin's :func:`zoo.hookspecs.zoo_executors` hook (or pass an instance to
:func:`harness.run.orchestrate.run_bench`).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, ClassVar, Iterator, Mapping, Sequence

from harness.measure import contention
from harness.plan.cells import CellPlan
from harness.plan.placement import Placement
from harness.results.records import CellRecord


@dataclass(frozen=True)
class CellJob:
    """One worker process to run: a cell's plan, which of its repeats this is, and where its log
    goes. ``index`` is the job's position in the whole run (for progress displays)."""

    plan: CellPlan
    log_path: Path
    repeat: int = 0  # 0-based
    index: int = 0

    @property
    def name(self) -> str:
        """A file-name-safe identifier, unique within the run: the cell key (and the repeat)."""
        key = self.plan.cell.key
        return key if self.repeat == 0 else f"{key}.repeat{self.repeat + 1}"


@dataclass(frozen=True)
class ExecutorOptions:
    """What every executor is given: the run's scratch directory, the per-cell time limit, and
    its own settings (``zoo bench --ray-address`` -> ``{"address": ...}``)."""

    work_dir: Path
    timeout_s: float
    settings: Mapping[str, str] = field(default_factory=dict)


class ExecutorError(RuntimeError):
    """The executor cannot run cells (not installed, cluster unreachable); the message says what to do."""


class Executor(abc.ABC):
    """Runs cell jobs and yields ``(job, record)`` as each job finishes, in any order.

    Contract:

    * every submitted job yields exactly one record, also when the worker crashed, hung (the
      executor enforces :attr:`ExecutorOptions.timeout_s`) or its machine went away;
    * closing the iterator early (the orchestrator does so on Ctrl-C) cancels the jobs not yet
      finished and leaves no worker running; :meth:`cancel` does the same from outside;
    * records carry the fingerprint and volatile information of the machine that ran them (the
      worker stamps its own; records the executor makes up for a dead worker get the executor's
      view of that machine), and :meth:`measure_peaks` measures on the machines that run cells.
    """

    #: The name used on the command line: ``zoo bench --executor NAME``.
    name: ClassVar[str] = ""
    #: One line for ``zoo bench --help``.
    description: ClassVar[str] = ""

    def __init__(self, options: ExecutorOptions):
        self.options = options
        self.placement = Placement()

    def place(self, placement: Placement) -> None:
        """The run's GPUs and whether GPU cells may run side by side (``--gpus``,
        ``--parallel-gpus``; :mod:`harness.plan.placement`), given once before
        :meth:`measure_peaks`. The local executor pins each GPU cell to one of them; an executor
        whose scheduler assigns devices itself (a cluster) may keep its own assignment, and should
        then say so in the records."""
        self.placement = placement

    @abc.abstractmethod
    def submit(self, jobs: Sequence[CellJob],
               on_start: Callable[[CellJob], None] | None = None) -> Iterator[tuple[CellJob, CellRecord]]:
        """Run ``jobs`` and yield each one's record as it finishes. ``on_start(job)`` is called
        when a job starts running (for progress displays)."""

    @abc.abstractmethod
    def measure_peaks(self, pairs: Sequence[tuple[str, str]], threads: int) -> dict[str, dict]:
        """The device peak for each ``(device, precision)`` on the machines that run the cells,
        keyed ``"cpu/fp32"``, each the fields of :class:`harness.measure.peak.Peak`."""

    def open(self) -> None:
        """Connect to where the cells will run; called before the run's store is created, so an
        unreachable cluster costs no run directory. Raise :class:`ExecutorError` saying what to do."""

    def cancel(self) -> None:
        """Stop every job still pending or running (idempotent)."""

    def close(self) -> None:
        """Release what the executor holds (connections, scratch files); called once at the end."""


def with_disturbance(record: CellRecord, peak_after_gflops: float) -> CellRecord:
    """``record`` with its contention verdict (``environment.disturbance``): the CPU share its
    timing windows got (measured by the worker) and the device peak probed right after the cell
    against the run-start probe it was planned with (measured by the executor, where it ran)."""
    if record.status != "ok":
        return record
    measurement = record.environment.get("measurement", {})
    phases = {name: measurement.get(name, {}).get("contention", {}) for name in ("inference", "training")}
    verdict = contention.judge({k: v for k, v in phases.items() if v},
                               record.environment.get("peak_gflops", 0.0) or 0.0, peak_after_gflops)
    return replace(record, environment={**record.environment, "disturbance": verdict})
