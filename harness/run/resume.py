"""``zoo bench --resume RUN_ID``: reopen an earlier run and decide which of its cells run again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.measure import machine
from harness.plan.planner import PlannedCell
from harness.plan.request import BenchRequest, PlanError
from harness.results.manifest import request_from_dict
from harness.results.records import CellRecord
from harness.results.store import RunStore, utc_now
from harness.run.processes import live_workers


def request_from_manifest(results_dir: Path, run_id: str) -> BenchRequest:
    """The request an earlier run was started with."""
    manifest = RunStore.existing(results_dir, run_id).read_manifest()
    return request_from_dict(dict(manifest["request"]), results_dir, run_id)


def open_resumed(request: BenchRequest, planned: list[PlannedCell]
                 ) -> tuple[RunStore, dict[str, Any], list[CellRecord], list[PlannedCell]]:
    """The run's store and manifest, the records kept (latest ok or skipped record of a cell),
    and the cells to run again (missing, failed, timed out). Refuses a run measured on another
    machine: its numbers and the new ones could not be compared."""
    run_id = request.run_id
    store = RunStore.existing(request.results_dir, run_id)
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
    manifest.setdefault("resumed", []).append({"at": utc_now(), "cells": [p.cell.key for p in remaining]})
    manifest["status"] = "running"
    return store, manifest, done, remaining
