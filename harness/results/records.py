"""Result records: one per cell, serialised as one JSON line by :func:`record_to_json`."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

try:  # about twice as fast on records full of samples; json is the fallback
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - orjson is a dependency, but keep working without it
    _fast_loads = json.loads

from harness.plan.cells import Cell
from harness.results.jsonio import dumps
from harness.measure.stats import summarize

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
    return dumps(record_to_dict(record), sort_keys=True)


class SchemaError(ValueError):
    """A record written by a newer zoo-bench, or one no migration can upgrade."""


class CorruptFileError(ValueError):
    """A stored file that cannot be read (not UTF-8, not JSON, not an object, a malformed
    record); the message names the file and, for a results file, the line."""


def _kind(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")


def parse_json_lines(data: bytes, path: Path | str) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each record of a JSON-lines file's bytes. A torn last line
    (a crash mid-write: the file does not end in a newline) is skipped; any other line that is
    not UTF-8, not JSON or not an object raises :class:`CorruptFileError` naming ``path:line``."""
    lines = data.splitlines()
    torn_ok = not data.endswith((b"\n", b"\r"))
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            obj = _fast_loads(line)
        except ValueError:  # orjson refuses NaN, which old records may hold: the json module reads it
            try:
                obj = json.loads(line.decode("utf-8"))
            except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are both ValueErrors
                if i == len(lines) - 1 and torn_ok:
                    continue
                raise CorruptFileError(f"{path}:{i + 1}: {_why_unreadable(line, exc)}; the file is corrupt: "
                                       "restore it, or delete that line to drop that cell's record") from None
        if not isinstance(obj, dict):
            raise CorruptFileError(f"{path}:{i + 1}: {_kind(obj)} where a record (a JSON object) belongs; "
                                   "the file is corrupt: restore it, or delete that line")
        yield i + 1, obj


def _why_unreadable(line: bytes, exc: ValueError) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text (byte {exc.start + 1} of the line is {line[exc.start:exc.start + 1]!r})"
    if isinstance(exc, json.JSONDecodeError):
        return f"not a JSON record ({exc.msg} at column {exc.colno})"
    return f"not a JSON record ({exc})"


def read_record_file(path: Path) -> Iterator[CellRecord]:
    """The records of a results file, each checked: a newer schema is refused
    (:class:`SchemaError`), a corrupt or malformed line raises :class:`CorruptFileError`, both
    naming ``path:line``; a torn last line is skipped. A missing file has no records."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise CorruptFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    for line_no, raw in parse_json_lines(data, path):
        try:
            yield record_from_dict(raw)
        except SchemaError as exc:
            raise SchemaError(f"{path}:{line_no}: {exc}") from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            what = f"missing field {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
            raise CorruptFileError(f"{path}:{line_no}: not a valid result record ({what})") from None


#: Metrics a version-0 record may carry without a direction, and the direction they have in v1.
_V0_DIRECTIONS = {
    "accuracy": "higher", "train_throughput": "higher", "infer_throughput": "higher",
    "latency_p50_ms": "lower", "latency_p90_ms": "lower", "latency_p99_ms": "lower",
    "compile_s": "lower", "first_step_s": "lower", "fine_tune_wall_s": "lower", "import_s": "lower",
    "load_s": "lower", "peak_rss_mb": "lower",
}


def _record_v0_to_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Version 0 = records from before ``schema_version`` existed: a metric could be a bare number
    or lack ``direction``/``samples``/``spread``; a cell could lack ``freeze``/``init``/``key``."""
    cell = {"device": "cpu", "precision": "fp32", "batch_size": 32, "freeze": "none", "init": "pretrained",
            **data["cell"]}
    cell.pop("key", None)
    metrics = {}
    for name, m in (data.get("metrics") or {}).items():
        m = {"value": m} if isinstance(m, (int, float)) else dict(m)
        metrics[name] = {"unit": "", "direction": _V0_DIRECTIONS.get(name, "info"), "samples": [], "spread": {}, **m}
    return {**data, "cell": cell, "metrics": metrics, "schema_version": 1}


#: Upgrades of a record's JSON form, keyed by the version they upgrade *from*: ``MIGRATIONS[v]``
#: returns the record as version ``v + 1`` writes it. Bumping :data:`SCHEMA_VERSION` means adding
#: one entry here (and a test that loads a record of the old version).
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {0: _record_v0_to_v1}


def migrate_record(data: Mapping[str, Any]) -> dict[str, Any]:
    """The record's JSON form upgraded to :data:`SCHEMA_VERSION`; a newer one is refused."""
    version = data.get("schema_version", 0)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise SchemaError(
            f"result record has schema version {version}, newer than this zoo-bench reads "
            f"({SCHEMA_VERSION}); upgrade zoo-bench to read it"
        )
    out = dict(data)
    while version < SCHEMA_VERSION:
        if version not in MIGRATIONS:
            raise SchemaError(f"no migration from record schema version {version}; this record cannot be read")
        out = MIGRATIONS[version](out)
        version += 1
    return out


def _number(v: Any) -> float:
    """A stored number; ``null`` (a NaN or infinity when written) reads back as NaN."""
    return math.nan if v is None else v


def _metric_from_dict(m: Mapping[str, Any]) -> Metric:
    return Metric(**{**m, "value": _number(m.get("value")),
                     "samples": tuple(_number(v) for v in m.get("samples", ())),
                     "spread": {k: _number(v) for k, v in (m.get("spread") or {}).items()}})


def record_from_dict(data: Mapping[str, Any]) -> CellRecord:
    data = migrate_record(data)  # refuses a newer schema, upgrades an older one
    cell = {k: v for k, v in data["cell"].items() if k != "key"}
    error = data.get("error")
    return CellRecord(
        run_id=data["run_id"],
        cell=Cell(**cell),
        status=data["status"],
        metrics={k: _metric_from_dict(m) for k, m in data.get("metrics", {}).items()},
        error=ErrorInfo(**error) if error else None,
        framework=data.get("framework", {}),
        environment=data.get("environment", {}),
        started_at=data.get("started_at", ""),
        duration_s=data.get("duration_s", 0.0),
        not_applicable=tuple(data.get("not_applicable", ())),
        schema_version=data["schema_version"],
    )
