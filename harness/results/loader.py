"""Read stored runs into pandas DataFrames.

``load_results(paths)`` accepts run directories (``<results-dir>/<run-id>/`` with
``manifest.json`` and ``results.jsonl``) and results directories (every run inside), and returns a
:class:`ResultSet` with three frames:

* ``runs``: one row per run (manifest: id, trigger, start, commit and dirty flag, machine
  fingerprint, GPU model, driver and CUDA/cuDNN when recorded, the measured device peaks when the
  run has them);
* ``cells``: one row per cell record (identity, status, error);
* ``metrics``: one row per (run, cell, metric), with the run's and the cell's columns repeated, so
  it can be filtered and pivoted on its own; ``samples`` holds each metric's raw samples as a
  float array. A cell without metrics (skipped, or failed early) still has one row, with
  ``metric`` empty.

Records go through :func:`harness.results.records.migrate_record` (older schemas are upgraded, a newer one
is refused with :class:`~harness.results.records.SchemaError`); manifests through :func:`migrate_manifest`.
The records are read as JSON (orjson when installed), not as :class:`~harness.results.records.CellRecord`
objects, and big runs in parallel processes, so that 10,000 cells load in a few seconds.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from harness.results import manifest as _manifest
from harness.results.manifest import MANIFEST_SCHEMA_VERSION, ManifestError  # noqa: F401 (re-exported)
from harness.results.records import STATUSES, CorruptFileError, SchemaError, migrate_record, parse_json_lines
from harness.results.store import MANIFEST_FILE, RESULTS_FILE

PARALLEL_BYTES = 32 << 20  # results files above this in total are parsed in parallel processes

#: The cell's fields, in this order: ``_add_record`` reads all but the last two (``variant``,
#: ``env_label``) as stored, so ``feed`` (``zoo bench --feed``; absent from records written before
#: feeds existed: None, the default device-resident feed) sits before them.
CELL_FIELDS = ("framework", "model", "task", "device", "precision", "batch_size", "freeze", "init", "feed",
               "variant", "env_label")
RUN_COLUMNS = ("run_id", "run", "path", "started_at", "finished_at", "run_status", "trigger", "commit", "dirty",
               "zoo_bench", "fingerprint", "cpu_model", "logical_cpus")
RUN_ONLY_COLUMNS = ("device_peak", "peaks", "hostname", "system", "arch", "python", "request",
                    "quiet", "gpu_model", "gpu", "gpu_software")  # ``runs`` only
CELL_COLUMNS = ("run", "cell_key", *CELL_FIELDS, "label", "status", "error_phase", "error_type", "error_message",
                "framework_version", "threads", "duration_s")
METRIC_COLUMNS = ("metric", "value", "unit", "direction", "n", "robust_cv", "iqr", "ci_low", "ci_high", "samples")


class LoadError(ValueError):
    """A path that holds no run, or a run that cannot be read; the message says which."""


@dataclass(frozen=True)
class ResultSet:
    runs: pd.DataFrame
    cells: pd.DataFrame
    metrics: pd.DataFrame
    #: Runs found inside a results directory that could not be read and were left out, one line
    #: each naming the run and why (a command prints them as warnings).
    skipped: tuple[str, ...] = ()

    def run_labels(self) -> list[str]:
        """Run labels in start order (oldest first)."""
        return list(self.runs["run"])

    def subset(self, runs: Iterable[str]) -> "ResultSet":
        keep = set(runs)
        return ResultSet(self.runs[self.runs["run"].isin(keep)], self.cells[self.cells["run"].isin(keep)],
                         self.metrics[self.metrics["run"].isin(keep)], self.skipped)


def find_runs(paths: Iterable[Path | str]) -> list[Path]:
    """Run directories named by ``paths``: a run directory itself, or every run inside a results
    directory (sorted by name). Raises :class:`LoadError` for a path that holds no run."""
    return list(_find_runs(paths))


def _find_runs(paths: Iterable[Path | str]) -> dict[Path, bool]:
    """Like :func:`find_runs`, each run with whether it was named itself (``True``) or found
    inside a results directory (``False``)."""
    found: dict[Path, bool] = {}
    for raw in paths:
        path = Path(raw)
        if (path / RESULTS_FILE).exists() or (path / MANIFEST_FILE).exists():
            found[path] = True
            continue
        if not path.is_dir():
            raise LoadError(f"{path}: no such run directory (expected {RESULTS_FILE} and {MANIFEST_FILE} in it, "
                            "or a results directory holding runs)")
        inner = sorted(p for p in path.iterdir() if (p / RESULTS_FILE).exists() or (p / MANIFEST_FILE).exists())
        if not inner:
            raise LoadError(f"{path}: holds no runs (no */{RESULTS_FILE}); pass a run directory or a results directory")
        for run in inner:
            found.setdefault(run, False)
    return found


def resolve_runs(names: Iterable[str], results_dir: Path | str = "results") -> list[Path]:
    """Paths for command-line arguments: an existing path as given, otherwise a run id under
    ``results_dir``. Raises :class:`LoadError` naming the runs that do exist."""
    out = []
    for name in names:
        path = Path(name)
        if path.exists():
            out.append(path)
        elif (Path(results_dir) / name).is_dir():
            out.append(Path(results_dir) / name)
        else:
            known = sorted(p.parent.name for p in Path(results_dir).glob(f"*/{RESULTS_FILE}"))
            hint = f"; runs in {results_dir}: {', '.join(known[-10:])}" if known else f"; {results_dir} holds no runs"
            raise LoadError(f"no run {name!r}: not a directory, and not a run id under {results_dir}{hint}")
    return out


def migrate_manifest(data: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """Manifests have their own version (``schema_version``, 1 today); a newer one is refused."""
    return _manifest.migrate_manifest(data, path)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a results file; a torn last line (a crash mid-write) is skipped, any
    other unreadable line is a :class:`LoadError` naming the file and line."""
    return [obj for _, obj in _numbered_jsonl(path)]


