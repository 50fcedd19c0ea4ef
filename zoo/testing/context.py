"""What every check shares: the adapter under test, the run's settings, a recording meter, and
the wrapper that turns an adapter's exception into a clear result."""

from __future__ import annotations

import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from zoo.checks import ContractViolation, check_step_count
from zoo.contract import Framework, Runtime, input_support, load_kwargs
from zoo.models.spec import ModelSpec
from zoo.testing.report import FAILED, NOT_IMPLEMENTED, PASSED, CheckResult

#: The absolute tolerance on logits against the float64 NumPy reference (the README's promise).
LOGIT_TOLERANCE = 1e-4


class Failed(ContractViolation):
    """A check found the adapter breaking the contract; the message says how and what to do.
    The checks of :mod:`zoo.checks` raise its base, :class:`~zoo.checks.ContractViolation`,
    whose ``hint`` the result's message appends."""


def violation_message(exc: ContractViolation) -> str:
    """A violation's message, with its hint on what to do when it has one."""
    return f"{exc}: {exc.hint}" if exc.hint else str(exc)


class NotImplementedYet(Exception):
    """An adapter method raised ``NotImplementedError``."""

    def __init__(self, where: str, message: str):
        super().__init__(where)
        self.where = where
        self.message = message


class NullMeter:
    """The simplest :class:`zoo.contract.Meter`, for calling an adapter directly in a test: asks
    for synchronisation at every step and times nothing."""

    @contextmanager
    def step(self, samples: int) -> Iterator[bool]:
        yield True

    def end_epoch(self, model: Any) -> None:
        pass


@dataclass
class RecordingMeter:
    """A :class:`zoo.contract.Meter` like the host's: records each step's wall time and sample
    count, counts ``end_epoch`` calls, and notices steps nested inside steps (which the host
    would count twice)."""

    durations_s: list[float] = field(default_factory=list)
    samples: list[int] = field(default_factory=list)
    nested: int = 0
    #: Called by :meth:`end_epoch` with the adapter's model handle (the host may evaluate there).
    on_epoch_end: Callable[[Any], None] | None = None
    epochs_ended: int = 0
    epoch_in_step: int = 0
    _open: int = 0

    @contextmanager
    def step(self, samples: int) -> Iterator[None]:
        if self._open:
            self.nested += 1
        self._open += 1
        start = time.perf_counter()
        try:
            yield
        finally:
            self._open -= 1
        self.durations_s.append(time.perf_counter() - start)
        self.samples.append(int(samples))

    def end_epoch(self, model: Any) -> None:
        if self._open:
            self.epoch_in_step += 1
        self.epochs_ended += 1
        if self.on_epoch_end is not None:
            self.on_epoch_end(model)

    @property
    def total_s(self) -> float:
        return sum(self.durations_s)

    def expect(self, method: str, steps: int, samples: Sequence[int]) -> None:
        """Raise :class:`Failed` unless exactly ``steps`` steps of ``samples`` were timed."""
        if self.nested:
            raise Failed(f"{method} opened meter.step inside another meter.step ({self.nested}x); "
                         "time each step once, with nothing nested")
        check_step_count(len(self.durations_s), steps, method)
        if list(self.samples) != list(samples):
            raise Failed(f"{method} reported samples {self.samples[:6]}... to meter.step, expected "
                         f"{list(samples)[:6]}...: pass the batch's number of examples, `meter.step(len(y))` "
                         "(or data.batch_size)")


@dataclass
class Context:
    """The adapter under test and the settings of this conformance run."""

    adapter: Framework
    models: Sequence[ModelSpec]
    device: str = "cpu"
    precision: str = "fp32"
    threads: int = 1
    seed: int = 0
    prepared: bool = False
    #: Set when a problem (``prepare`` failing) makes every later check meaningless.
    blocked: str = ""
    current_method: str = ""
    #: Models whose load_pretrained raised: later checks skip them instead of repeating the error.
    load_failed: set[str] = field(default_factory=set)
    #: Reference results shared between checks (e.g. sampled gradients), by key.
    cache: dict[Any, Any] = field(default_factory=dict)
    #: Told the adapter method being entered (and "" when it returns), e.g. to report which one
    #: was running when the process died (:mod:`zoo.testing.isolated`).
    on_call: Callable[[str], None] | None = None

    @property
    def runtime(self) -> Runtime:
        return Runtime(self.device, self.precision, self.threads, self.seed)

    @property
    def adapter_name(self) -> str:
        return type(self.adapter).__name__

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call an adapter method, remembering which one for error messages."""
        self.current_method = method  # left set if the method raises, for run_subject's message
        if self.on_call:
            self.on_call(f"{self.adapter_name}.{method}")
        try:
            result = getattr(self.adapter, method)(*args, **kwargs)
        except NotImplementedError as exc:
            self._returned()
            raise NotImplementedYet(f"{self.adapter_name}.{method}", str(exc)) from exc
        except Exception:
            self._returned()  # current_method stays set for run_subject's message
            raise
        self._returned()  # (a BaseException leaves it all set: it names where the suite ended)
        self.current_method = ""
        return result

    def _returned(self) -> None:
        if self.on_call:
            self.on_call("")

    def supported(self) -> list[tuple[ModelSpec, str]]:
        """``(spec, reason)`` for every zoo model; reason is "" when the adapter supports it."""
        out = []
        for spec in self.models:
            support = input_support(self.adapter, spec.inputs(spec.example_shapes().typical))
            if support.ok:
                support = self.adapter.supports(spec, self.device, self.precision)
            out.append((spec, "" if support.ok else (support.reason or "unsupported")))
        return out

    def load(self, spec: ModelSpec, weights: dict[str, np.ndarray], input_shape: tuple[int, ...],
             num_classes: int, freeze: str = "none") -> Any:
        """``load_pretrained`` exactly as the worker calls it: keyword arguments from
        :func:`zoo.contract.load_kwargs` (``inputs`` only for contract version 3 or later)."""
        try:
            return self.call("load_pretrained", **load_kwargs(
                self.adapter, spec=spec, weights=weights, input_shape=tuple(input_shape), num_classes=num_classes,
                device=self.device, precision=self.precision, freeze=freeze))
        except Exception:
            self.load_failed.add(spec.name)
            raise


def run_subject(ctx: Context, check: str, subject: str, body: Callable[[], str]) -> CheckResult:
    """Run one part of a check. ``body`` returns a message when it passes and raises
    :class:`Failed` when the adapter breaks the contract; ``NotImplementedError`` from the adapter
    becomes "not implemented yet", any other exception a failure naming the adapter method."""
    try:
        return CheckResult(check, subject, PASSED, body())
    except ContractViolation as exc:  # Failed, or a zoo.checks function
        return CheckResult(check, subject, FAILED, violation_message(exc))
    except NotImplementedYet as exc:
        why = f": {exc.message}" if exc.message else ""
        return CheckResult(check, subject, NOT_IMPLEMENTED,
                           f"not implemented yet: {exc.where} raised NotImplementedError{why}")
    except Exception as exc:  # the adapter (or its framework) raised: report it, keep going
        where = f"{ctx.adapter_name}.{ctx.current_method}" if ctx.current_method else "the check"
        ctx.current_method = ""
        return CheckResult(check, subject, FAILED, f"{where} raised {type(exc).__name__}: {exc}",
                           traceback.format_exc())
