"""Result records: one per cell, serialised as one JSON line by :func:`record_to_json`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

from harness.cells import Cell
from harness.stats import summarize

SCHEMA_VERSION = 1
STATUSES = ("ok", "failed", "skipped", "timeout")


@dataclass(frozen=True)
class Metric:
    """One measured quantity with its unit, which direction is better, and its raw samples."""

    value: float
    unit: str
    direction: str  # "higher", "lower" or "info"
    samples: tuple[float, ...] = ()
    spread: Mapping[str, float] = field(default_factory=dict)  # iqr, robust_cv, ci_low, ci_high

    @classmethod
    def from_samples(cls, samples: Sequence[float], unit: str, direction: str) -> "Metric":
        s = summarize(samples)
        return cls(
            s.median, unit, direction, tuple(float(v) for v in samples),
            {"iqr": s.iqr, "robust_cv": s.robust_cv, "ci_low": s.ci_low, "ci_high": s.ci_high, "n": s.n},
        )


@dataclass(frozen=True)
class ErrorInfo:
    phase: str  # where it happened: "plan", "import", "prepare", "load", "fine_tune", ...
    type: str
    message: str
    detail: str = ""  # traceback or the last lines of stderr


@dataclass(frozen=True)
class CellRecord:
    run_id: str
    cell: Cell
    status: str
    metrics: Mapping[str, Metric] = field(default_factory=dict)
    error: ErrorInfo | None = None
    framework: Mapping[str, Any] = field(default_factory=dict)  # versions, devices, details
    environment: Mapping[str, Any] = field(default_factory=dict)  # threads, env vars, python
    not_applicable: tuple[str, ...] = ()  # phases the framework does not have, e.g. ("fine_tune",)
    started_at: str = ""
    duration_s: float = 0.0
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")


def record_to_dict(record: CellRecord) -> dict[str, Any]:
    data = asdict(record)
    data["cell"]["key"] = record.cell.key
    return data


def record_to_json(record: CellRecord) -> str:
    return json.dumps(record_to_dict(record), sort_keys=True, allow_nan=True)


def record_from_dict(data: Mapping[str, Any]) -> CellRecord:
    version = data.get("schema_version", 0)
    if version > SCHEMA_VERSION:
        raise ValueError(
            f"result record has schema version {version}, newer than this zoo-bench reads "
            f"({SCHEMA_VERSION}); upgrade zoo-bench to read it"
        )
    cell = {k: v for k, v in data["cell"].items() if k != "key"}
    error = data.get("error")
    return CellRecord(
        run_id=data["run_id"],
        cell=Cell(**cell),
        status=data["status"],
        metrics={k: Metric(**{**m, "samples": tuple(m.get("samples", ()))}) for k, m in data.get("metrics", {}).items()},
        error=ErrorInfo(**error) if error else None,
        framework=data.get("framework", {}),
        environment=data.get("environment", {}),
        started_at=data.get("started_at", ""),
        duration_s=data.get("duration_s", 0.0),
        not_applicable=tuple(data.get("not_applicable", ())),
        schema_version=version,
    )
