"""Worker process lifetime, seen from the parent: a worker never outlives its run or runs twice.

* SIGTERM and SIGHUP (what ``timeout``, CI cancellation and ``kill`` send, and a closed terminal)
  end a run as Ctrl-C does: :func:`stop_signals_interrupt` turns them into :class:`Interrupted`.
* Killing a worker is uninterruptible: :func:`signals_deferred` holds SIGINT/SIGTERM/SIGHUP back
  while :func:`kill_tree` escalates from SIGTERM to SIGKILL, so a second Ctrl-C cannot leave a
  worker that ignores SIGTERM alive.
* A worker is tied to its parent (``harness.worker.parent``: ``PR_SET_PDEATHSIG``), so a parent
  killed with SIGKILL takes its worker with it.
* At the end of every cell its whole process group is killed, and on Linux the ``zoo`` process is
  a child subreaper (:func:`become_subreaper`), so processes a plugin started in a new session are
  re-parented to it and killed too (:func:`kill_orphans`).
* Each running worker has a pid file in the run's ``work/`` directory; ``--resume`` refuses a run
  whose pid files name a live worker (:func:`live_workers`).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Collection, Iterator

#: The signals that end a run the way Ctrl-C does.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_PR_SET_CHILD_SUBREAPER = 36


class Interrupted(KeyboardInterrupt):
    """The run was asked to stop: Ctrl-C, SIGTERM or SIGHUP (``signal`` names which)."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signal = signal.Signals(signum).name


@contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """While active (main thread only), SIGTERM and SIGHUP raise :class:`Interrupted` as SIGINT
    raises ``KeyboardInterrupt``, so the run ends cleanly: workers killed, manifest written."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame) -> None:
        raise Interrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold back SIGINT, SIGTERM and SIGHUP for the duration (they arrive when it ends), so that
    cleanup which must finish (killing a worker, writing the manifest) is not cut short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def kill_tree(pgid: int, leader: subprocess.Popen | None = None, grace_s: float = 5.0) -> None:
    """End the process group ``pgid`` (a worker and what it started): SIGTERM, then SIGKILL for
    whatever is left after ``grace_s``. ``leader`` (the worker's Popen) is polled so that it does
    not linger as a zombie that looks alive. Returns when the group is gone or after SIGKILL."""
    with signals_deferred():
        try:
            os.killpg(pgid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if leader is not None:
                leader.poll()
            if not _group_alive(pgid):
                return
            time.sleep(0.02)
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    # a zombie still counts for killpg(0): look for a member that is not one
    return any(_stat(pid)[1] != "Z" for pid in _pids() if _stat(pid)[2] == pgid) if _proc() else True


def _reap_orphans() -> None:
    """Collect exited children; only for a subreaper, whose every unknown child is an orphan."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux ``PR_SET_CHILD_SUBREAPER``);
    ``False`` where the OS has no such call. Only the ``zoo`` command does this, never a library
    caller: it changes which process adopts orphans."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def is_subreaper() -> bool:
    """Whether this process adopts its orphaned descendants (``PR_GET_CHILD_SUBREAPER``)."""
    try:
        value = ctypes.c_int(0)
        return ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER + 1, ctypes.byref(value), 0, 0, 0) == 0 \
            and value.value == 1
    except (OSError, AttributeError):
        return False


def kill_orphans(since: float, until: float | None = None, spare: Collection[int] = ()) -> list[int]:
    """SIGKILL this process's children that started after ``since`` (``time.time()``) and are not
    its own subprocesses: as a subreaper, those are a finished worker's left-over descendants.
    While other workers run (``--parallel-gpus``), pass the earliest start among them as
    ``until`` and their pids as ``spare``: only children that started at least a second (the
    resolution of the boot time) before ``until`` are killed, since later ones may be theirs.
    Returns the pids killed."""
    if not _proc():
        return []
    me, boot, tick = os.getpid(), _boot_time(), os.sysconf("SC_CLK_TCK")
    spared = set(spare)
    killed = []
    for pid in _pids():
        if pid in spared:
            continue
        ppid, state, _pgid, start_ticks = _stat(pid)
        began = boot + start_ticks / tick
        if until is not None and began >= until - 1.0:
            continue
        if ppid == me and state != "Z" and began >= since - 1.0:
            try:
                os.killpg(pid, signal.SIGKILL) if os.getpgid(pid) == pid else os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except (ProcessLookupError, PermissionError):
                pass
    if killed:
        time.sleep(0.05)
    _reap_orphans()
    return killed


# --- pid files of running workers, for --resume


def write_pid_file(path: Path, pid: int) -> None:
    """``PID START_TICKS`` of a worker that is starting (the start time tells a reused pid apart)."""
    path.write_text(f"{pid} {_start_ticks(pid)}\n")


def live_workers(work_dir: Path) -> list[tuple[str, int]]:
    """``(pid file name, pid)`` of the workers in ``work_dir`` that are still running."""
    alive = []
    for path in sorted(Path(work_dir).glob("*.pid")):
        try:
            pid_text, ticks_text = path.read_text().split()
            pid, ticks = int(pid_text), int(ticks_text)
        except (OSError, ValueError):
            continue
        if _start_ticks(pid) == ticks and _stat(pid)[1] not in ("Z", "X", ""):
            alive.append((path.stem, pid))
    return alive


# --- /proc


def _proc() -> bool:
    return Path("/proc/self/stat").exists()


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _stat(pid: int) -> tuple[int, str, int, int]:
    """``(ppid, state, pgid, start time in clock ticks)`` from ``/proc/PID/stat``, or zeros."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0, "", 0, 0
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), fields[0], int(fields[2]), int(fields[19])


def _start_ticks(pid: int) -> int:
    return _stat(pid)[3]


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime"):
            return float(line.split()[1])
    return 0.0