def _numbered_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise LoadError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return list(parse_json_lines(data, path))
    except CorruptFileError as exc:
        raise LoadError(str(exc)) from None


def _mapping(manifest: Mapping[str, Any], key: str, path: Path) -> Mapping[str, Any]:
    value = manifest.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ManifestError(f"{path}: the run manifest's field {key!r} is {type(value).__name__}, not an object; "
                            "the file is corrupt")
    return value


def _run_row(run_dir: Path) -> dict[str, Any]:
    manifest_path = run_dir / MANIFEST_FILE
    manifest = _manifest.read_manifest(manifest_path) if manifest_path.exists() else {}
    machine = _mapping(manifest, "machine", manifest_path)
    stable = _mapping(machine, "stable", manifest_path)
    harness = _mapping(manifest, "harness", manifest_path)
    peaks = _mapping(manifest, "peaks", manifest_path)  # {"cpu/fp32": {"gflops": ..., "source": ...}}, from the runner
    _mapping(machine, "volatile", manifest_path)
    _mapping(manifest, "request", manifest_path)
    return {
        "run_id": manifest.get("run_id", run_dir.name), "run": manifest.get("run_id", run_dir.name),
        "path": str(run_dir), "started_at": manifest.get("started_at"), "finished_at": manifest.get("finished_at"),
        "run_status": manifest.get("status", "unknown" if manifest else "no manifest"),
        "trigger": manifest.get("trigger", ""), "commit": harness.get("commit"), "dirty": harness.get("dirty"),
        "zoo_bench": harness.get("zoo_bench"), "fingerprint": machine.get("fingerprint", ""),
        "cpu_model": stable.get("cpu_model", ""), "logical_cpus": stable.get("logical_cpus"),
        "device_peak": "; ".join(f"{k} {v.get('gflops', 0):,.1f} GFLOP/s ({v.get('source', '')})"
                                 for k, v in peaks.items() if isinstance(v, Mapping)),
        "peaks": peaks,
        "hostname": (machine.get("volatile") or {}).get("hostname", ""), "system": stable.get("system", ""),
        "arch": stable.get("machine", ""), "python": stable.get("python", ""), "request": manifest.get("request") or {},
        "quiet": (manifest.get("quietness") or {}).get("quiet") if isinstance(manifest.get("quietness"), Mapping)
        else None,
        **_gpu_columns(stable),
    }


def _gpu_columns(stable: Mapping[str, Any]) -> dict[str, Any]:
    """The run's GPU (``machine.stable.gpu``; absent in manifests written before GPUs were
    recorded, ``None`` on a machine without one): its model name ("" for none), the whole entry,
    and the CUDA/cuDNN wheels."""
    gpu = stable.get("gpu")
    gpu = dict(gpu) if isinstance(gpu, Mapping) else None
    software = stable.get("gpu_software")
    return {"gpu_model": (gpu or {}).get("model") or "", "gpu": gpu,
            "gpu_software": dict(software) if isinstance(software, Mapping) else {}}


