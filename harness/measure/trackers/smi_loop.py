"""One looping ``nvidia-smi`` query (``-lms INTERVAL``) for the length of a cell, read as it prints.

The GPU trackers (:mod:`~harness.measure.trackers.gpu_clocks`,
:mod:`~harness.measure.trackers.gpu_process_memory`) each start one loop when the cell's
trackers are created and split its samples into phases by the time each was taken: one process
per cell, nothing started or stopped inside a phase, and the driver's query runs in its own
process rather than in the worker's Python threads.

* **Line buffering.** A C program writing to a pipe buffers whole blocks, so a reader would get a
  phase's samples seconds after the phase (or at exit). The loop's output goes to a pseudo
  terminal instead, on which C's stdio flushes every line; where no pseudo terminal can be opened
  a pipe is used and :attr:`SmiLoop.transport` says so.
* **CPU.** The worker is pinned to the cell's CPUs; the loop is moved to the machine's other CPUs
  when there are any, so its polling does not take time from the measured threads.
* **Time.** Each query asks for nvidia-smi's ``timestamp`` (when the driver was queried, to the
  millisecond), so a sample belongs to the phase it was taken in, however late its line is read;
  a line without one is dated by its arrival. Both are wall-clock times (``time.time()``).
* **Lifetime.** :meth:`SmiLoop.close` ends it (the worker calls it at the cell's end, also when a
  phase failed); it runs in the worker's process group, which the executor kills after the cell.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Mapping, Optional, Protocol, Sequence, TypeVar

from zoo.trackers import Tracker, TrackerContext

from harness.measure.trackers.phases import PHASE_PREFIX

#: Sampling interval of every loop, in milliseconds: cheap for the driver, ~10 samples a second.
INTERVAL_MS = 100
#: Lines of output kept to explain a loop that printed nothing usable.
KEPT_FOR_ERRORS = 5
#: nvidia-smi's ``timestamp`` field.
TIMESTAMP_FORMAT = "%Y/%m/%d %H:%M:%S.%f"
#: How long after its sample a line may arrive (a busy worker's reader thread waits for the GIL).
ARRIVAL_SLACK_S = 1.0


class Dated(Protocol):
    """A parsed sample: ``t`` is when it was taken (``None``: the line had no timestamp)."""

    @property
    def t(self) -> Optional[float]: ...


T = TypeVar("T", bound=Dated)


@dataclass(frozen=True)
class Line:
    """One line of the loop's output and when it arrived (``time.time()``)."""

    t: float
    text: str


def parse_timestamp(field: str) -> float | None:
    """nvidia-smi's ``timestamp`` field (``2024/03/12 10:00:00.123``, local time) as ``time.time()``
    seconds, or ``None`` when it is not one."""
    try:
        return datetime.strptime(field.strip(), TIMESTAMP_FORMAT).timestamp()
    except ValueError:
        return None


def find_nvidia_smi(env: Mapping[str, str] | None = None) -> str | None:
    """The ``nvidia-smi`` executable on ``env``'s PATH (this process's by default), or ``None``."""
    path = (os.environ if env is None else env).get("PATH")
    return shutil.which("nvidia-smi", path=path)


def _other_cpus() -> set[int]:
    """The CPUs this (pinned) process is not allowed to run on: where the loop runs."""
    try:
        return set(range(os.cpu_count() or 1)) - os.sched_getaffinity(0)
    except (AttributeError, OSError):
        return set()


