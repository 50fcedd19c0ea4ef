"""A benchmark cell and the plan a worker process needs to run it."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping


#: Longest cell key: with ``.repeatN.log`` it stays far below every file system's name limit.
MAX_KEY_LENGTH = 160
_PLAIN = re.compile(r"[A-Za-z0-9_.]+")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]+")  # written with "-" as "~" (so a literal "~" is not plain)
_FREEZE = re.compile(r"none|backbone|last-[0-9]+")


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
    #: Which environment of the framework: ``"2.12"`` in ``-f torch@2.12`` (an interpreter given by
    #: ``--python torch@2.12=PATH``), so two versions of one framework are two cells; "" = the default.
    env_label: str = ""
    #: How batches reach the model (``zoo bench --feed``): "" = device-resident, the default (the
    #: split staged on the device once per call); ``"host"`` = the host pipeline (each batch
    #: gathered on the host and copied by the framework's overlapped mechanism). Passed to the
    #: adapter as :attr:`zoo.contract.Runtime.feed`.
    feed: str = ""

    @property
    def label(self) -> str:
        """``framework[@env_label][:variant]``, as written on the command line, then ``(host feed)``
        for a cell of ``--feed host`` (so the two feeds' rows of a table stay apart)."""
        name = f"{self.framework}@{self.env_label}" if self.env_label else self.framework
        name = f"{name}:{self.variant}" if self.variant else name
        return f"{name} ({self.feed} feed)" if self.feed else name

    @property
    def key(self) -> str:
        """A stable, one-to-one, filesystem-safe identifier of the cell, at most
        :data:`MAX_KEY_LENGTH` characters (it names the cell's log file).

        ``framework[@env_label][+variant]-model-task-device-precision-bN-freeze_F-init[-feed_FEED]``; a ``-``
        inside a name is written ``~`` so the fields stay apart (no plain name holds ``@`` or ``+``,
        so the first field splits back one way). Without an ``env_label`` the key is exactly what
        it was before labels existed, and without a ``feed`` (the default, device-resident) before
        feeds existed, so stored runs keep pairing. Names come from plugins: when
        one holds any other character outside ``[A-Za-z0-9_.]``, or the key would be too long,
        the readable part is sanitised and cut, and a hash of the exact fields keeps two cells
        apart."""
        names = [self.framework, self.variant, self.model, self.task, self.env_label]
        fields = [self.device, self.precision, self.init] + ([self.feed] if self.feed else [])
        plain = all(_PLAIN_NAME.fullmatch(n) for n in names if n) and all(
            _PLAIN.fullmatch(f) for f in fields) and _FREEZE.fullmatch(self.freeze) is not None
        label = self.framework + (f"@{self.env_label}" if self.env_label else "") + (
            f"+{self.variant}" if self.variant else "")
        raw = "-".join([label.replace("-", "~"), self.model.replace("-", "~"), self.task.replace("-", "~"),
                        self.device, self.precision, f"b{self.batch_size}", f"freeze_{self.freeze}", self.init]
                       + ([f"feed_{self.feed}"] if self.feed else []))
        if plain and len(raw) <= MAX_KEY_LENGTH and not raw.startswith("."):
            return raw
        identity = json.dumps([self.framework, self.variant, self.model, self.task, self.device, self.precision,
                               self.batch_size, self.freeze, self.init] + ([self.env_label] if self.env_label else [])
                              + ([["feed", self.feed]] if self.feed else []))
        digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
        safe = re.sub(r"[^A-Za-z0-9_.+~-]", "_", raw)[: MAX_KEY_LENGTH - len(digest) - 2]
        safe = re.sub(r"^\.+", lambda m: "_" * len(m.group()), safe)  # never a hidden file
        return f"{safe}-h{digest}"


@dataclass(frozen=True)
class Settings:
    """How a cell is run; the same for every framework in a run."""

    epochs: int = 10
    learning_rate: float = 1e-3
    threads: int = 1
    seed: int = 0
    windows: int = 5  # timing windows per throughput phase
    window_steps: int = 0  # steps per window; 0 = the device's WindowRule (CPU >= 50 ms, GPU >= 1 s), at least 5
    warmup_cap: int = 50  # most steps a throughput phase may spend warming up on a CPU (a GPU warms up >= 3 s)
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
    #: The interpreter that runs ``python -m harness.worker`` for this cell (``--python``); "" = the
    #: executor's own (``sys.executable``). An absolute path on the machine that runs the cell.
    python: str = ""

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
            python=data.get("python", ""),
        )
