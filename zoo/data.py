"""The data an adapter is handed: the host's arrays, one per declared input, and the exact batch
order (see :mod:`zoo.contract` for the contract they belong to; import them from there)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from zoo.models.inputs import InputSpec, as_inputs


class _Inputs:
    """What :class:`TrainData` and :class:`EvalData` share: named input arrays, the single-input
    accessor ``x``, and batches in the batch form (:mod:`zoo.models.inputs`)."""

    inputs: dict[str, np.ndarray]
    specs: tuple[InputSpec, ...]
    _only: np.ndarray | None  # the single input's array (None with several), set by _init_inputs

    @property
    def x(self) -> np.ndarray:
        """The input array of single-input data (NHWC float32 images for an image model): what
        contract-2 adapters read. Data with several inputs have no ``x``: use :attr:`inputs`."""
        if len(self.inputs) != 1:
            raise AttributeError(f"{type(self).__name__}.x is the array of single-input data; these data have the "
                                 f"inputs {', '.join(self.inputs)}: use .inputs[name] or .input_batches()")
        return next(iter(self.inputs.values()))

    @property
    def single_input(self) -> bool:
        """Whether batches are arrays (one input) rather than dicts of arrays (several)."""
        return len(self.inputs) == 1

    def _batch(self, idx: np.ndarray) -> Any:
        only = self._only  # the single input's array, or None (set once, at construction)
        if only is not None:
            return only[idx]
        return {name: array[idx] for name, array in self.inputs.items()}


def _init_inputs(data: Any, x: Any, inputs: Any, specs: Sequence[InputSpec], where: str) -> None:
    if (x is None) == (inputs is None):
        raise TypeError(f"{where}: give the inputs either as x (an array, or a mapping of name -> array) or as "
                        "inputs= (a mapping), not both")
    specs = tuple(specs or ())
    arrays = as_inputs(x if inputs is None else inputs, specs, where)
    object.__setattr__(data, "inputs", arrays)
    object.__setattr__(data, "specs", specs)
    object.__setattr__(data, "_only", next(iter(arrays.values())) if len(arrays) == 1 else None)


@dataclass(frozen=True, init=False)
class TrainData(_Inputs):
    """Training inputs, labels and the exact batch order to use, decided by the host.

    ``order`` holds one tuple of index arrays per epoch; every index array has the same
    length (the batch size), so every step has the same shape.

    Made as ``TrainData(x, y, order)``: ``x`` is one array (a single-input model; an image
    model's NHWC float32 images, as in contract version 2) or a mapping of input name -> array
    (``TrainData({"tokens": ids, "mask": mask}, y, order)``); ``inputs=`` is the same as a
    keyword. ``specs`` may declare the inputs (:class:`~zoo.models.inputs.InputSpec`): the
    arrays are then checked against them.

    Batches follow the batch form: :meth:`batches` and :meth:`epochs` yield ``(x, y)`` with
    ``x`` the *array* when there is one input (what contract-2 adapters expect) and a *dict*
    name -> array when there are several; :meth:`input_batches` always yields dicts. Count a
    batch's examples with ``len(y)`` (``len`` of a dict counts its inputs).
    """

    inputs: dict[str, np.ndarray]
    y: np.ndarray  # int64 class ids
    order: tuple[tuple[np.ndarray, ...], ...]
    specs: tuple[InputSpec, ...] = ()

    def __init__(self, x: Any = None, y: np.ndarray | None = None,
                 order: tuple[tuple[np.ndarray, ...], ...] | None = None, *,
                 inputs: Mapping[str, np.ndarray] | None = None, specs: Sequence[InputSpec] = ()) -> None:
        _init_inputs(self, x, inputs, specs, "TrainData")
        if y is None or order is None:
            raise TypeError("TrainData needs the labels y and the batch order")
        if len(next(iter(self.inputs.values()))) != len(y):
            raise ValueError(f"TrainData: {len(next(iter(self.inputs.values())))} examples but {len(y)} labels")
        object.__setattr__(self, "y", y)
        object.__setattr__(self, "order", order)

    @property
    def batch_size(self) -> int:
        return len(self.order[0][0])

    @property
    def num_steps(self) -> int:
        return sum(len(epoch) for epoch in self.order)

    def batches(self) -> Iterator[tuple[Any, np.ndarray]]:
        """Yield ``(x, y)`` NumPy batches in the host's order, epoch after epoch (``x`` in the
        batch form: the array of a single input, else a dict)."""
        for epoch in self.epochs():
            yield from epoch

    def epochs(self) -> Iterator[Iterator[tuple[Any, np.ndarray]]]:
        """Yield one iterator of ``(x, y)`` batches per epoch, so the adapter can call
        ``meter.end_epoch`` between epochs."""
        for epoch in self.order:
            yield ((self._batch(idx), self.y[idx]) for idx in epoch)

    def input_batches(self) -> Iterator[Iterator[tuple[dict[str, np.ndarray], np.ndarray]]]:
        """Like :meth:`epochs`, but every batch's inputs are a dict name -> array, whatever
        their number: for adapters that handle every model the same way."""
        for epoch in self.order:
            yield (({name: a[idx] for name, a in self.inputs.items()}, self.y[idx]) for idx in epoch)


@dataclass(frozen=True, init=False)
class EvalData(_Inputs):
    """Inputs to run forward, in fixed-shape batches (the last one padded by the host).

    Made as ``EvalData(x, order)`` with ``x`` one array or a mapping of input name -> array,
    like :class:`TrainData`; :meth:`batches` yields the batch form (an array for one input, a
    dict for several), :meth:`input_batches` always dicts. Each batch has ``batch_size`` rows.
    """

    inputs: dict[str, np.ndarray]
    order: tuple[np.ndarray, ...]
    specs: tuple[InputSpec, ...] = ()

    def __init__(self, x: Any = None, order: tuple[np.ndarray, ...] | None = None, *,
                 inputs: Mapping[str, np.ndarray] | None = None, specs: Sequence[InputSpec] = ()) -> None:
        _init_inputs(self, x, inputs, specs, "EvalData")
        if order is None:
            raise TypeError("EvalData needs the batch order")
        object.__setattr__(self, "order", order)

    @property
    def batch_size(self) -> int:
        return len(self.order[0])

    @property
    def num_rows(self) -> int:
        """Rows of logits ``evaluate`` returns: every batch, padding included."""
        return len(self.order) * self.batch_size

    def batches(self) -> Iterator[Any]:
        """Yield the batches in order, in the batch form."""
        for idx in self.order:
            yield self._batch(idx)

    def input_batches(self) -> Iterator[dict[str, np.ndarray]]:
        """Yield the batches in order, each a dict input name -> array."""
        for idx in self.order:
            yield {name: a[idx] for name, a in self.inputs.items()}
