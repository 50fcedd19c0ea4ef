"""Classification tasks: data, split and the default fine-tuning recipe.

A task declares its inputs (:attr:`Task.inputs`, :class:`zoo.models.inputs.InputSpec`); an
image task declares nothing and gets one NHWC float32 ``image`` input of ``input_shape``. Its
data (:class:`TaskData`) hold one array per input, checked against those declarations.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from zoo.models.inputs import InputSpec, as_inputs, describe, image_input


@dataclass(frozen=True, init=False)
class TaskData:
    """Arrays of one task: per declared input a training and a test array, and int64 labels in
    ``[0, num_classes)``.

    Single-image tasks are made as always, ``TaskData(x_train, y_train, x_test, y_test)`` with
    float32 NHWC arrays, and read through :attr:`x_train` / :attr:`x_test`. Other tasks pass
    mappings of input name -> array and their declarations::

        TaskData({"tokens": ids, "mask": mask}, y, {"tokens": ids_t, "mask": mask_t}, y_t,
                 inputs=text_inputs(128, vocab_size=30522))

    and are read through :attr:`train_inputs` / :attr:`test_inputs` (mappings for every task).
    Every array is checked against its input's kind (dtype, rank, example shape; ids below the
    vocabulary size, masks of 0 and 1) when the data are made.
    """

    train_inputs: Mapping[str, np.ndarray]
    y_train: np.ndarray
    test_inputs: Mapping[str, np.ndarray]
    y_test: np.ndarray
    inputs: tuple[InputSpec, ...] = ()

    def __init__(self, x_train: Any = None, y_train: np.ndarray | None = None, x_test: Any = None,
                 y_test: np.ndarray | None = None, *, inputs: Sequence[InputSpec] = (),
                 train_inputs: Mapping[str, np.ndarray] | None = None,
                 test_inputs: Mapping[str, np.ndarray] | None = None) -> None:
        # train_inputs/test_inputs: the field names, so dataclasses.replace works too.
        x_train = train_inputs if x_train is None else x_train
        x_test = test_inputs if x_test is None else x_test
        if not inputs:
            if isinstance(x_train, Mapping) or x_train is None:
                raise ValueError("TaskData with a mapping of inputs needs inputs=(InputSpec, ...) declaring them")
            inputs = (image_input(np.shape(x_train)[1:]),) if np.ndim(x_train) == 4 else ()
            if not inputs:  # today's message for a wrong image array
                raise ValueError(f"x_train must be float32 NHWC, got {getattr(x_train, 'dtype', '?')} "
                                 f"{np.shape(x_train)}")
        inputs = tuple(inputs)
        train = as_inputs(x_train, inputs, "x_train")
        test = as_inputs(x_test, inputs, "x_test")
        for spec in inputs:
            spec.check_array(train[spec.name], f"x_train[{spec.name!r}]", values=True)
            spec.check_array(test[spec.name], f"x_test[{spec.name!r}]", values=True)
        if len(next(iter(train.values()))) != len(y_train) or len(next(iter(test.values()))) != len(y_test):
            raise ValueError("images and labels differ in length" if len(inputs) == 1 and inputs[0].kind == "image"
                             else "inputs and labels differ in length")
        for name, value in (("train_inputs", train), ("y_train", y_train), ("test_inputs", test),
                            ("y_test", y_test), ("inputs", inputs)):
            object.__setattr__(self, name, value)

    def _single(self, arrays: Mapping[str, np.ndarray], what: str) -> np.ndarray:
        if len(arrays) != 1:
            raise AttributeError(f"TaskData.{what} is the array of a single-input task; this task has the inputs "
                                 f"{', '.join(arrays)}: use {what.replace('x_', '')}_inputs[name]")
        return next(iter(arrays.values()))

    @property
    def x_train(self) -> np.ndarray:
        """The training array of a single-input task (NHWC float32 images for image tasks)."""
        return self._single(self.train_inputs, "x_train")

    @property
    def x_test(self) -> np.ndarray:
        """The test array of a single-input task."""
        return self._single(self.test_inputs, "x_test")

    def subset(self, train: Any = slice(None), test: Any = slice(None)) -> "TaskData":
        """The examples at index ``train`` of the training split and ``test`` of the test split
        (an index array, a boolean mask or a slice), every input together."""
        return TaskData({k: v[train] for k, v in self.train_inputs.items()}, self.y_train[train],
                        {k: v[test] for k, v in self.test_inputs.items()}, self.y_test[test], inputs=self.inputs)


@dataclass(frozen=True)
class Recipe:
    """The default fine-tuning recipe of a task; CLI options override single fields."""

    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-3
    freeze: str = "none"


@dataclass(frozen=True)
class Task:
    """A classification task. ``load`` must return the same arrays every time; it works offline
    unless ``downloads`` names a data set, which it then fetches once into the cache (and raises
    :class:`zoo.download.OfflineError`, saying where to put the files, when it cannot).

    ``input_shape`` is what model specs are sized by (their methods' ``input_shape``): the
    images' ``(H, W, C)`` for an image task. ``inputs`` declares what ``load()`` provides; left
    out, it is one NHWC float32 ``image`` input of ``input_shape``. Other tasks declare it and
    give the shape of their first input, e.g. tokens of length 128 with a mask::

        Task("reviews", "...", 2, (128,), load_reviews, inputs=text_inputs(128, vocab_size=30522))

    ``pretrained`` maps a model name to the zoo checkpoint a fine-tune on this task starts
    from; a model without an entry trains from a NumPy-seeded random initialisation.
    """

    name: str
    description: str
    num_classes: int
    input_shape: tuple[int, ...]  # H, W, C for images; the first input's shape otherwise
    load: Callable[[], TaskData]
    recipe: Recipe = Recipe()
    pretrained: tuple[tuple[str, str], ...] = ()  # (model name, checkpoint name)
    #: Test accuracy a reasonable model reaches; used for time-to-accuracy.
    target_accuracy: float | None = None
    #: The published data set ``load`` downloads on first use (into the zoo cache, sha256-checked;
    #: see :mod:`zoo.datasets`), or ``""`` for a task that needs no network at all.
    downloads: str = ""
    #: What ``load()`` provides, one :class:`InputSpec` per input (default: one image input).
    inputs: tuple[InputSpec, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", tuple(self.input_shape))
        if not self.inputs:
            if len(self.input_shape) != 3:
                raise ValueError(f"task {self.name!r}: input_shape {self.input_shape} is not an image's (H, W, C); "
                                 "declare the task's inputs=(InputSpec(...), ...)")
            object.__setattr__(self, "inputs", (image_input(self.input_shape),))
        object.__setattr__(self, "inputs", tuple(self.inputs))
        if self.inputs[0].shape != self.input_shape:
            raise ValueError(f"task {self.name!r}: input_shape {self.input_shape} must be the shape of its first "
                             f"input ({describe(self.inputs)})")

    def checkpoint_for(self, model: str) -> str | None:
        return dict(self.pretrained).get(model)


@dataclass(frozen=True)
class PackagedWeightsTask(Task):
    """A task whose pretrained start is converted on demand from an installed weights package.

    ``weights_from`` names an importer module with ``ensure_checkpoint(model) -> str | None``
    (convert the package's file once into the user checkpoint directory, then reuse it) and
    ``install_hint(model) -> str`` (the pip command that brings the package). :meth:`checkpoint_for`
    (asked by the planner, in the parent, before any cell runs) calls it; without the package the
    model trains from random weights, as any model without a checkpoint does, and a line on
    stderr says how to get the weights."""

    weights_from: str = ""

    def checkpoint_for(self, model: str) -> str | None:
        if super().checkpoint_for(model) is None:
            return None
        importer = importlib.import_module(self.weights_from)
        found = importer.ensure_checkpoint(model)
        if found is None:
            print(f"zoo: no pretrained weights for {model} ({importer.install_hint(model)}); it starts from "
                  "random weights", file=sys.stderr)
        return found
