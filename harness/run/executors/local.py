"""The local executor: one worker subprocess per cell on this machine, and always a record back:
the worker's own, or a failed/timeout record that says what happened to the process (exit code,
signal, the last lines it printed).

Cells run one at a time, so they never share the cores they are timed on. With
``--parallel-gpus`` GPU cells run side by side, up to one per GPU of the run's
:class:`~harness.plan.placement.Placement`, each pinned to its own GPU
(``CUDA_VISIBLE_DEVICES``) and its own ``--threads`` CPUs; a CPU cell still runs alone. Every
record says where it ran: ``environment.interpreter`` (the Python that ran the worker, from
``--python`` or this process's) and ``environment.placement`` (the GPU it was pinned to, the CPUs
it was given, whether other cells ran beside it)."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Collection, Iterator, Mapping, Sequence

from harness.measure import machine, peak
from harness.plan.cells import CellPlan
from harness.plan.placement import ORDER, VISIBLE, cpu_slice, gpu_env
from harness.results.jsonio import dumps
from harness.results.records import CellRecord, ErrorInfo, record_from_dict
from harness.results.store import utc_now
from harness.run.executors.base import CellJob, Executor, with_disturbance
from harness.run.logcap import CappedLog
from harness.run.processes import is_subreaper, kill_orphans, kill_tree, signals_deferred, write_pid_file
from harness.worker.parent import PARENT_ENV

TAIL_LINES = 20
#: How often a parallel run looks at its running workers (they compute; this process sleeps).
POLL_S = 0.05


def _tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (killed: out of memory?)" if -code == signal.SIGKILL else ""
        return f"worker died from {name}{hint}"
    return f"worker exited with status {code} without writing a record"


def _end_worker(proc: subprocess.Popen, started: float, orphans_until: float | None = None,
                spare: Collection[int] = ()) -> None:
    """The worker and everything it started are gone when this returns (uninterruptible). With
    other workers still running, only orphans that started before the earliest of them
    (``orphans_until``) can be this one's, and the running ones (``spare``) are not touched."""
    with signals_deferred():
        kill_tree(proc.pid, proc)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # unkillable (D state): nothing more can be done here
            pass
        if is_subreaper():
            kill_orphans(since=started, until=orphans_until, spare=spare)


