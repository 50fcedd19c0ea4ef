"""``zoo bench --resume RUN_ID``: reopen an earlier run and decide which of its cells run again."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.measure import machine
from harness.plan.planner import PlannedCell
from harness.plan.request import BenchRequest, PlanError
from harness.results.manifest import ManifestError, manifest_field, read_manifest, request_from_dict
from harness.results.records import CellRecord, CorruptFileError, SchemaError, read_record_file
from harness.results.store import MANIFEST_FILE, RunStore, StoreError, check_run_id, utc_now
from harness.run.processes import live_workers


def request_from_manifest(results_dir: Path, run_id: str) -> BenchRequest:
    """The request an earlier run was started with. A manifest that is missing, empty, corrupt,
    incomplete or from a newer zoo-bench is a :class:`StoreError` saying so."""
    manifest = read_resumable_manifest(Path(results_dir), run_id)
    return request_from_dict(dict(manifest["request"]), results_dir, run_id)


def read_resumable_manifest(results_dir: Path, run_id: str) -> dict[str, Any]:
    """Run ``run_id``'s manifest, checked for what ``--resume`` needs (the request, the machine's
    fingerprint); :class:`StoreError` naming the file and what is wrong otherwise."""
    check_run_id(run_id)
    path = Path(results_dir) / run_id / MANIFEST_FILE
    if (Path(results_dir) / run_id).is_dir() and not path.exists():
        raise StoreError(f"run {run_id} in {results_dir} has no {MANIFEST_FILE} (it is missing), so what it ran "
                         "and on which machine is unknown: it cannot be resumed; start a new run")
    if not path.exists():
        RunStore.existing(results_dir, run_id)  # raises "no run ..." naming the runs there
    try:
        manifest = read_manifest(path)
        manifest_field(manifest, "request", dict, path)
        manifest_field(manifest, "machine.fingerprint", str, path)
    except (ManifestError, SchemaError) as exc:
        raise StoreError(f"cannot resume run {run_id}: {exc}") from None
    return manifest


def _latest_records(store: RunStore, run_id: str) -> dict[str, CellRecord]:
    """The last record of each cell key, every line checked (a corrupt line or a newer schema is
    a :class:`StoreError` naming the file and line)."""
    return {r.cell.key: r for r in _checked_records(store.results_path, run_id)}


def _checked_records(path: Path, run_id: str) -> list[CellRecord]:
    try:
        return list(read_record_file(path))
    except (CorruptFileError, SchemaError) as exc:
        raise StoreError(f"cannot resume run {run_id}: {exc}") from None


@dataclass
class Resumed:
    """An earlier run reopened: its store (locked) and manifest, the records kept, the cells to
    run again, and the finished worker processes of cells a Ctrl-C caught between repeats."""

    store: RunStore
    manifest: dict[str, Any]
    done: list[CellRecord]
    remaining: list[PlannedCell]
    repeats: dict[str, list[CellRecord]] = field(default_factory=dict)


def open_resumed(request: BenchRequest, planned: list[PlannedCell]) -> Resumed:
    """Reopen ``request.run_id``: keep each cell's latest ok or skipped record, run the others
    (missing, failed, timed out) again. A cell interrupted between ``--repeats`` rounds keeps its
    finished ok repeats (from ``repeats.jsonl``) and runs only the rest. Refuses a run that
    another process is writing, that still has a live worker, or that was measured on another
    machine (its numbers and the new ones could not be compared)."""
    run_id = request.run_id
    store = RunStore.existing(request.results_dir, run_id)
    store.lock()  # one writer per run: refuses while another zoo bench writes it
    try:
        return _reopen(store, request, planned)
    except BaseException:
        store.unlock()
        raise


def _reopen(store: RunStore, request: BenchRequest, planned: list[PlannedCell]) -> Resumed:
    run_id = store.run_id
    manifest = read_resumable_manifest(store.root, run_id)
    here = machine.fingerprint()
    if manifest["machine"]["fingerprint"] != here:
        raise PlanError(
            f"run {run_id} was measured on another machine (fingerprint {manifest['machine']['fingerprint']}, "
            f"this one is {here}); results from two machines are not comparable, so start a new run"
        )
    running = live_workers(store.dir / "work")
    if running:
        listed = ", ".join(f"{name} (pid {pid})" for name, pid in running)
        raise PlanError(f"run {run_id} still has live workers: {listed}; another `zoo bench` is running it, or "
                        f"its workers outlived a crash. Wait for them or end them (kill PID), then resume")
    for stale in (store.dir / "work").glob("*.pid"):
        stale.unlink(missing_ok=True)
    latest = _latest_records(store, run_id)
    done = [latest[p.cell.key] for p in planned if p.cell.key in latest
            and latest[p.cell.key].status in ("ok", "skipped")]
    done_keys = {r.cell.key for r in done}
    remaining = [p for p in planned if p.cell.key not in done_keys]
    finished: dict[str, list[CellRecord]] = {}
    for record in _checked_records(store.repeats_path, run_id):  # ok repeats of cells that never got a record
        key = record.cell.key
        if key not in latest and record.status == "ok" and any(p.cell.key == key for p in remaining):
            finished.setdefault(key, []).append(record)
    finished = {k: v[: request.repeats] for k, v in finished.items()}
    manifest.setdefault("resumed", []).append({"at": utc_now(), "cells": [p.cell.key for p in remaining],
                                               "kept_repeats": {k: len(v) for k, v in finished.items()}})
    manifest["status"] = "running"
    return Resumed(store, manifest, done, remaining, finished)