nan = math.nan
_NO_SPREAD: dict[str, float] = {}


def _float(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) else math.nan


def load_results(paths: Iterable[Path | str], metrics: Iterable[str] | None = None) -> ResultSet:
    """Every record of the runs named by ``paths`` (see :func:`find_runs`), oldest run first.
    ``metrics`` keeps only those metrics in the metrics frame (much faster for big runs).

    A run that cannot be read (corrupt manifest or results, a newer schema) raises when it was
    named itself; one found inside a results directory is left out, and
    :attr:`ResultSet.skipped` says which and why (one bad night must not hide the others). When
    every run is left out, :class:`LoadError` lists why."""
    found = _find_runs(paths)
    skipped: list[str] = []
    run_dirs: list[Path] = []
    runs: list[dict[str, Any]] = []
    for d, named in found.items():
        try:
            runs.append(_run_row(d))
            run_dirs.append(d)
        except (ValueError, OSError) as exc:  # LoadError, SchemaError, ManifestError, ...
            if named:
                raise
            skipped.append(f"{d}: {_reason(exc, d)}")
    counts: dict[str, int] = {}
    for r in runs:
        counts[r["run_id"]] = counts.get(r["run_id"], 0) + 1
    for r in runs:  # the same run id twice (two results directories, a copied run): label by path
        if counts[r["run_id"]] > 1:
            path = Path(r["path"])
            r["run"] = f"{path.parent.name}/{path.name}"
    labels = [r["run"] for r in runs]
    for r in runs:
        if labels.count(r["run"]) > 1:
            r["run"] = r["path"]
    keep = None if metrics is None else frozenset(metrics)
    jobs = [(d, r["run"], keep) for d, r in zip(run_dirs, runs)]
    cells: list[tuple] = []
    rows: list[tuple] = []  # (cell index, metric fields...)
    read, kept_runs = [], []
    for d, r, outcome in zip(run_dirs, runs, _read_all(jobs)):
        if isinstance(outcome, BaseException):
            if found[d]:
                raise outcome
            skipped.append(f"{d}: {_reason(outcome, d)}")
            continue
        read.append(outcome)
        kept_runs.append(r)
    runs = kept_runs
    if not runs and skipped:
        raise LoadError("no readable run: every run was left out:\n  " + "\n  ".join(skipped))
    for run_cells, run_rows in read:
        offset = len(cells)
        cells += run_cells
        rows += [(i + offset, *rest) for i, *rest in run_rows] if offset else run_rows
    runs_df = pd.DataFrame(runs, columns=[*RUN_COLUMNS, *RUN_ONLY_COLUMNS])
    runs_df["started_at"] = pd.to_datetime(runs_df["started_at"], utc=True, errors="coerce")
    runs_df = runs_df.sort_values(["started_at", "run"], kind="stable", na_position="first").reset_index(drop=True)
    runs_df.insert(0, "run_order", range(len(runs_df)))
    cells_df = pd.DataFrame.from_records(cells, columns=list(CELL_COLUMNS))
    cells_df.insert(0, "run_order", cells_df["run"].map(dict(zip(runs_df["run"], runs_df["run_order"]))).astype("int64"))
    part = pd.DataFrame.from_records(rows, columns=["_cell", *METRIC_COLUMNS])
    for col in ("value", "robust_cv", "iqr", "ci_low", "ci_high"):
        if part[col].dtype == object:  # a null or a non-number somewhere: make it NaN, keep the column numeric
            part[col] = pd.to_numeric(part[col], errors="coerce")
    joined = cells_df.merge(runs_df[list(RUN_COLUMNS)], on="run", how="left")
    metrics_df = pd.concat([joined.iloc[part["_cell"].to_numpy()].reset_index(drop=True),
                            part.drop(columns="_cell")], axis=1)
    metrics_df = metrics_df[["run_order", *RUN_COLUMNS, *CELL_COLUMNS[1:], *METRIC_COLUMNS]]
    cells_df = cells_df.sort_values("run_order", kind="stable").reset_index(drop=True)
    metrics_df = metrics_df.sort_values("run_order", kind="stable").reset_index(drop=True)
    return ResultSet(runs_df.drop(columns="run_order"), cells_df, metrics_df, tuple(skipped))


def _reason(exc: BaseException, run_dir: Path) -> str:
    """Why a run was left out, without repeating the run's own path."""
    text = str(exc)
    prefix = f"{run_dir}/"
    return text[len(prefix):] if text.startswith(prefix) else text