def worker_env(plan: CellPlan, gpu: str | None = None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a cell's worker: this process's, the plan's variables (threads, the
    adapter's, ``CUDA_VISIBLE_DEVICES=""`` for a CPU cell), the parent pid, and for a GPU cell
    pinned to ``gpu`` exactly that one GPU (:func:`harness.plan.placement.gpu_env`)."""
    base = os.environ if base is None else base
    pin = gpu_env(gpu, base) if gpu is not None and plan.cell.device == "gpu" else {}
    return {**base, **plan.env, PARENT_ENV: str(os.getpid()), **pin}


@dataclass
class _Worker:
    """A running worker process and what ending it needs."""

    plan: CellPlan
    proc: subprocess.Popen
    log: CappedLog
    log_path: Path
    plan_path: Path
    out_path: Path
    pid_path: Path
    started: str  # utc_now() at the start
    t0: float  # perf_counter() at the start
    wall0: float  # time.time() at the start
    deadline: float  # time.monotonic() after which it is killed
    timeout_s: float
    where: dict[str, Any]  # interpreter and placement, stamped on its record
    job: CellJob | None = None


def _start(plan: CellPlan, work_dir: Path, log_path: Path, timeout_s: float, name: str = "",
           gpu: str | None = None, cpus: Sequence[int] | None = None,
           parallel: bool = False) -> _Worker | CellRecord:
    """Start ``python -m harness.worker PLAN RECORD`` for ``plan`` (under ``plan.python`` when
    given), pinned to ``gpu`` and ``cpus`` when given; a failed record when that interpreter
    cannot be started at all."""
    work_dir.mkdir(parents=True, exist_ok=True)
    name = name or plan.cell.key
    plan_path = work_dir / f"{name}.plan.json"
    out_path = work_dir / f"{name}.record.json"
    plan_path.write_text(dumps(plan.to_dict()))
    out_path.unlink(missing_ok=True)
    env = worker_env(plan, gpu)
    python = plan.python or sys.executable
    where = {"interpreter": python,
             "placement": {"cuda_visible_devices": env.get(VISIBLE), "cuda_device_order": env.get(ORDER),
                           "parallel": parallel, "cpus": list(cpus) if cpus is not None else None}}
    pid_path = work_dir / f"{name}.pid"
    started, t0, wall0 = utc_now(), time.perf_counter(), time.time()
    log = CappedLog(log_path)  # a plugin printing in a loop cannot fill the disk
    # (not under signals_deferred: the worker would inherit the blocked signal mask)
    try:
        proc = subprocess.Popen(
            [python, "-m", "harness.worker", str(plan_path), str(out_path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,  # its own process group: the cell's end kills its children too
        )
    except OSError as exc:
        log.close()
        plan_path.unlink(missing_ok=True)
        if not plan.python:
            raise  # this very interpreter cannot start a process: no room, no memory
        log_path.write_text(f"cannot start the worker under {python}: {exc}\n")
        return _stamped(_failed(plan, "failed", "worker", "InterpreterMissing",
                                f"cannot start the worker under --python {python}: {exc.strerror or exc}; it was "
                                "checked when the run was planned, so it changed since: restore it, then "
                                "`zoo bench --resume RUN_ID`", "", started, time.perf_counter() - t0), where)
    except BaseException:
        log.close()
        raise
    try:
        if cpus is not None:  # before it starts threads: the worker pins its threads inside these
            os.sched_setaffinity(proc.pid, list(cpus))
        log.attach(proc.stdout)
        write_pid_file(work_dir / f"{name}.pid", proc.pid)
    except BaseException:
        _end_worker(proc, wall0)
        log.close()
        raise
    return _Worker(plan, proc, log, log_path, plan_path, out_path, pid_path, started, t0, wall0,
                   time.monotonic() + timeout_s, timeout_s, where)


def _finish(w: _Worker, timed_out: bool, orphans_until: float | None = None,
            spare: Collection[int] = ()) -> CellRecord:
    """End ``w``'s process tree and turn what it left into its record."""
    _end_worker(w.proc, w.wall0, orphans_until, spare)  # whatever the worker started and left behind
    w.pid_path.unlink(missing_ok=True)
    w.log.close()
    duration = time.perf_counter() - w.t0
    try:
        w.plan_path.unlink(missing_ok=True)
        if w.out_path.exists() and not timed_out:
            record = record_from_dict(json.loads(w.out_path.read_text()))
            w.out_path.unlink()
            return _stamped(record, w.where)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return _stamped(_failed(w.plan, "failed", "worker", "BadRecord", f"worker wrote an unreadable record: {exc}",
                                _tail(w.log_path), w.started, duration), w.where)
    if timed_out:
        return _stamped(_failed(w.plan, "timeout", "worker", "Timeout",
                                f"cell did not finish within {w.timeout_s:g} s and was killed; raise --timeout if it "
                                "is just slow", _tail(w.log_path), w.started, duration), w.where)
    return _stamped(_failed(w.plan, "failed", "worker", "WorkerDied", _describe_exit(w.proc.returncode),
                            _tail(w.log_path), w.started, duration), w.where)


def _abandon(w: _Worker) -> None:
    """Ctrl-C, SIGTERM or SIGHUP in the parent: do not leave the worker running."""
    _end_worker(w.proc, w.wall0)
    w.pid_path.unlink(missing_ok=True)
    w.log.close()


def _stamped(record: CellRecord, where: Mapping[str, Any]) -> CellRecord:
    return replace(record, environment={**record.environment, **where})


class LocalExecutor(Executor):
    """Each cell in its own ``python -m harness.worker`` process on this machine, one at a time,
    so cells never share the cores they are timed on; with ``--parallel-gpus``, up to one GPU cell
    per GPU at a time, each on its own GPU and CPUs."""

    name = "local"
    description = ("one worker subprocess per cell on this machine, one cell at a time (default; "
                   "--parallel-gpus: one GPU cell per GPU at a time)")

    def __init__(self, options):
        super().__init__(options)
        self._running: dict[int, _Worker] = {}

    def submit(self, jobs: Sequence[CellJob],
               on_start: Callable[[CellJob], None] | None = None) -> Iterator[tuple[CellJob, CellRecord]]:
        if self.placement.parallel and self.placement.slots() > 1:
            yield from self._side_by_side(jobs, on_start)
            return
        for job in jobs:
            if on_start is not None:
                on_start(job)
            record = run_cell(job.plan, self.options.work_dir, job.log_path, self.options.timeout_s, job.name,
                              gpu=self._pin(job.plan))
            yield job, with_disturbance(record, self._peak_after(job.plan))

    def _pin(self, plan: CellPlan, slot: int = 0) -> str | None:
        """The GPU a GPU cell is pinned to: its slot's of the run's GPUs (None: no list to pin to)."""
        gpus = self.placement.gpus
        return gpus[slot] if plan.cell.device == "gpu" and gpus else None

    def _side_by_side(self, jobs: Sequence[CellJob],
                      on_start: Callable[[CellJob], None] | None) -> Iterator[tuple[CellJob, CellRecord]]:
        """Up to one GPU cell per GPU at a time, in job order; a CPU cell waits until none runs and
        then runs alone. Records come back as cells finish."""
        queue = collections.deque(jobs)
        free = list(range(self.placement.slots()))
        running = self._running
        since = time.time()
        try:
            while queue or running:
                while queue and free and queue[0].plan.cell.device == "gpu":
                    job, slot = queue.popleft(), free.pop(0)
                    if on_start is not None:
                        on_start(job)
                    w = _start(job.plan, self.options.work_dir, job.log_path, self.options.timeout_s, job.name,
                               gpu=self._pin(job.plan, slot), cpus=cpu_slice(slot, job.plan.settings.threads),
                               parallel=True)
                    if isinstance(w, CellRecord):
                        free.insert(0, slot)
                        yield job, w
                        continue
                    w.job = job
                    running[slot] = w
                if queue and not running:  # a CPU cell: alone, as without --parallel-gpus
                    job = queue.popleft()
                    if on_start is not None:
                        on_start(job)
                    record = run_cell(job.plan, self.options.work_dir, job.log_path, self.options.timeout_s,
                                      job.name)
                    yield job, with_disturbance(record, self._peak_after(job.plan))
                    continue
                for slot, timed_out in _wait_any(running):
                    w = running.pop(slot)
                    others = list(running.values())
                    record = _finish(w, timed_out, orphans_until=min((o.wall0 for o in others), default=None),
                                     spare=[o.proc.pid for o in others])
                    free.append(slot)
                    free.sort()
                    yield w.job, with_disturbance(record, 0.0)
        finally:
            self.cancel()
            if is_subreaper():
                with signals_deferred():
                    kill_orphans(since=since)  # left-overs no finished cell could claim safely

    def cancel(self) -> None:
        while self._running:
            _abandon(self._running.pop(next(iter(self._running))))

    def _peak_after(self, plan: CellPlan) -> float:
        """The CPU peak right after a cell, to compare with the run-start probe (0: not probed)."""
        cell = plan.cell
        if cell.device != "cpu" or not plan.settings.peak_gflops:
            return 0.0
        return peak.measure(cell.device, cell.precision, plan.settings.threads).gflops

    def measure_peaks(self, pairs: Sequence[tuple[str, str]], threads: int) -> dict[str, dict]:
        """CPU peaks with the cells' threads; GPU peaks on the run's first GPU, as a cell pinned
        there sees it (every GPU of a parallel run is the same model: :mod:`harness.plan.placement`)."""
        out = {}
        for device, precision in pairs:
            if device == "gpu" and self.placement.gpus:
                env = {**os.environ, **gpu_env(self.placement.gpus[0])}
                out[f"{device}/{precision}"] = asdict(peak.measure_gpu(precision, env=env))
            else:
                out[f"{device}/{precision}"] = asdict(peak.measure(device, precision, threads))
        return out


def _wait_any(running: Mapping[int, _Worker]) -> list[tuple[int, bool]]:
    """Block until at least one running worker exits or passes its deadline: ``(slot, timed_out)``."""
    while True:
        now = time.monotonic()
        done = [(slot, w.proc.poll() is None) for slot, w in running.items()
                if w.proc.poll() is not None or now >= w.deadline]
        if done:
            return done
        time.sleep(POLL_S)


def run_cell(plan: CellPlan, work_dir: Path, log_path: Path, timeout_s: float, name: str = "",
             gpu: str | None = None) -> CellRecord:
    """Run ``plan`` in ``python -m harness.worker`` (under ``plan.python`` when set) with its output
    in ``log_path``; ``name`` (default: the cell key) names its scratch files in ``work_dir``; a GPU
    cell is pinned to ``gpu`` when given (else it sees what this process sees)."""
    w = _start(plan, work_dir, log_path, timeout_s, name, gpu=gpu)
    if isinstance(w, CellRecord):
        return w
    try:
        w.proc.wait(timeout=timeout_s)
        timed_out = False
    except subprocess.TimeoutExpired:
        timed_out = True
    except BaseException:  # Ctrl-C, SIGTERM or SIGHUP in the parent: do not leave the worker running
        _abandon(w)
        raise
    return _finish(w, timed_out)


def _failed(plan: CellPlan, status: str, phase: str, kind: str, message: str, detail: str,
            started: str, duration: float) -> CellRecord:
    # the worker could not say where it ran: this machine did, with the peak it was planned with
    return CellRecord(
        run_id=plan.run_id, cell=plan.cell, status=status,
        error=ErrorInfo(phase, kind, message, detail), started_at=started, duration_s=duration,
        environment={"machine": machine.record_info(), "peak_gflops": plan.settings.peak_gflops},
    )
