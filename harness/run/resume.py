"""``zoo bench --resume RUN_ID``: reopen an earlier run and decide which of its cells run again."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.measure import machine
from harness.plan.planner import PlannedCell
from harness.plan.request import BenchRequest, PlanError
from harness.results.manifest import request_from_dict
from harness.results.records import CellRecord
from harness.results.store import RunStore, read_records, utc_now
from harness.run.processes import live_workers


def request_from_manifest(results_dir: Path, run_id: str) -> BenchRequest:
    """The request an earlier run was started with."""
    manifest = RunStore.existing(results_dir, run_id).read_manifest()
    return request_from_dict(dict(manifest["request"]), results_dir, run_id)


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
    manifest = store.read_manifest()
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
    latest = store.latest_records()
    done = [latest[p.cell.key] for p in planned if p.cell.key in latest
            and latest[p.cell.key].status in ("ok", "skipped")]
    done_keys = {r.cell.key for r in done}
    remaining = [p for p in planned if p.cell.key not in done_keys]
    finished: dict[str, list[CellRecord]] = {}
    for record in read_records(store.repeats_path):  # ok repeats of cells that never got a record
        key = record.cell.key
        if key not in latest and record.status == "ok" and any(p.cell.key == key for p in remaining):
            finished.setdefault(key, []).append(record)
    finished = {k: v[: request.repeats] for k, v in finished.items()}
    manifest.setdefault("resumed", []).append({"at": utc_now(), "cells": [p.cell.key for p in remaining],
                                               "kept_repeats": {k: len(v) for k, v in finished.items()}})
    manifest["status"] = "running"
    return Resumed(store, manifest, done, remaining, finished)