def _read_run(run_dir: Path, run: str, keep: frozenset[str] | None) -> tuple[list[tuple], list[tuple]]:
    path = run_dir / RESULTS_FILE
    cells: list[tuple] = []
    rows: list[tuple] = []
    for line_no, raw in _numbered_jsonl(path):
        where = f"{path}:{line_no}"
        try:
            rec = migrate_record(raw)
        except SchemaError as exc:
            raise SchemaError(f"{where}: {exc}") from None
        except (KeyError, TypeError, AttributeError) as exc:  # e.g. an old record without its cell
            raise LoadError(f"{where}: not a valid result record ({_what(exc)})") from None
        try:
            _add_record(rec, run, cells, rows, keep, where)
        except LoadError:
            raise
        except (KeyError, TypeError, AttributeError, ValueError) as exc:  # a field of the wrong type
            raise LoadError(f"{where}: not a valid result record ({_what(exc)})") from None
    return cells, rows


def _what(exc: BaseException) -> str:
    return f"missing field {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"


def _read_run_or_error(run_dir: Path, run: str, keep: frozenset[str] | None):
    """:func:`_read_run`, or the error that stopped it (so that one bad run does not stop the others)."""
    try:
        return _read_run(run_dir, run, keep)
    except (ValueError, OSError) as exc:
        return exc


def _read_all(jobs: list[tuple[Path, str, frozenset[str] | None]]) -> list:
    """Parse the runs; big ones in parallel processes (parsing JSON is most of the time). Each
    item is a run's ``(cells, rows)`` or the exception that made it unreadable."""
    size = sum((d / RESULTS_FILE).stat().st_size for d, _, _ in jobs if (d / RESULTS_FILE).is_file())
    workers = min(len(jobs), len(os.sched_getaffinity(0)))
    if workers < 2 or size < PARALLEL_BYTES or "fork" not in mp.get_all_start_methods():
        return [_read_run_or_error(*job) for job in jobs]
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
        return list(pool.map(_read_run_or_error, *zip(*jobs)))


def _add_record(rec: Mapping[str, Any], run: str, cells: list[tuple], rows: list[tuple], keep: set[str] | None,
                where: str) -> None:
    cell = rec.get("cell") or {}
    status = rec.get("status")
    if status not in STATUSES:
        raise LoadError(f"{where}: status must be one of {STATUSES}, got {status!r}")
    error = rec.get("error") or {}
    versions = (rec.get("framework") or {}).get("versions") or {}
    variant = cell.get("variant") or ""
    env_label = cell.get("env_label") or ""  # zoo bench --python NAME@LABEL=PATH
    name = f"{cell.get('framework')}@{env_label}" if env_label else cell.get("framework")
    index = len(cells)
    feed = cell.get("feed") or ""  # zoo bench --feed; "" = device-resident, also in records before feeds
    label = f"{name}:{variant}" if variant else name
    cells.append((
        run, _cell_key(cell), *(cell.get(f) for f in CELL_FIELDS[:-3]), feed, variant, env_label,
        f"{label} ({feed} feed)" if feed else label,
        status, error.get("phase", ""), error.get("type", ""), error.get("message", ""),
        ", ".join(f"{k} {v}" for k, v in versions.items()),
        (rec.get("environment") or {}).get("threads"), _float(rec.get("duration_s")),
    ))
    items = [(k, m) for k, m in (rec.get("metrics") or {}).items() if keep is None or k in keep]
    for name, m in items or [("", {})]:
        spread = m.get("spread") or _NO_SPREAD
        samples = np.asarray(m.get("samples") or (), dtype=float)
        rows.append((index, name, _float(m.get("value")), m.get("unit", ""), m.get("direction", "info"),
                     samples.size, _float(spread.get("robust_cv")), _float(spread.get("iqr")),
                     _float(spread.get("ci_low")), _float(spread.get("ci_high")), samples))


def _cell_key(cell: Mapping[str, Any]) -> str:
    """The cell's key as this version computes it (not the stored one: a run written before a
    change of the key's encoding must still pair with a new run's cells)."""
    return _key_of(tuple(cell.get(f) for f in CELL_FIELDS))


@lru_cache(maxsize=65536)
def _key_of(values: tuple) -> str:
    from harness.plan.cells import Cell

    fields = {k: v for k, v in zip(CELL_FIELDS, values) if v is not None}
    return Cell(**fields).key


def load_frame(paths: Iterable[Path | str]) -> pd.DataFrame:
    """The long metrics frame of :func:`load_results`: one row per (run, cell, metric)."""
    return load_results(paths).metrics
