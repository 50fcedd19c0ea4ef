"""The NumPy reference as a framework: every zoo model's float64 ``reference_forward``, run as
an inference-only runtime. It shows the whole contract in its smallest form, and gives the
benchmark table a baseline: accuracy exactly as the reference computes it, and what plain NumPy
costs per example.

NumPy's BLAS threads are fixed when NumPy is imported, by the thread variables the host sets
for every worker (``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``), so
``prepare`` has nothing left to set.

Any model's inputs: each batch reaches ``reference_forward`` as the host gives it (one array for
a single-input model such as an image model, a dict of arrays for several inputs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import metadata
from typing import Sequence

import numpy as np

from zoo.contract import (
    EvalData,
    FineTuneConfig,
    FineTuneResult,
    Framework,
    FrameworkInfo,
    Meter,
    Runtime,
    Support,
    TrainData,
    Weights,
)
from zoo.models import InputSpec, ModelSpec
from zoo.threads import THREAD_VARIABLES  # the host sets these for every worker


@dataclass
class NumpyModel:
    """The handle the host passes between calls: the spec and its canonical float32 weights."""

    spec: ModelSpec
    weights: dict[str, np.ndarray]


class NumpyFramework(Framework):
    name = "numpy"
    aliases = ("reference",)
    display_name = "NumPy reference"
    packages = ("numpy",)
    contract_version = 3  # load_pretrained receives the model's declared inputs
    can_train = False  # inference only: the host skips fine_tune and shows training as n/a

    def supports(self, spec: ModelSpec, device: str, precision: str) -> Support:
        if device != "cpu":
            return Support.no("the NumPy reference runs on the CPU only")
        if precision != "fp32":
            return Support.no(f"the NumPy reference computes in float64 from fp32 weights, not {precision!r}")
        return Support.yes()  # every zoo model defines its reference forward pass

    def prepare(self, runtime: Runtime) -> None:
        pass  # BLAS threads come from the environment the host gives the worker (module docstring)

    def info(self) -> FrameworkInfo:
        return FrameworkInfo(
            name=self.name,
            versions={"numpy": metadata.version("numpy")},
            devices=("cpu",),
            details={"compute": "float64", "env": {k: os.environ[k] for k in THREAD_VARIABLES if k in os.environ}},
        )

    def load_pretrained(
        self,
        spec: ModelSpec,
        weights: Weights,
        input_shape: tuple[int, ...],
        num_classes: int,
        device: str,
        precision: str,
        freeze: str,
        inputs: Sequence[InputSpec] | None = None,
    ) -> NumpyModel:
        spec.check_weights(weights, input_shape, num_classes)
        # The canonical layout is NumPy's own: keep private float32 copies, nothing to convert.
        return NumpyModel(spec, {name: np.array(value, dtype=np.float32) for name, value in weights.items()})

    def fine_tune(self, model: NumpyModel, data: TrainData, config: FineTuneConfig, meter: Meter) -> FineTuneResult:
        raise NotImplementedError("the NumPy reference is inference-only (can_train = False)")

    def evaluate(self, model: NumpyModel, data: EvalData, meter: Meter) -> np.ndarray:
        outputs = []
        for x in data.batches():  # an array (one input) or a dict of arrays (several)
            with meter.step(data.batch_size):  # NumPy is synchronous: the step ends when the logits exist
                outputs.append(model.spec.reference_forward(model.weights, x).astype(np.float32))
        return np.concatenate(outputs)

    def export_weights(self, model: NumpyModel) -> dict[str, np.ndarray]:
        return {name: value.copy() for name, value in model.weights.items()}
