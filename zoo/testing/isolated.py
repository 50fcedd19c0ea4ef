"""Run the conformance suite in a child process, so that it survives the adapter.

:func:`~zoo.testing.runner.run_conformance` runs the adapter in the calling process: an adapter
that calls ``os._exit``/``sys.exit``, hangs, segfaults or raises ``KeyboardInterrupt`` or
``SystemExit`` ends (or blocks) that process, and with it the report. :func:`run_isolated` runs
the same suite in a fresh Python process that streams each result to
a file as it is recorded, gives each check ``timeout`` seconds, and returns the same
:class:`~zoo.testing.report.ConformanceReport`: when the child does not finish, the check that was
running fails with what ended it (exit status, signal, exception, timeout), the adapter method it
was in and the last lines of its output, and the checks after it are skipped.

``zoo check-plugin NAME`` uses it (``--timeout``); the pytest plugin and a plugin's own tests keep
calling ``run_conformance`` in their process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from zoo.testing.report import FAILED, SKIPPED, CheckResult, ConformanceReport
from zoo.testing.runner import CHECKS, UsageError

#: Seconds each check may take by default before the check process is killed.
DEFAULT_TIMEOUT = 300.0
#: Lines of the check process's output kept in a crash's result.
TAIL_LINES = 40
#: The subject of the result that says the check process ended early.
PROCESS_SUBJECT = "check process"
_TAIL_BYTES = 64 << 10
_CHILD = "import json, sys; from zoo.testing.isolated import _child; _child(json.loads(sys.argv[1]), sys.argv[2])"


def run_isolated(
    framework: str,
    *,
    checks: Sequence[str] = CHECKS,
    models: Sequence[str] = (),
    device: str = "cpu",
    threads: int | None = None,
    seed: int = 0,
    plugins: Sequence[str] = (),
    timeout: float = DEFAULT_TIMEOUT,
) -> ConformanceReport:
    """:func:`~zoo.testing.runner.run_conformance` in a child process, each check limited to
    ``timeout`` seconds. Returns the report; never raises for a broken adapter (a crash, an exit,
    a hang or a ``BaseException`` is a failed result naming the check). Raises
    :class:`~zoo.testing.runner.UsageError` (a ``ValueError``) for unknown checks or models."""
    unknown = sorted(set(checks) - set(CHECKS))
    if unknown:
        raise UsageError(f"unknown checks {unknown}; choose from {', '.join(CHECKS)}")
    if not timeout > 0:
        raise UsageError(f"timeout must be a positive number of seconds, got {timeout!r}")
    order = [c for c in CHECKS if c in checks]
    spec = {"framework": framework, "checks": order, "models": list(models), "device": device, "threads": threads,
            "seed": seed, "plugins": list(plugins)}
    with tempfile.TemporaryDirectory(prefix="zoo-check-") as tmp:
        events_path, log_path = Path(tmp) / "events.jsonl", Path(tmp) / "output.log"
        events_path.touch()
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-c", _CHILD, json.dumps(spec), str(events_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        state = _State(framework, order)
        timed_out = False
        try:
            with open(events_path, "rb") as events:
                deadline = time.monotonic() + timeout
                while True:
                    if state.read(events):
                        deadline = time.monotonic() + timeout  # a check started: its own time
                    if proc.poll() is not None:
                        state.read(events)
                        break
                    if time.monotonic() > deadline:
                        timed_out = True
                        _dump_and_kill(proc, log_path)
                        state.read(events)
                        break
                    time.sleep(0.02)
        finally:
            _kill_group(proc)
        if state.error is not None:
            raise UsageError(state.error)
        return state.report(proc.returncode, timed_out, timeout, _tail(log_path))


class _State:
    """What the child has reported so far."""

    def __init__(self, framework: str, order: list[str]) -> None:
        self.header: dict[str, Any] = {"framework": framework, "origin": "not known (the check process ended first)",
                                       "checks": order, "models": []}
        self.order = order
        self.results: list[CheckResult] = []
        self.running = ""  # the check in progress
        self.method = ""  # the adapter method in progress
        self.raised: dict[str, Any] | None = None
        self.done: dict[str, Any] | None = None
        self.error: str | None = None
        self._partial = b""

    def read(self, events) -> bool:
        """Take in the events written since the last call; True when a check started."""
        started = False
        chunk = events.read()
        if not chunk:
            return False
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # something other than the child's reporter wrote here
            kind = event.pop("event", "")
            if kind == "check":
                self.running, self.method, started = event["check"], "", True
            elif kind == "call":
                self.method = event["method"]
            elif kind == "result":
                self.results.append(CheckResult(**event))
            elif kind == "report":
                self.header.update(event)
            elif kind == "raised":
                self.raised = event
            elif kind == "done":
                self.done = event["report"]
            elif kind == "usage-error":
                self.error = event["message"]
        return started

    def report(self, returncode: int | None, timed_out: bool, timeout: float, tail: str) -> ConformanceReport:
        if self.done is not None and returncode == 0 and not timed_out:
            return ConformanceReport.from_dict(self.done)
        report = ConformanceReport(self.header["framework"], self.header["origin"], self.order,
                                   list(self.results), list(self.header["models"]))
        done_checks = {r.check for r in self.results}
        check = self.running or next((c for c in self.order if c not in done_checks), self.order[-1])
        where = f" in {self.method}" if self.method else ""
        if timed_out:
            why = f"did not finish within {timeout:g} s{where}; the check process was killed (zoo check-plugin " \
                  "--timeout SECONDS allows more)"
        elif self.raised is not None:
            why = (f"ended the check process{where}: {self.raised['type']}: {self.raised['message']} (a BaseException "
                   "such as KeyboardInterrupt or SystemExit is not an error an adapter may raise)")
        else:
            why = f"ended the check process{where}: {_describe_exit(returncode)}"
        last = next((line for line in reversed(tail.splitlines()) if line.strip()), "")
        message = f"check {check!r} {why}" + (f"; its last output: {last.strip()[:200]}" if last else "; no output")
        detail = ((self.raised or {}).get("traceback", "") + "\n" if self.raised else "") + \
            f"last {TAIL_LINES} lines of the check process's output:\n{tail or '(none)'}"
        report.results.append(CheckResult(check, PROCESS_SUBJECT, FAILED, message, detail))
        position = self.order.index(check) if check in self.order else len(self.order)
        for later in self.order[position + 1:]:
            if later not in done_checks:
                report.results.append(CheckResult(later, "", SKIPPED, f"not run: the check process ended during "
                                                  f"check {check!r}"))
        return report


def _describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "it did not exit"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"it was killed by {name} (a crash in native code, or a kill)"
    if returncode == 0:
        return "it exited with status 0 before the suite finished (the adapter called sys.exit(0) or os._exit(0)?)"
    return f"it exited with status {returncode} before the suite finished (the adapter called sys.exit or os._exit?)"


def _dump_and_kill(proc: subprocess.Popen, log_path: Path) -> None:
    """Ask the hung child for its Python stack (faulthandler on SIGUSR1), give it up to 2 s to
    write it, then kill its group (SIGKILL: an adapter that ignores SIGTERM is ended too)."""
    try:
        before = log_path.stat().st_size
        os.kill(proc.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 2.0
        size, stable_since = before, time.monotonic()
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            now = log_path.stat().st_size
            if now != size:
                size, stable_since = now, time.monotonic()
            elif size != before and time.monotonic() - stable_since > 0.2:
                break
    except OSError:
        pass
    _kill_group(proc)


def _kill_group(proc: subprocess.Popen) -> None:
    """End the child and whatever it started in its process group (it leads its own session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL does not wait for the child
        pass


def _tail(path: Path) -> str:
    with open(path, "rb") as fh:
        fh.seek(max(0, path.stat().st_size - _TAIL_BYTES))
        text = fh.read().decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-TAIL_LINES:])