class SmiLoop:
    """``nvidia-smi ARGS -lms INTERVAL`` running in the background, its lines stamped on arrival.

    Construction never raises: a loop that cannot start has :attr:`error` set and no lines.
    """

    def __init__(self, executable: str, args: Sequence[str], interval_ms: int = INTERVAL_MS,
                 env: Mapping[str, str] | None = None):
        self.command = [executable, *args, "-lms", str(interval_ms)]
        self.interval_s = interval_ms / 1000.0
        self.lines: list[Line] = []
        self.error = ""
        self.transport = "pseudo terminal"
        self.cpus: list[int] = []
        self._lock = threading.Lock()
        self._closed = False
        self._proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None
        try:
            read_fd, write_fd = os.openpty()
        except OSError:
            read_fd, write_fd = os.pipe()
            self.transport = "pipe (a C program may buffer its output: samples can arrive late)"
        try:
            self._proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=write_fd,
                                          stderr=subprocess.STDOUT, env=None if env is None else dict(env))
        except OSError as exc:
            os.close(read_fd)
            self.error = f"could not start {executable}: {exc}"
            return
        finally:
            os.close(write_fd)
        others = _other_cpus()
        if others:
            try:
                os.sched_setaffinity(self._proc.pid, others)
                self.cpus = sorted(os.sched_getaffinity(self._proc.pid))
            except OSError:
                pass
        self._reader = threading.Thread(target=self._read, args=(read_fd,), daemon=True, name="zoo-nvidia-smi")
        self._reader.start()

    def _read(self, fd: int) -> None:
        pending = b""
        try:
            while True:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # EIO: every writer of the pseudo terminal has gone
                    break
                if not chunk:
                    break
                now = time.time()
                pending += chunk
                *complete, pending = pending.split(b"\n")
                if complete:
                    with self._lock:
                        self.lines.extend(Line(now, raw.decode("utf-8", "replace").strip("\r ")) for raw in complete)
        finally:
            os.close(fd)
            if pending.strip():
                with self._lock:
                    self.lines.append(Line(time.time(), pending.decode("utf-8", "replace").strip("\r ")))

    def between(self, start: float, stop: float) -> list[Line]:
        """The non-empty lines that arrived in ``[start, stop]`` (``time.time()``)."""
        with self._lock:
            return [line for line in self.lines if start <= line.t <= stop and line.text]

    def samples(self, parse: Callable[[str], T | None], start: float, stop: float) -> list[tuple[float, T]]:
        """The lines ``parse`` understands whose sample was taken in ``[start, stop]``, each with that
        time: the sample's own ``t`` (its timestamp) or, where it has none, the line's arrival."""
        out = []
        for line in self.between(start - ARRIVAL_SLACK_S, stop):
            sample = parse(line.text)
            if sample is None:
                continue
            t = line.t if sample.t is None else sample.t
            if start <= t <= stop:
                out.append((t, sample))
        return out

    def tail(self) -> list[str]:
        """The last few non-empty lines, to say why a loop gave nothing usable."""
        with self._lock:
            return [line.text for line in self.lines if line.text][-KEPT_FOR_ERRORS:]

    def exited(self) -> str:
        """Why the loop stopped by itself (``"exited with status 6: ..."``), or ``""`` while it runs
        or after :meth:`close`."""
        if self.error:
            return self.error
        if self._proc is None or self._closed or self._proc.poll() is None:
            return ""
        if self._reader is not None:
            self._reader.join(timeout=1.0)  # the last lines it printed
        said = "; ".join(self.tail())
        return f"{self.command[0]} exited with status {self._proc.returncode}" + (f": {said}" if said else "")

    def close(self) -> None:
        """End the loop and its reader (idempotent)."""
        if self._closed:
            return
        self._closed = True
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=2.0)
        if self._reader is not None:
            self._reader.join(timeout=2.0)

    def describe(self) -> str:
        """The command line, as the record's details say how the figures were sampled."""
        return " ".join(["nvidia-smi", *self.command[1:]])


class SmiPhaseTracker(Tracker):
    """What the GPU trackers share: one :class:`SmiLoop` per GPU cell (none on a CPU cell), the
    wall-clock span of each measured phase, the loop ended at the cell's end, and the method in
    the details. A subclass starts :attr:`loop` in its ``__init__`` (or sets :attr:`reason` when
    it cannot) and reads a phase's samples in ``stop`` from :meth:`span`."""

    def __init__(self, context: TrackerContext):
        super().__init__(context)
        self.loop: SmiLoop | None = None
        self.reason = ""
        self._started: dict[str, float] = {}

    def start(self, phase: str) -> None:
        if self.loop is not None and phase in PHASE_PREFIX:
            self._started[phase] = time.time()

    def span(self, phase: str) -> tuple[float, float] | None:
        """The phase's start and end (wall clock), or ``None`` when nothing samples it."""
        if self.loop is None or phase not in self._started:
            return None
        return self._started.pop(phase), time.time()

    def close(self) -> None:
        """End the sampling loop (the worker calls it at the cell's end, also after a failure)."""
        if self.loop is not None:
            self.loop.close()

    def loop_details(self) -> dict[str, Any] | None:
        """The details every GPU tracker gives: ``{}`` on a CPU cell, the reason when no loop
        runs, else ``None`` (the subclass adds its own to :meth:`method_details`)."""
        if self.context.device == "cpu":
            return {}
        if self.loop is None or self.loop.error:
            return {"reason": self.reason}
        return None

    def method_details(self) -> dict[str, Any]:
        """How the loop sampled: its command, interval and output transport."""
        assert self.loop is not None
        return {"method": self.loop.describe(), "interval_ms": INTERVAL_MS, "output": self.loop.transport}
