"""The local executor: one worker subprocess per cell on this machine, one cell at a time, and
always a record back: the worker's own, or a failed/timeout record that says what happened to
the process (exit code, signal, the last lines it printed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterator, Sequence

from harness.measure import machine, peak
from harness.plan.cells import CellPlan
from harness.results.jsonio import dumps
from harness.results.records import CellRecord, ErrorInfo, record_from_dict
from harness.results.store import utc_now
from harness.run.executors.base import CellJob, Executor, with_disturbance
from harness.run.logcap import CappedLog
from harness.run.processes import is_subreaper, kill_orphans, kill_tree, signals_deferred, write_pid_file
from harness.worker.parent import PARENT_ENV

TAIL_LINES = 20


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


def _end_worker(proc: subprocess.Popen, started: float) -> None:
    """The worker and everything it started are gone when this returns (uninterruptible)."""
    with signals_deferred():
        kill_tree(proc.pid, proc)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # unkillable (D state): nothing more can be done here
            pass
        if is_subreaper():
            kill_orphans(since=started)


class LocalExecutor(Executor):
    """Each cell in its own ``python -m harness.worker`` process on this machine, one at a time,
    so cells never share the cores they are timed on."""

    name = "local"
    description = "one worker subprocess per cell on this machine, one cell at a time (default)"

    def submit(self, jobs: Sequence[CellJob],
               on_start: Callable[[CellJob], None] | None = None) -> Iterator[tuple[CellJob, CellRecord]]:
        for job in jobs:
            if on_start is not None:
                on_start(job)
            record = run_cell(job.plan, self.options.work_dir, job.log_path, self.options.timeout_s, job.name)
            yield job, with_disturbance(record, self._peak_after(job.plan))

    def _peak_after(self, plan: CellPlan) -> float:
        """The CPU peak right after a cell, to compare with the run-start probe (0: not probed)."""
        cell = plan.cell
        if cell.device != "cpu" or not plan.settings.peak_gflops:
            return 0.0
        return peak.measure(cell.device, cell.precision, plan.settings.threads).gflops

    def measure_peaks(self, pairs: Sequence[tuple[str, str]], threads: int) -> dict[str, dict]:
        return {f"{device}/{precision}": asdict(peak.measure(device, precision, threads))
                for device, precision in pairs}


def run_cell(plan: CellPlan, work_dir: Path, log_path: Path, timeout_s: float, name: str = "") -> CellRecord:
    """Run ``plan`` in ``python -m harness.worker`` with its output in ``log_path``; ``name``
    (default: the cell key) names its scratch files in ``work_dir``."""
    work_dir.mkdir(parents=True, exist_ok=True)
    name = name or plan.cell.key
    plan_path = work_dir / f"{name}.plan.json"
    out_path = work_dir / f"{name}.record.json"
    plan_path.write_text(dumps(plan.to_dict()))
    out_path.unlink(missing_ok=True)
    env = {**os.environ, **plan.env, PARENT_ENV: str(os.getpid())}
    pid_path = work_dir / f"{name}.pid"
    started, t0, wall0 = utc_now(), time.perf_counter(), time.time()
    log = CappedLog(log_path)  # a plugin printing in a loop cannot fill the disk
    # (not under signals_deferred: the worker would inherit the blocked signal mask)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness.worker", str(plan_path), str(out_path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,  # its own process group: the cell's end kills its children too
        )
    except BaseException:
        log.close()
        raise
    try:
        log.attach(proc.stdout)
        write_pid_file(pid_path, proc.pid)
        code = proc.wait(timeout=timeout_s)
        timed_out = False
    except subprocess.TimeoutExpired:
        _end_worker(proc, wall0)
        code, timed_out = proc.returncode, True
    except BaseException:  # Ctrl-C, SIGTERM or SIGHUP in the parent: do not leave the worker running
        _end_worker(proc, wall0)
        pid_path.unlink(missing_ok=True)
        log.close()
        raise
    _end_worker(proc, wall0)  # whatever the worker started and left behind
    pid_path.unlink(missing_ok=True)
    log.close()
    try:
        plan_path.unlink(missing_ok=True)
        if out_path.exists() and not timed_out:
            record = record_from_dict(json.loads(out_path.read_text()))
            out_path.unlink()
            return record
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return _failed(plan, "failed", "worker", "BadRecord", f"worker wrote an unreadable record: {exc}",
                       _tail(log_path), started, time.perf_counter() - t0)
    if timed_out:
        return _failed(plan, "timeout", "worker", "Timeout",
                       f"cell did not finish within {timeout_s:g} s and was killed; raise --timeout if it is "
                       "just slow", _tail(log_path), started, time.perf_counter() - t0)
    return _failed(plan, "failed", "worker", "WorkerDied", _describe_exit(code), _tail(log_path),
                   started, time.perf_counter() - t0)


def _failed(plan: CellPlan, status: str, phase: str, kind: str, message: str, detail: str,
            started: str, duration: float) -> CellRecord:
    # the worker could not say where it ran: this machine did, with the peak it was planned with
    return CellRecord(
        run_id=plan.run_id, cell=plan.cell, status=status,
        error=ErrorInfo(phase, kind, message, detail), started_at=started, duration_s=duration,
        environment={"machine": machine.record_info(), "peak_gflops": plan.settings.peak_gflops},
    )
