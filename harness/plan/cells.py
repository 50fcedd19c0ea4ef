"""A benchmark cell and the plan a worker process needs to run it."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class Cell:
    """The identity of one measurement: what is compared with what across runs."""

    framework: str
    model: str
    task: str
    device: str = "cpu"
    precision: str = "fp32"
    batch_size: int = 32
    freeze: str = "none"
    init: str = "pretrained"  # "pretrained" (zoo checkpoint + new head) or "scratch"
    variant: str = ""  # the adapter's execution mode, e.g. "compile"; "" = its default

    @property
    def label(self) -> str:
        """``framework`` or ``framework:variant``, as written on the command line."""
        return f"{self.framework}:{self.variant}" if self.variant else self.framework

    @property
    def key(self) -> str:
        """A stable, filesystem-safe identifier of the cell."""
        raw = "-".join(
            [self.label.replace(":", "+"), self.model, self.task, self.device, self.precision,
             f"b{self.batch_size}", f"freeze_{self.freeze}", self.init]
        )
        safe = re.sub(r"[^A-Za-z0-9_.+-]", "_", raw)  # names come from plugins: keep paths inside
        return re.sub(r"^\.+", lambda m: "_" * len(m.group()), safe)  # and never a hidden file


@dataclass(frozen=True)
class Settings:
    """How a cell is run; the same for every framework in a run."""

    epochs: int = 10
    learning_rate: float = 1e-3
    threads: int = 1
    seed: int = 0
    windows: int = 5  # timing windows per throughput phase
    window_steps: int = 0  # steps per window; 0 = enough for MIN_WINDOW_S, at least 5
    warmup_cap: int = 50  # most steps a throughput phase may spend warming up
    latency_samples: int = 100  # batch-1 forward passes timed for latency
    target_accuracy: float = 0.0  # for time-to-accuracy; 0 = none
    peak_gflops: float = 0.0  # the device's measured peak at this precision (0 = unknown)
    checkpoint_dir: str = ""  # "" = the checkpoints shipped with zoo


@dataclass(frozen=True)
class ExportSpec:
    """``zoo pretrain``: save the fine-tuned weights as a zoo checkpoint (not part of a benchmark)."""

    directory: str  # where the safetensors file and its manifest entry go
    name: str  # the checkpoint name
    card: str = ""  # JSON object of model-card fields given by the user (they win over ours)


@dataclass(frozen=True)
class CellPlan:
    """Everything a worker process needs, JSON-serialisable."""

    run_id: str
    cell: Cell
    settings: Settings
    modules: tuple[str, ...]  # plugin modules the worker registers (framework, model, task)
    checkpoint: str = ""  # zoo checkpoint name for init == "pretrained"
    env: Mapping[str, str] = field(default_factory=dict)
    trackers: tuple[str, ...] = ()  # measurement trackers the worker runs around each phase
    export: ExportSpec | None = None  # zoo pretrain only

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CellPlan":
        return cls(
            run_id=data["run_id"],
            cell=Cell(**data["cell"]),
            settings=Settings(**data["settings"]),
            modules=tuple(data["modules"]),
            checkpoint=data.get("checkpoint", ""),
            env=dict(data.get("env", {})),
            trackers=tuple(data.get("trackers", ())),
            export=ExportSpec(**data["export"]) if data.get("export") else None,
        )
