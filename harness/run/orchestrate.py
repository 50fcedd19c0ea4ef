"""Run a planned matrix: open the run's store, hand the cells to an executor round by round,
store every record as soon as its cell ends, and say how the run ended.

What runs is decided by :mod:`harness.plan.planner`; where it runs by the executor
(:mod:`harness.run.executors`); the repeat rounds by :mod:`harness.run.schedule`; what a
``--resume`` keeps by :mod:`harness.run.resume`. This module only orchestrates them.
"""

from __future__ import annotations

import sys
import traceback
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

from harness.plan.cells import Cell
from harness.plan.interpreters import Interpreter
from harness.plan.placement import Placement, resolve_placement
from harness.plan.planner import PlannedCell, plan_cells
from harness.plan.request import BenchRequest
from zoo.plugin_host import PluginHost
from harness.plugins.registry import Registry
from harness.results.manifest import new_manifest
from harness.results.records import CellRecord, ErrorInfo, record_to_dict, record_to_json
from harness.results.repeats import merge_repeats
from harness.results.store import RunStore, StoreError, new_run_id, utc_now
from harness.run.executors import make_executor
from harness.run.executors.base import CellJob, Executor
from harness.run.processes import signals_deferred, stop_signals_interrupt
from harness.run.resume import open_resumed
from harness.run.schedule import is_final, round_cells


@dataclass(frozen=True)
class CellEvent:
    """Progress of a run, for displays: a cell starts ("start") or has its record ("end")."""

    kind: str
    cell: Cell
    index: int  # 0-based position in the run
    total: int
    record: CellRecord | None = None  # with --repeats, this repeat's record
    repeat: int = 1  # which of the cell's ``repeats`` worker processes (1-based)
    repeats: int = 1


Event = Callable[[CellEvent], None]


@dataclass
class RunOutcome:
    store: RunStore
    records: list[CellRecord]  # the records of this invocation, in order
    interrupted: bool = False
    store_error: str = ""  # the results could not be written (disk full): the run stopped
    unsaved: str = ""  # the JSON of the record that could not be written, so it is not lost
    already_done: list[CellRecord] = field(default_factory=list)  # --resume: kept from before
    quietness: dict = field(default_factory=dict)  # the matmul probe at the run's start and end
    signal: str = ""  # what interrupted the run: SIGINT (Ctrl-C), SIGTERM or SIGHUP


class _Stop(Exception):
    """The store cannot take more records (or a cell cannot start): end the run."""


def run_bench(request: BenchRequest, registry: Registry, host: PluginHost,
              on_event: Event | None = None, resume: bool = False, executor: Executor | None = None) -> RunOutcome:
    """Run every planned cell through ``executor`` (default: the one ``request.executor`` names),
    storing each record as it finishes (with ``request.repeats`` > 1: in rounds, each cell's
    record merged from its repeats after the last).

    With ``resume``, ``request.run_id`` names an earlier run in ``request.results_dir``: cells
    whose latest record is ok or skipped are kept, the others (missing, failed, timeout) run again
    and their new records are appended (the latest record of a cell is the one that counts)."""
    run_id = request.run_id or new_run_id()
    placement = resolve_placement(request)
    planned = plan_cells(request, registry, run_id, placement)  # --python interpreters are checked here
    executor = executor or make_executor(request.executor, registry, Path(request.results_dir) / run_id / "work",
                                         request.timeout_s, request.executor_options)  # unknown: fails here
    executor.place(placement)
    executor.open()  # an unreachable cluster fails here too, before the store
    kept: dict[str, list[CellRecord]] = {}
    if resume:
        resumed = open_resumed(request, planned)
        store, manifest, done, planned, kept = (resumed.store, resumed.manifest, resumed.done, resumed.remaining,
                                                resumed.repeats)
    else:
        store = RunStore(request.results_dir, run_id)  # fails here, before measuring, if unwritable
        store.lock()
        if store.manifest_path.exists():
            store.unlock()
            raise StoreError(f"run {run_id} already exists in {request.results_dir}; continue it with "
                             f"`zoo bench --resume {run_id}`, or choose another --run-id")
        manifest = new_manifest(request, [p.cell.key for p in planned], host, run_id)
        manifest.update(placement_manifest(placement, planned))
        done = []
        store.write_manifest(manifest)
    outcome = RunOutcome(store, [], already_done=done)
    try:
        with stop_signals_interrupt():
            _measure_and_run(planned, request, registry, host, store, manifest, executor, outcome, on_event, resume,
                             kept)
    except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM or SIGHUP: the worker is already gone
        outcome.interrupted = True
        outcome.signal = getattr(exc, "signal", "SIGINT")
    with signals_deferred():  # the manifest must say how the run ended, whatever arrives now
        executor.cancel()
        _finish(manifest, outcome, executor, request.threads)
        executor.close()
        store.unlock()
    return outcome


