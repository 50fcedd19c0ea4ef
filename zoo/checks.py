"""The contract checks: what the host verifies about everything a plugin returns, as plain
functions that raise :class:`ContractViolation`.

One module for the host's worker (a violation fails the cell, naming the phase) and for the
conformance suite (:mod:`zoo.testing`, which reports it with the violation's ``hint`` on what
to do). Messages are the host's (``harness`` worker) own, e.g. ``"evaluate: evaluate returned
logits of shape (3, 10), expected (128, 10)"``, so switching the worker to these is drop-in.
``strict=True`` asks for what the conformance suite demands on top of what the host needs:
NumPy arrays of float32 rather than anything ``np.asarray`` turns into numbers.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from zoo.models.inputs import describe, inputs_mismatch
from zoo.models.spec import ModelSpec


class ContractViolation(RuntimeError):
    """A plugin returned something the contract forbids (wrong shape, NaN, missing weights).
    ``hint`` says what the plugin should do instead (not part of the message)."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.hint = hint


def check_logits(logits: Any, rows: int, num_classes: int, phase: str, *, method: str = "evaluate",
                 strict: bool = False) -> np.ndarray:
    """``logits`` as a float32 array of shape ``(rows, num_classes)`` with finite values, or
    :class:`ContractViolation`. ``rows`` counts every batch's rows, padding included. The
    message starts with ``phase`` (none when it is ``""``), then names ``method``."""
    at = f"{phase}: " if phase else ""
    if strict and not isinstance(logits, np.ndarray):
        raise ContractViolation(
            f"{at}{method} returned {type(logits).__module__}.{type(logits).__name__}, not a NumPy array",
            "convert each batch's logits to NumPy inside its meter.step (that also synchronises)")
    arr = np.asarray(logits)
    if arr.shape != (rows, num_classes):
        raise ContractViolation(f"{at}{method} returned logits of shape {arr.shape}, expected {(rows, num_classes)}",
                                "return every batch's rows, padding included, in batch order")
    if strict and arr.dtype != np.float32:
        raise ContractViolation(f"{at}{method} returned {arr.dtype} logits", "return float32")
    if not np.all(np.isfinite(arr)):
        raise ContractViolation(f"{at}{method} returned non-finite logits (NaN or inf)")
    return arr.astype(np.float32, copy=False)


def check_losses(losses: Any, steps: int | None = None) -> np.ndarray:
    """``FineTuneResult.losses`` as float64 numbers, all finite; with ``steps``, exactly one
    per step (the host accepts an adapter that reports none)."""
    try:
        arr = np.asarray([float(v) for v in losses], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ContractViolation(f"fine_tune: FineTuneResult.losses must be one number per step ({exc})") from None
    if steps is not None and len(arr) != steps:
        raise ContractViolation(f"fine_tune returned {len(arr)} losses for {steps} steps",
                                "return the loss of every step")
    if arr.size and not np.all(np.isfinite(arr)):
        raise ContractViolation("fine_tune returned non-finite losses", "check the learning rate and the loss")
    return arr


def check_step_count(timed: int, expected: int, method: str = "fine_tune") -> None:
    """One ``meter.step`` per step (one optimiser step or one batch forward)."""
    if timed != expected:
        raise ContractViolation(f"{method} timed {timed} steps with meter.step, expected {expected}",
                                "wrap each step (one batch) in `with meter.step(len(y)):`")


def check_epoch_ends(ended: int, epochs: int, contract_version: int, method: str = "fine_tune") -> None:
    """``meter.end_epoch`` once per epoch; required from contract version 2 on (a version-1
    adapter that calls it must call it for every epoch)."""
    if ended != epochs and (contract_version >= 2 or ended):
        raise ContractViolation(f"{method} called meter.end_epoch {ended} times for {epochs} epochs",
                                "call it once after each epoch's last step, outside meter.step, with a model "
                                "handle that evaluate accepts")


def check_exported_weights(spec: ModelSpec, weights: Any, input_shape: tuple[int, ...], num_classes: int, *,
                           strict: bool = False) -> dict[str, np.ndarray]:
    """``export_weights``' result fits the spec: every parameter, no other, each of its shape
    (and with ``strict``, a mapping of float32 NumPy arrays)."""
    if not isinstance(weights, Mapping):
        raise ContractViolation(f"export_weights returned {type(weights).__name__}, expected a dict of NumPy arrays")
    try:
        spec.check_weights(weights, input_shape, num_classes)
    except ValueError as exc:
        raise ContractViolation(f"export_weights: {exc}") from exc
    if strict:
        for name, value in weights.items():
            if not isinstance(value, np.ndarray) or value.dtype != np.float32:
                raise ContractViolation(f"export_weights returned {name} as {type(value).__name__} "
                                        f"{getattr(value, 'dtype', '')}",
                                        "return float32 NumPy arrays in the canonical layout")
    return dict(weights)


def check_task_inputs(spec: ModelSpec, task: Any) -> None:
    """The task provides what the model consumes (``spec.inputs(task.input_shape)`` against
    ``task.inputs``); a planner shows the reason as a skipped cell rather than running it."""
    try:
        reason = inputs_mismatch(spec.inputs(tuple(task.input_shape)), task.inputs)
    except ValueError as exc:  # the model cannot even be sized by the task's input_shape
        reason = str(exc)
    if reason:
        raise ContractViolation(f"model {spec.name!r} cannot run on task {task.name!r}: {reason}",
                                "pick a task whose inputs the model declares")


def check_task_data(task: Any, data: Any) -> Any:
    """``task.load()`` returned a :class:`zoo.tasks.TaskData` with exactly the declared inputs."""
    from zoo.tasks.task import TaskData

    if not isinstance(data, TaskData):
        raise ContractViolation(
            f"data: task {task.name!r} load() returned {type(data).__name__}, not zoo.tasks.TaskData")
    declared: Sequence[Any] = task.inputs
    if tuple(data.inputs) != tuple(declared):
        raise ContractViolation(f"data: task {task.name!r} declares {describe(declared)} but load() returned "
                                f"{describe(data.inputs)}", "make Task.inputs and TaskData(inputs=...) agree")
    return data
