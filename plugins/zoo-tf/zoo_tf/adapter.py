"""The TensorFlow/Keras framework adapter: Keras 3 models on the TensorFlow backend.

TensorFlow and Keras are imported inside the methods (through :mod:`zoo_tf.modules` and
:mod:`zoo_tf.training`), never at import time: importing TensorFlow takes seconds, and the
``zoo`` command imports this module to list and plan.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

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
from zoo.models import CNNSpec, MLPSpec, ModelSpec

FAMILIES = (MLPSpec.family, CNNSpec.family)

#: Names TensorFlow is published under, most common first.
TF_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tensorflow-intel", "tf-nightly")

#: Inter-op threads: the zoo's models are chains of ops with nothing to run side by side, and
#: torch's eager execution has no inter-op pool either, so one thread keeps the CPU threads of
#: both frameworks at ``runtime.threads`` (TensorFlow's default would add one per core).
INTER_OP_THREADS = 1

INSTALL_HINT = "install zoo-tf[cpu] (tensorflow-cpu) or zoo-tf[gpu] (tensorflow[and-cuda])"


def installed_tensorflow() -> str | None:
    """The name of the installed TensorFlow distribution, read without importing it."""
    for name in TF_DISTRIBUTIONS:
        try:
            metadata.version(name)
            return name
        except metadata.PackageNotFoundError:
            continue
    return None


@dataclass
class TFModel:
    """The handle the host passes between calls."""

    model: Any  # keras.Model
    device: str  # TensorFlow device name, "/CPU:0" or "/GPU:0"
    variables: Mapping[str, Any]  # canonical name -> keras.Variable
    trainable: frozenset[str]  # canonical names
    #: Traced tf.functions by purpose and batch shape, so repeated calls never retrace.
    compiled: dict[tuple, Any] = field(default_factory=dict)


class TFFramework(Framework):
    name = "tf"
    aliases = ("tensorflow", "keras")
    display_name = "TensorFlow/Keras"
    packages = (installed_tensorflow() or "tensorflow", "keras")
    contract_version = 1

    def subprocess_env(self, runtime: Runtime) -> Mapping[str, str]:
        return {
            "KERAS_BACKEND": "tensorflow",
            "TF_CPP_MIN_LOG_LEVEL": "2",  # no C++ INFO/WARNING lines in the worker's output
            "TF_NUM_INTRAOP_THREADS": str(runtime.threads),
            "TF_NUM_INTEROP_THREADS": str(INTER_OP_THREADS),
            "TF_FORCE_GPU_ALLOW_GROWTH": "true",  # do not pre-allocate the whole GPU
        }

    def supports(self, spec: ModelSpec, device: str, precision: str) -> Support:
        tf_dist = installed_tensorflow()
        if tf_dist is None:
            return Support.no(f"TensorFlow is not installed; {INSTALL_HINT}")
        if spec.family not in FAMILIES:
            return Support.no(f"zoo-tf has no builder for model family {spec.family!r}")
        if precision != "fp32":
            return Support.no(f"precision {precision!r} is not implemented in zoo-tf yet")
        if device not in ("cpu", "gpu"):
            return Support.no(f"unknown device {device!r}")
        if device == "gpu" and tf_dist == "tensorflow-cpu":
            return Support.no("tensorflow-cpu has no GPU support; install zoo-tf[gpu] (tensorflow[and-cuda])")
        return Support.yes()

    def prepare(self, runtime: Runtime) -> None:
        import tensorflow as tf

        from zoo_tf import modules

        try:
            gpus = tf.config.list_physical_devices("GPU")
            if runtime.device == "cpu" and gpus:
                tf.config.set_visible_devices([], "GPU")  # a CPU cell never initialises the GPU
            else:
                for gpu in gpus:
                    tf.config.experimental.set_memory_growth(gpu, True)
            tf.config.threading.set_intra_op_parallelism_threads(runtime.threads)
            tf.config.threading.set_inter_op_parallelism_threads(INTER_OP_THREADS)
        except RuntimeError as exc:
            raise RuntimeError(
                f"TensorFlow's runtime was initialised before prepare() ({exc}); call prepare() "
                "first, in a fresh process"
            ) from exc
        # One float32 policy for every framework: full-precision matmuls, no TF32.
        tf.config.experimental.enable_tensor_float_32_execution(runtime.matmul_precision != "highest")
        modules.keras.utils.set_random_seed(runtime.seed)  # Python, NumPy, TensorFlow and Keras

    def info(self) -> FrameworkInfo:
        import tensorflow as tf

        from zoo_tf import modules

        gpus = tf.config.get_visible_devices("GPU")
        details: dict[str, Any] = {
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
            "tensor_float_32": tf.config.experimental.tensor_float_32_execution_enabled(),
            "keras_backend": modules.keras.backend.backend(),
            "jit_compile": False,
            "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
        }
        if gpus:
            details["gpu_name"] = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "")
        return FrameworkInfo(
            name=self.name,
            versions={package: metadata.version(package) for package in self.packages},
            devices=["cpu"] + (["gpu"] if gpus else []),
            details=details,
        )

    def load_pretrained(
        self,
        spec: ModelSpec,
        weights: Weights,
        input_shape: tuple[int, int, int],
        num_classes: int,
        device: str,
        precision: str,
        freeze: str,
    ) -> TFModel:
        import tensorflow as tf

        from zoo_tf import modules

        spec.check_weights(weights, input_shape, num_classes)
        tf_device = _tf_device(device)
        with tf.device(tf_device):
            model = modules.build_model(spec, tuple(input_shape), num_classes)
            variables = modules.canonical_variables(model, spec, tuple(input_shape), num_classes)
            modules.load_canonical(variables, weights)
        trainable = spec.trainable_names(freeze, tuple(input_shape), num_classes)
        modules.set_trainable(model, variables, trainable)
        return TFModel(model, tf_device, variables, trainable)

    def fine_tune(self, model: TFModel, data: TrainData, config: FineTuneConfig, meter: Meter) -> FineTuneResult:
        import tensorflow as tf

        from zoo_tf.training import TorchAdam, make_train_step

        batch_shape = (data.batch_size, *data.x.shape[1:])
        key = ("train", batch_shape, config)
        with tf.device(model.device):
            if key not in model.compiled:
                params = [v.value for name, v in model.variables.items() if name in model.trainable]
                optimizer = TorchAdam(params, config)
                model.compiled[key] = (make_train_step(model.model, optimizer, batch_shape), optimizer)
            step, optimizer = model.compiled[key]
            optimizer.reset()  # every fine-tune starts a fresh Adam, as in torch
            losses = []
            for x, y in data.batches():
                with meter.step(len(x)):
                    loss = step(x, y.astype(np.int64, copy=False))
                    losses.append(float(loss.numpy()))  # the copy to host waits for the update
        return FineTuneResult(model, losses)

    def evaluate(self, model: TFModel, data: EvalData, meter: Meter) -> np.ndarray:
        import tensorflow as tf

        from zoo_tf.training import make_forward

        batch_shape = (data.batch_size, *data.x.shape[1:])
        key = ("forward", batch_shape)
        outputs = []
        with tf.device(model.device):
            if key not in model.compiled:
                model.compiled[key] = make_forward(model.model, batch_shape)
            forward = model.compiled[key]
            for x in data.batches():
                with meter.step(len(x)):
                    outputs.append(forward(x).numpy().astype(np.float32, copy=False))  # synchronises
        return np.concatenate(outputs)

    def export_weights(self, model: TFModel) -> dict[str, np.ndarray]:
        from zoo_tf import modules

        return modules.export_canonical(model.variables)

    def memory(self, device: str) -> dict[str, int]:
        if device != "gpu":
            return {}
        import tensorflow as tf

        return {"peak_bytes": int(tf.config.experimental.get_memory_info("GPU:0")["peak"])}


def _tf_device(device: str) -> str:
    import tensorflow as tf

    if device == "cpu":
        return "/CPU:0"
    if device == "gpu":
        if not tf.config.list_logical_devices("GPU"):
            raise RuntimeError(
                "TensorFlow sees no GPU in this process; install zoo-tf[gpu] (tensorflow[and-cuda]) on a "
                "machine with an NVIDIA driver, or run the CPU cells only"
            )
        return "/GPU:0"
    raise ValueError(f"unknown device {device!r}; use 'cpu' or 'gpu'")
