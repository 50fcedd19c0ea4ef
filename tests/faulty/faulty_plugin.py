"""Frameworks that misbehave on purpose, each in one way, for the reliability tests.

Their healthy base runs the NumPy reference forward pass and "trains" by doing nothing but
timing the steps; each subclass breaks exactly one thing: it hangs, aborts, segfaults, is
killed like the OOM killer does, exhausts a memory limit, raises, returns wrong logits, or
crashes in its second worker process only (``flaky``, for ``--repeats``).
Load with ``zoo -p faulty_plugin`` and this directory on PYTHONPATH.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import time

import numpy as np

import zoo
from zoo.contract import FineTuneResult, Framework, FrameworkInfo, Support


class Healthy(Framework):
    name = "healthy"
    contract_version = 2

    def supports(self, spec, device, precision):
        return Support.yes() if device == "cpu" else Support.no("cpu only")

    def prepare(self, runtime):
        pass

    def info(self):
        return FrameworkInfo(self.name, {"numpy": np.__version__}, ["cpu"])

    def load_pretrained(self, spec, weights, input_shape, num_classes, device, precision, freeze):
        return {"spec": spec, "weights": dict(weights)}

    def fine_tune(self, model, data, config, meter):
        for epoch in data.epochs():
            for x, _ in epoch:
                with meter.step(len(x)):
                    pass
            meter.end_epoch(model)
        return FineTuneResult(model, [])

    def evaluate(self, model, data, meter):
        out = []
        for x in data.batches():
            with meter.step(len(x)):
                out.append(model["spec"].reference_forward(model["weights"], x).astype(np.float32))
        return np.concatenate(out)

    def export_weights(self, model):
        return model["weights"]


class LegacyV1(Healthy):
    """Written against contract version 1: never calls ``meter.end_epoch``; still valid."""

    name = "legacy"
    contract_version = 1

    def fine_tune(self, model, data, config, meter):
        for x, _ in data.batches():
            with meter.step(len(x)):
                pass
        return FineTuneResult(model, [])


class Hang(Healthy):
    name = "hang"

    def fine_tune(self, model, data, config, meter):
        time.sleep(3600)


class Abort(Healthy):
    name = "abort"

    def fine_tune(self, model, data, config, meter):
        os.abort()


class Segfault(Healthy):
    name = "segv"

    def fine_tune(self, model, data, config, meter):
        ctypes.string_at(0)  # read address 0: SIGSEGV in native code


class OomKilled(Healthy):
    name = "oomkill"

    def fine_tune(self, model, data, config, meter):
        os.kill(os.getpid(), signal.SIGKILL)  # what the kernel's OOM killer does


class MemoryHog(Healthy):
    name = "memhog"

    def fine_tune(self, model, data, config, meter):
        with open("/proc/self/status") as fh:
            vm = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize"))
        resource.setrlimit(resource.RLIMIT_AS, (vm + (512 << 20), resource.RLIM_INFINITY))
        hoard = []
        while True:  # ends in MemoryError at the limit
            hoard.append(np.ones(16 << 20, dtype=np.uint8))


class Raises(Healthy):
    name = "raises"

    def fine_tune(self, model, data, config, meter):
        raise RuntimeError("the fused kernel is not available on this CPU")


class NaNLogits(Healthy):
    name = "nan"

    def evaluate(self, model, data, meter):
        return np.full((len(data.order) * data.batch_size, 10), np.nan, dtype=np.float32)


class WrongShape(Healthy):
    name = "badshape"

    def evaluate(self, model, data, meter):
        return np.zeros((3, 7), dtype=np.float32)


class Flaky(Healthy):
    """Fine in its first worker process, aborts in the second (``zoo bench --repeats``): the
    process count is kept in the file ``$FLAKY_COUNTER``."""

    name = "flaky"

    def prepare(self, runtime):
        counter = os.environ["FLAKY_COUNTER"]
        runs = int(open(counter).read() or 0) + 1 if os.path.exists(counter) else 1
        with open(counter, "w") as fh:
            fh.write(str(runs))
        if runs == 2:
            os.abort()
        super().prepare(runtime)


def _note_pid(*pids: int) -> None:
    """Append pids to the file ``$ZOO_TEST_PIDS`` (the process-lifetime tests watch them)."""
    path = os.environ.get("ZOO_TEST_PIDS")
    if path:
        with open(path, "a") as fh:
            fh.write("".join(f"{pid}\n" for pid in pids))


class HangNoted(Healthy):
    """Hangs in fine_tune after noting its pid."""

    name = "hangpid"

    def fine_tune(self, model, data, config, meter):
        _note_pid(os.getpid())
        time.sleep(3600)


class Stubborn(Healthy):
    """Ignores SIGTERM (and SIGINT), notes its pid and hangs: only SIGKILL ends it."""

    name = "stubborn"

    def fine_tune(self, model, data, config, meter):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _note_pid(os.getpid())
        time.sleep(3600)


class Spawner(Healthy):
    """Starts two long-lived children, one in its own process group and one in a new session
    (as a daemonising helper would), then finishes normally."""

    name = "spawner"

    def fine_tune(self, model, data, config, meter):
        import subprocess

        same = subprocess.Popen(["sleep", "300"])
        escaped = subprocess.Popen(["sleep", "300"], start_new_session=True)
        _note_pid(same.pid, escaped.pid)
        return super().fine_tune(model, data, config, meter)


class HangsThird(Healthy):
    """Hangs in its third worker process (counted in ``$FLAKY_COUNTER``), after noting its pid."""

    name = "hangs3"

    def prepare(self, runtime):
        counter = os.environ["FLAKY_COUNTER"]
        runs = int(open(counter).read() or 0) + 1 if os.path.exists(counter) else 1
        with open(counter, "w") as fh:
            fh.write(str(runs))
        self.hang = runs == 3

    def fine_tune(self, model, data, config, meter):
        if self.hang:
            _note_pid(os.getpid())
            time.sleep(3600)
        return super().fine_tune(model, data, config, meter)


class Chatty(Healthy):
    """Prints about 20 MB while fine-tuning (a debug print in a hot loop), then a last line."""

    name = "chatty"

    def fine_tune(self, model, data, config, meter):
        import sys

        line = "x" * 1023 + "\n"
        for _ in range(20_000):
            sys.stdout.write(line)
        print("the last line of the chatty cell", flush=True)
        return super().fine_tune(model, data, config, meter)


def _touch(mib: int) -> np.ndarray:
    """``mib`` MiB really resident: every page written."""
    block = np.empty(mib << 20, dtype=np.uint8)
    block[::4096] = 1
    return block


class MemoryKnown(Healthy):
    """Holds exactly 400 MiB at the peak of each fine_tune call and 100 MiB in each evaluate
    call (freed before returning), for the per-phase memory test."""

    name = "memknown"

    def fine_tune(self, model, data, config, meter):
        block = _touch(400)
        del block
        return super().fine_tune(model, data, config, meter)

    def evaluate(self, model, data, meter):
        block = _touch(100)
        out = super().evaluate(model, data, meter)
        del block
        return out


class ExitsZero(Healthy):
    """Prints a line, then ends its process with ``os._exit(0)`` in evaluate: "success", no report."""

    name = "exit0"

    def evaluate(self, model, data, meter):
        print("exit0: leaving through os._exit(0)", flush=True)
        os._exit(0)


class SysExits(Healthy):
    """Prints a line, then calls ``sys.exit(0)`` (raises SystemExit) in load_pretrained."""

    name = "sysexit"

    def load_pretrained(self, spec, weights, input_shape, num_classes, device, precision, freeze):
        import sys

        print("sysexit: calling sys.exit(0)", flush=True)
        sys.exit(0)


class Interrupts(Healthy):
    """Prints a line, then raises KeyboardInterrupt in export_weights (as a Ctrl-C handler might)."""

    name = "interrupts"

    def export_weights(self, model):
        print("interrupts: raising KeyboardInterrupt", flush=True)
        raise KeyboardInterrupt


class KillsParent(Healthy):
    """Kills the process that started its worker (under Ray: the Ray task's worker), then hangs."""

    name = "killsparent"

    def fine_tune(self, model, data, config, meter):
        os.kill(os.getppid(), signal.SIGKILL)
        time.sleep(60)


@zoo.hookimpl
def zoo_frameworks():
    return [cls() for cls in (Healthy, LegacyV1, Hang, Abort, Segfault, OomKilled, MemoryHog, Raises, NaNLogits,
                              WrongShape, Flaky, HangNoted, Stubborn, Spawner, HangsThird, Chatty, MemoryKnown,
                              ExitsZero, SysExits, Interrupts, KillsParent)]