def _measure_and_run(planned, request, registry, host, store, manifest, executor, outcome, on_event, resume,
                     kept) -> None:
    try:
        if not resume:
            manifest["peaks"] = measure_peaks(executor, planned, request.threads)
            start = manifest["peaks"].get("cpu/fp32") or executor.measure_peaks([("cpu", "fp32")], request.threads)[
                "cpu/fp32"]
            manifest["quietness"] = {"start_gflops": start["gflops"]}
        planned = with_peaks(planned, manifest.get("peaks", {}))
        store.write_manifest(manifest)
        _run_rounds(planned, request, registry, host, store, executor, outcome, on_event or (lambda _e: None), kept)
    finally:
        executor.cancel()


def _run_rounds(planned: list[PlannedCell], request: BenchRequest, registry: Registry, host: PluginHost,
                store: RunStore, executor: Executor, outcome: RunOutcome, emit: Event,
                kept: dict[str, list[CellRecord]]) -> None:
    """Round by round through the executor; ``kept`` holds the finished repeats of cells that a
    Ctrl-C interrupted between rounds (``--resume``): they run only their remaining repeats."""
    repeats = request.repeats  # at least 1: plan_cells refuses less
    runs: dict[str, list[CellRecord]] = {p.cell.key: list(kept.get(p.cell.key, [])) for p in planned}
    position = {p.cell.key: i for i, p in enumerate(planned)}
    by_key = {p.cell.key: p for p in planned}
    total = len(planned) * repeats

    def event(kind: str, job_or_cell, r: int, record: CellRecord | None = None) -> None:
        cell = job_or_cell.plan.cell if isinstance(job_or_cell, CellJob) else job_or_cell
        emit(CellEvent(kind, cell, r * len(planned) + position[cell.key], total, record, r + 1, repeats))

    def keep(p: PlannedCell, record: CellRecord | None, r: int) -> None:
        """Store round ``r``'s record (None: only merge the kept repeats) and, when final, the cell's."""
        key = p.cell.key
        if record is not None:
            runs[key].append(record)
        last = runs[key][-1]
        final = p.plan is None or is_final(last, r, repeats)
        cell_record = merge_repeats(runs[key], repeats, catalogue=registry.catalogue) if final else None
        try:
            if record is not None and repeats > 1 and p.plan is not None:
                store.append_repeat(record)
            if cell_record is not None:
                store.append(cell_record)
        except StoreError as exc:
            outcome.store_error, outcome.unsaved = str(exc), record_to_json(cell_record or record)
            raise _Stop from None
        if cell_record is not None:
            outcome.records.append(cell_record)
            notify_observers(host, cell_record)
        if record is not None:
            event("end", p.cell, r, record)

    try:
        for p in planned:  # every repeat already kept, only the merged record was missing
            if p.plan is not None and len(runs[p.cell.key]) >= repeats:
                keep(p, None, repeats - 1)
        for p in planned:  # cells no adapter supports: a skipped record each, in plan order
            if p.plan is None:
                event("start", p.cell, 0)
                keep(p, skipped_record(p, run_id=store.run_id), 0)
        for r in range(repeats):
            cells = round_cells(planned, r, runs)
            jobs = [CellJob(p.plan, store.log_path(p.cell.key if r == 0 else f"{p.cell.key}.repeat{r + 1}"), r,
                            r * len(planned) + position[p.cell.key]) for p in cells]
            started: list[CellJob] = []
            try:
                for log in {job.log_path.parent for job in jobs}:
                    log.mkdir(parents=True, exist_ok=True)
                def on_start(job: CellJob) -> None:
                    started.append(job)
                    event("start", job, job.repeat)

                retries: dict[str, list[dict]] = {}
                pending = jobs
                while pending:
                    again = []
                    for job, record in executor.submit(pending, on_start=on_start):
                        record = _with_retries(record, retries.get(job.name, []))
                        if _disturbed(record) and len(retries.get(job.name, [])) < request.retry_disturbed:
                            retries.setdefault(job.name, []).append(_attempt(record))
                            again.append(job)  # measured again; this attempt's numbers stay in the record
                            continue
                        p = by_key[job.plan.cell.key]
                        keep(p, _stamp(record, registry, p.interpreter), job.repeat)
                    pending = again
            except OSError as exc:  # no room for a cell's plan or log: nothing measured yet
                which = f"cell {started[-1].plan.cell.key}" if started else "a cell"
                outcome.store_error = (
                    f"cannot start {which} in {store.dir}: {exc.strerror or exc}; free some space, "
                    f"then `zoo bench --resume {store.run_id}` runs the cells that are missing")
                return
    except _Stop:
        return
    finally:  # records in plan order, whichever order the executor finished them in
        outcome.records.sort(key=lambda rec: position.get(rec.cell.key, 0))


def _disturbed(record: CellRecord) -> bool:
    return bool((record.environment.get("disturbance") or {}).get("disturbed"))


def _attempt(record: CellRecord) -> dict:
    """What a disturbed attempt measured, kept in the record of the attempt that counts."""
    return {"started_at": record.started_at, "reasons": record.environment["disturbance"]["reasons"],
            "values": {k: m.value for k, m in record.metrics.items() if k in _RETRY_KEPT}}