def _child(spec: dict[str, Any], events_path: str) -> None:
    """In the check process: run the suite, streaming every event to ``events_path``."""
    import faulthandler
    import traceback

    from zoo.testing.runner import run_conformance

    faulthandler.enable(all_threads=True)  # a segfault prints the Python stack to the output
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # the parent asks for it on a timeout
    fd = os.open(events_path, os.O_WRONLY | os.O_APPEND)

    def emit(kind: str, **fields: Any) -> None:
        os.write(fd, (json.dumps({"event": kind, **fields}, default=str) + "\n").encode())

    def progress(kind: str, value: Any) -> None:
        if kind == "results":
            for result in value:
                emit("result", **asdict(result))
        elif kind == "report":
            emit("report", framework=value.framework, origin=value.origin, models=list(value.models))
        elif kind == "check":
            emit("check", check=value)
        elif kind == "call":
            emit("call", method=value)

    try:
        report = run_conformance(spec["framework"], checks=spec["checks"], models=spec["models"],
                                 device=spec["device"], threads=spec["threads"], seed=spec["seed"],
                                 plugins=spec["plugins"], progress=progress)
    except UsageError as exc:
        emit("usage-error", message=str(exc))
        os._exit(2)
    except BaseException as exc:  # noqa: B036 - SystemExit and KeyboardInterrupt from the adapter too
        emit("raised", type=type(exc).__name__, message=str(exc), traceback=traceback.format_exc())
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(3)
    emit("done", report=report.to_dict())
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # no atexit handlers or non-daemon threads of the adapter can hold the process

