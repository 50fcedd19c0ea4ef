"""What a model consumes: its declared inputs, one :class:`InputSpec` per named input.

A model used to be "a function of one float32 NHWC image batch". Now a spec *declares* its
inputs (:meth:`zoo.models.spec.ModelSpec.inputs`) and a task declares what its data provides
(:attr:`zoo.tasks.Task.inputs`), so a text model (token ids and an attention mask) needs no
change to the host, the data classes or the conformance suite. The kinds form a closed set,
:data:`INPUT_KINDS`; each fixes the dtype and the rank of one example:

=========  =======  ======================  ==============================================
kind       dtype    shape (no batch dim)    values
=========  =======  ======================  ==============================================
image      float32  (height, width, chan.)  NHWC pixels (the canonical image layout)
features   float32  (size,)                 a feature vector
tokens     int32    (length,)               token ids in ``[0, vocab_size)``
segments   int32    (length,)               segment (token type) ids in ``[0, vocab_size)``
mask       int32    (length,)               attention mask: 1 for a real token, 0 for padding
=========  =======  ======================  ==============================================

**The batch form** (one rule everywhere: task data, ``TrainData``/``EvalData`` batches and
``ModelSpec.reference_forward``): a model with exactly *one* declared input is given that
input's array, as contract version 2 did; a model with several is given a ``dict`` mapping each
input's name to its array. :func:`batch_form` makes it from a mapping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

#: The name of the one input of an image model (and of contract-2 data, which had no names).
IMAGE = "image"


@dataclass(frozen=True)
class InputKind:
    """What one kind of input is: its dtype, the rank of one example, and whether its values are
    ids below a ``vocab_size``."""

    dtype: str
    rank: int
    ids: bool
    description: str


#: The closed set of input kinds (module docstring); adapters and the host may rely on it.
INPUT_KINDS: Mapping[str, InputKind] = {
    "image": InputKind("float32", 3, False, "NHWC float32 image, shape (height, width, channels)"),
    "features": InputKind("float32", 1, False, "float32 feature vector, shape (size,)"),
    "tokens": InputKind("int32", 1, True, "int32 token ids in [0, vocab_size), shape (length,)"),
    "segments": InputKind("int32", 1, True, "int32 segment ids in [0, vocab_size), shape (length,)"),
    "mask": InputKind("int32", 1, False, "int32 attention mask (1 = token, 0 = padding), shape (length,)"),
}


@dataclass(frozen=True)
class InputSpec:
    """One named input of a model or a task, for a single example (no batch dimension).

    ``dtype`` may be left out: it is the kind's (``float32`` for images and features, ``int32``
    for ids and masks), and any other value is refused. ``vocab_size`` is required for the id
    kinds (``tokens``, ``segments``: every id is below it) and must be 0 for the others.
    """

    name: str
    shape: tuple[int, ...]
    kind: str = "image"
    dtype: str = ""
    vocab_size: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"input name {self.name!r} must be a Python identifier, e.g. 'tokens'")
        if self.kind not in INPUT_KINDS:
            raise ValueError(f"input {self.name!r}: unknown kind {self.kind!r}; use one of {', '.join(INPUT_KINDS)}")
        kind = INPUT_KINDS[self.kind]
        shape = tuple(int(d) for d in self.shape)
        if len(shape) != kind.rank or any(d < 1 for d in shape):
            raise ValueError(f"input {self.name!r} of kind {self.kind!r}: shape {tuple(self.shape)} must be "
                             f"{kind.rank} positive sizes ({kind.description}), without the batch dimension")
        object.__setattr__(self, "shape", shape)
        if self.dtype and self.dtype != kind.dtype:
            raise ValueError(f"input {self.name!r} of kind {self.kind!r} is {kind.dtype}, not {self.dtype}; "
                             "leave dtype out to take the kind's")
        object.__setattr__(self, "dtype", kind.dtype)
        if kind.ids and self.vocab_size < 1:
            raise ValueError(f"input {self.name!r} of kind {self.kind!r} needs vocab_size >= 1 (ids are below it)")
        if not kind.ids and self.vocab_size:
            raise ValueError(f"input {self.name!r} of kind {self.kind!r} takes no vocab_size")

    @property
    def batch_ndim(self) -> int:
        """The number of dimensions of a batch of this input (the example's rank plus one)."""
        return len(self.shape) + 1

    def describe(self) -> str:
        """``"tokens: int32 (128,), ids < 30522"``, for messages."""
        ids = f", ids < {self.vocab_size}" if self.vocab_size else ""
        return f"{self.name}: {self.kind} {self.dtype} {self.shape}{ids}"

    def check_array(self, array: Any, where: str, values: bool = False) -> None:
        """Raise ``ValueError`` unless ``array`` is a batch of this input (dtype, ndim, example
        shape); with ``values``, also that ids are in range and a mask holds only 0 and 1
        (a full pass over the data: done once, when a task's data are made)."""
        if not isinstance(array, np.ndarray):
            raise ValueError(f"{where}: input {self.name!r} must be a NumPy array, got {type(array).__name__}")
        if array.dtype != np.dtype(self.dtype) or array.ndim != self.batch_ndim:
            layout = "NHWC" if self.kind == "image" else f"(batch, *{self.shape})"
            raise ValueError(f"{where} must be {self.dtype} {layout} for input {self.name!r} ({self.kind}), "
                             f"got {array.dtype} {array.shape}")
        if tuple(array.shape[1:]) != self.shape:
            raise ValueError(f"{where}: input {self.name!r} has examples of shape {tuple(array.shape[1:])}, "
                             f"declared {self.shape}")
        if values and array.size:
            if self.vocab_size and (array.min() < 0 or array.max() >= self.vocab_size):
                raise ValueError(f"{where}: input {self.name!r} has ids in [{array.min()}, {array.max()}], "
                                 f"outside [0, {self.vocab_size})")
            if self.kind == "mask" and not np.isin(array, (0, 1)).all():
                raise ValueError(f"{where}: mask {self.name!r} must hold only 0 and 1")


def image_input(shape: Sequence[int]) -> InputSpec:
    """The one input of an image model: NHWC float32 images of ``shape`` = (H, W, C)."""
    return InputSpec(IMAGE, tuple(shape), "image")


def text_inputs(length: int, vocab_size: int, mask: bool = True) -> tuple[InputSpec, ...]:
    """``tokens`` of ``length`` ids below ``vocab_size``, and (by default) their ``mask``."""
    tokens = InputSpec("tokens", (length,), "tokens", vocab_size=vocab_size)
    return (tokens, InputSpec("mask", (length,), "mask")) if mask else (tokens,)


def is_single_image(specs: Sequence[InputSpec]) -> bool:
    """Whether ``specs`` is one image input: all that contract versions 1 and 2 know."""
    return len(specs) == 1 and specs[0].kind == "image"


def describe(specs: Sequence[InputSpec]) -> str:
    return "; ".join(s.describe() for s in specs) or "no inputs"


def inputs_mismatch(model: Sequence[InputSpec], task: Sequence[InputSpec]) -> str:
    """Why a task's inputs cannot feed a model's, or ``""`` when they can: the same names, kinds
    and shapes, and task ids within the model's vocabulary."""
    by_name = {s.name: s for s in task}
    problems = []
    for want in model:
        have = by_name.pop(want.name, None)
        if have is None:
            problems.append(f"the model needs {want.describe()}, which the task does not provide")
        elif (have.kind, have.shape) != (want.kind, want.shape):
            problems.append(f"the model needs {want.describe()}, the task gives {have.describe()}")
        elif have.vocab_size > want.vocab_size:
            problems.append(f"the task's {have.name!r} ids go up to {have.vocab_size - 1}, the model's "
                            f"vocabulary has {want.vocab_size}")
    problems += [f"the task provides {s.describe()}, which the model does not use" for s in by_name.values()]
    return "; ".join(problems)


def as_inputs(x: Any, specs: Sequence[InputSpec], where: str) -> dict[str, np.ndarray]:
    """Normalise one array (a single input) or a mapping of name -> array to a dict, checked
    against ``specs`` when they are declared (names, dtypes, shapes) and for equal lengths."""
    if isinstance(x, Mapping):
        arrays = dict(x)
    else:
        if x is None:
            raise ValueError(f"{where}: give the input array, or a mapping of input name -> array")
        if len(specs) > 1:
            raise ValueError(f"{where}: one array given for the inputs {', '.join(s.name for s in specs)}; "
                             "give a mapping of input name -> array")
        arrays = {specs[0].name if specs else IMAGE: x}
    if not arrays:
        raise ValueError(f"{where}: no inputs given")
    if specs:
        names = [s.name for s in specs]
        if sorted(arrays) != sorted(names):
            raise ValueError(f"{where}: inputs {sorted(arrays)} given, declared {names}")
        for spec in specs:
            spec.check_array(arrays[spec.name], where)
        arrays = {name: arrays[name] for name in names}  # the declared order
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{where}: inputs differ in length: {lengths}")
    return arrays


def batch_form(inputs: Mapping[str, Any]) -> Any:
    """The module docstring's rule: the only array of a single-input mapping, else a ``dict``."""
    if len(inputs) == 1:
        return next(iter(inputs.values()))
    return dict(inputs)


def select(x: Any, index: Any) -> Any:
    """``x[index]`` for a batch form: an array, or each array of a mapping."""
    if isinstance(x, Mapping):
        return {name: a[index] for name, a in x.items()}
    return x[index]


def rows(x: Any) -> int:
    """The number of examples in a batch form."""
    if isinstance(x, Mapping):
        return len(next(iter(x.values())))
    return len(x)