_RETRY_KEPT = ("train_throughput", "infer_throughput", "latency_p50_ms", "fine_tune_wall_s")


def _with_retries(record: CellRecord, attempts: list[dict]) -> CellRecord:
    if not attempts or "disturbance" not in record.environment:
        return record
    verdict = {**record.environment["disturbance"], "retried": list(attempts)}
    return replace(record, environment={**record.environment, "disturbance": verdict})


def _finish(manifest: dict, outcome: RunOutcome, executor: Executor, threads: int) -> None:
    """The manifest's final status, and the quietness probe after a complete run."""
    store = outcome.store
    if outcome.store_error:
        manifest["status"] = "failed"
        manifest["error"] = outcome.store_error
    else:
        manifest["status"] = "interrupted" if outcome.interrupted else "completed"
        if outcome.interrupted:
            manifest["interrupted_by"] = outcome.signal
    manifest["finished_at"] = utc_now()
    if outcome.records and not outcome.store_error and not outcome.interrupted:  # Ctrl-C: no more waiting
        end = executor.measure_peaks([("cpu", "fp32")], threads)["cpu/fp32"]["gflops"]
        manifest["quietness"] = outcome.quietness = quietness(
            manifest.get("quietness", {}).get("start_gflops", 0.0), end)
    try:
        store.write_manifest(manifest)
        (store.dir / "work").rmdir()
    except OSError:
        pass  # a full disk: the records already written are intact; the message says what to do


def skipped_record(p: PlannedCell, run_id: str) -> CellRecord:
    """The record of a cell that no adapter supports: ``skipped`` with the adapter's reason."""
    return CellRecord(run_id, p.cell, "skipped", error=ErrorInfo("plan", "Unsupported", p.skip_reason),
                      started_at=utc_now())


def _stamp(record: CellRecord, registry: Registry, interpreter: Interpreter | None = None) -> CellRecord:
    """The plugin distribution that provided the cell's framework: as installed beside the
    planning host, or, for a cell run under ``--python``, as that interpreter's probe found it."""
    origin = registry.frameworks[record.cell.framework].origin
    version = origin.version
    if interpreter is not None:
        version = interpreter.distributions.get(origin.distribution) or version
    return replace(record, environment={
        **record.environment, "plugin": {"distribution": origin.distribution, "version": version}})


def placement_manifest(placement: Placement, planned: list[PlannedCell]) -> dict:
    """What the manifest says about where the run's cells go: its GPUs, whether GPU cells run
    side by side, and each ``--python`` interpreter as its probe found it."""
    interpreters = {p.interpreter.path: p.interpreter for p in planned if p.interpreter is not None}
    return {"placement": {"gpus": list(placement.gpus), "parallel": placement.parallel, "source": placement.source},
            "interpreters": {path: {k: v for k, v in asdict(i).items() if k != "answers"}
                             for path, i in interpreters.items()}}


def measure_peaks(executor: Executor, planned: list[PlannedCell], threads: int) -> dict[str, dict]:
    """The device peak for every (device, precision) the run uses, keyed ``"cpu/fp32"``."""
    pairs = sorted({(p.cell.device, p.cell.precision) for p in planned if p.plan is not None})
    return executor.measure_peaks(pairs, threads) if pairs else {}


#: A change of the matmul probe between a run's start and end beyond this says the machine was busy.
QUIET_CHANGE = 0.05


def quietness(start_gflops: float, end_gflops: float) -> dict:
    """The CPU matmul probe of :mod:`harness.measure.peak` at the end of a run set beside its value
    at the start: a machine whose speed changed during the run was not quiet, and its numbers
    shifted with it (an input to ``zoo bench``'s warning, kept in the manifest)."""
    end = end_gflops
    change = end / start_gflops - 1 if start_gflops > 0 and end > 0 else None
    return {"probe": "best of 5 numpy float32 2048x2048 matmuls", "start_gflops": start_gflops, "end_gflops": end,
            "change": change, "quiet": None if change is None else abs(change) <= QUIET_CHANGE}


def with_peaks(planned: list[PlannedCell], peaks: dict[str, dict]) -> list[PlannedCell]:
    out = []
    for p in planned:
        found = peaks.get(f"{p.cell.device}/{p.cell.precision}", {})
        if p.plan is not None and found.get("gflops"):
            p = replace(p, plan=replace(p.plan, settings=replace(p.plan.settings, peak_gflops=found["gflops"])))
        out.append(p)
    return out


def notify_observers(host: PluginHost, record: CellRecord) -> None:
    """Call every ``zoo_result`` observer; one that raises is reported and the rest still run."""
    data = record_to_dict(record)
    for impl in host.pm.hook.zoo_result.get_hookimpls():
        try:
            impl.function(record=data)
        except Exception:
            origin = host.origin_of(impl.plugin)
            print(f"warning: zoo_result observer of plugin {origin.name} ({origin.distribution}) raised:\n"
                  f"{traceback.format_exc()}", file=sys.stderr)
