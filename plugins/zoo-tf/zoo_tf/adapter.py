"""The TensorFlow/Keras framework adapter: Keras 3 models on the TensorFlow backend.

TensorFlow and Keras are imported inside the methods (through :mod:`zoo_tf.modules` and
:mod:`zoo_tf.training`), never at import time: importing TensorFlow takes seconds, and the
``zoo`` command imports this module to list and plan.

Variants (``tf``, ``tf:xla``, ``tf:eager``) are the execution modes of :mod:`zoo_tf.training`.
:meth:`TFFramework.prepare` stores ``runtime.variant`` on the adapter and applies TensorFlow's
process-wide settings (visible devices, thread pools, TF32) only the first time it runs in a
process, since TensorFlow accepts them only before its runtime starts; a later ``prepare`` with
the same process-wide settings just switches the variant and re-seeds. The variant can also be
given to the constructor, ``TFFramework(variant="xla")``. Each model handle keeps the variant
and precision it was loaded with.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
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
from zoo.models import BertSpec, CNNSpec, EfficientNetLiteSpec, InputSpec, MLPSpec, ModelSpec, ResNetSpec
from zoo.plugin_host import import_object

#: Model family -> the function that builds its Keras features, ``fn(spec, x, backbone_policy)``,
#: as "module:function" (imported only when a model is built, so planning never imports
#: TensorFlow). The one list of what zoo-tf builds: ``supports`` and ``load_pretrained`` read it.
FAMILIES: Mapping[str, str] = {
    MLPSpec.family: "zoo_tf.modules:mlp_features",
    CNNSpec.family: "zoo_tf.modules:cnn_features",
    ResNetSpec.family: "zoo_tf.resnet:resnet_pooled",
    EfficientNetLiteSpec.family: "zoo_tf.efficientnet:efficientnet_lite_pooled",
    BertSpec.family: "zoo_tf.bert:bert_pooled",
}


def builder(family: str) -> Callable[..., Any]:
    """The feature builder of ``family``, from :data:`FAMILIES`."""
    return import_object(FAMILIES[family])

#: Names TensorFlow is published under, most common first.
TF_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tensorflow-intel", "tf-nightly")

#: Inter-op threads: the zoo's models are chains of ops with nothing to run side by side, and
#: torch's eager execution has no inter-op pool either, so one thread keeps the CPU threads of
#: both frameworks at ``runtime.threads`` (TensorFlow's default would add one per core).
INTER_OP_THREADS = 1

INSTALL_HINT = "install zoo-tf[cpu] (tensorflow-cpu) or zoo-tf[gpu] (tensorflow[and-cuda])"

#: Execution modes (``Framework.variants``), the first the default; :mod:`zoo_tf.training`
#: implements them.
VARIANTS = {
    "graph": "tf.function with a fixed input_signature (default)",
    "xla": "tf.function(jit_compile=True)",
    "eager": "plain eager execution, no tf.function",
}
PRECISIONS = ("fp32", "bf16")
#: How batches reach the model, the same words in zoo-torch, zoo-tf and zoo-jax (``info().details["feed"]``).
FEED = "device-resident: split staged once per call, batches gathered by the host's indices"

#: The process-wide settings the first prepare() applied: (device, threads, matmul precision).
_applied_settings: tuple[str, int, str] | None = None


def resolve_variant(variant: str) -> str:
    """``""`` (the host's "default") -> ``"graph"``; an unknown name is an error."""
    if not variant:
        return next(iter(VARIANTS))
    if variant not in VARIANTS:
        raise ValueError(f"zoo-tf has no variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    return variant


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
    variant: str = "graph"  # execution mode, one of VARIANTS
    precision: str = "fp32"  # "fp32" or "bf16" (backbone compute dtype; variables stay float32)
    #: Traced tf.functions by purpose and batch size, so repeated calls never retrace.
    compiled: dict[tuple, Any] = field(default_factory=dict)
    #: The model's declared inputs: the Keras inputs and every step signature follow them.
    inputs: tuple[InputSpec, ...] = ()


class TFFramework(Framework):
    name = "tf"
    aliases = ("tensorflow", "keras")
    display_name = "TensorFlow/Keras"
    packages = (installed_tensorflow() or "tensorflow", "keras")
    contract_version = 3
    variants = VARIANTS

    def __init__(self, variant: str = "") -> None:
        self.variant = resolve_variant(variant)
        self.precision = "fp32"

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
        if precision not in PRECISIONS:
            return Support.no(f"zoo-tf has no precision {precision!r} (it has {', '.join(PRECISIONS)})")
        if device not in ("cpu", "gpu"):
            return Support.no(f"unknown device {device!r}")
        if device == "gpu" and tf_dist == "tensorflow-cpu":
            return Support.no("tensorflow-cpu has no GPU support; install zoo-tf[gpu] (tensorflow[and-cuda])")
        return Support.yes()

    def prepare(self, runtime: Runtime) -> None:
        import zoo_tf.modules as modules

        self.variant = resolve_variant(runtime.variant)
        if runtime.precision not in PRECISIONS:
            raise ValueError(f"zoo-tf has no precision {runtime.precision!r} (it has {', '.join(PRECISIONS)})")
        self.precision = runtime.precision
        _apply_process_settings(runtime)
        modules.keras.utils.set_random_seed(runtime.seed)  # Python, NumPy, TensorFlow and Keras

    def info(self) -> FrameworkInfo:
        import tensorflow as tf

        import zoo_tf.modules as modules

        gpus = tf.config.get_visible_devices("GPU")
        details: dict[str, Any] = {
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
            "tensor_float_32": tf.config.experimental.tensor_float_32_execution_enabled(),
            "keras_backend": modules.keras.backend.backend(),
            "variant": self.variant,
            "jit_compile": self.variant == "xla",
            "precision": self.precision,
            # layer types that compute in bfloat16 (with their bias add and ReLU) where the model has them
            "bf16_ops": list(modules.BF16_OPS) if self.precision == "bf16" else [],
            "dtype_policies": {
                "backbone": modules.BACKBONE_POLICY[self.precision],
                "pool_and_head": modules.DTYPE,
            },
            "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
            # zoo_tf.training.Feed: the split in variables on the device once per call, the epoch's
            # order too; the compiled step gathers its batch at a step counter and takes no arguments
            "feed": FEED,
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
        input_shape: tuple[int, ...],
        num_classes: int,
        device: str,
        precision: str,
        freeze: str,
        inputs: Sequence[InputSpec] | None = None,
    ) -> TFModel:
        import tensorflow as tf

        import zoo_tf.modules as modules

        if spec.family not in FAMILIES:
            raise ValueError(f"zoo-tf cannot build model family {spec.family!r}; it builds {', '.join(FAMILIES)}")
        input_shape = tuple(input_shape)
        declared = tuple(spec.inputs(input_shape) if inputs is None else inputs)
        spec.check_weights(weights, input_shape, num_classes)
        tf_device = _tf_device(device)
        with tf.device(tf_device):
            model = modules.build_model(spec, declared, num_classes, precision, builder(spec.family))
            variables = modules.canonical_variables(model, spec, input_shape, num_classes)
            modules.load_canonical(variables, weights)
        trainable = spec.trainable_names(freeze, input_shape, num_classes)
        modules.set_trainable(model, variables, trainable)
        return TFModel(model, tf_device, variables, trainable, variant=self.variant, precision=precision,
                       inputs=declared)

    def fine_tune(self, model: TFModel, data: TrainData, config: FineTuneConfig, meter: Meter) -> FineTuneResult:
        import tensorflow as tf

        from zoo_tf.training import TorchAdam, input_signature, make_train_step

        key = ("train", data.batch_size, config)
        with tf.device(model.device):
            if key not in model.compiled:
                params = [v.value for name, v in model.variables.items() if name in model.trainable]
                optimizer = TorchAdam(params, config)
                signature = input_signature(model.inputs, data.batch_size)
                model.compiled[key] = (make_train_step(model.model, optimizer, signature, model.variant), optimizer)
            step, optimizer = model.compiled[key]
            optimizer.reset()  # every fine-tune starts a fresh Adam, as in torch
            step.feed.stage(data.inputs, data.y)  # the split on the device, once per call
        losses = []
        for epoch in data.order:
            with tf.device(model.device):
                step.feed.start(epoch)  # the epoch's batch order on the device; the step gathers its batch
                for idx in epoch:
                    with meter.step(len(idx)) as sync:
                        loss = step()
                        if sync is not False:
                            loss.numpy()  # the copy to host waits for the update
                    losses.append(loss)
            meter.end_epoch(model)  # updated in place; the host may evaluate it here
        return FineTuneResult(model, [float(v) for v in losses])

    def evaluate(self, model: TFModel, data: EvalData, meter: Meter) -> np.ndarray:
        import tensorflow as tf

        from zoo_tf.training import input_signature, make_forward

        key = ("forward", data.batch_size)
        outputs = []
        batch_size = data.batch_size
        with tf.device(model.device):
            if key not in model.compiled:
                model.compiled[key] = make_forward(model.model, input_signature(model.inputs, data.batch_size),
                                                   model.variant)
            forward = model.compiled[key]
            forward.feed.stage(data.inputs)  # the split on the device, once per call
            forward.feed.start(data.order)
            for _ in data.order:
                with meter.step(batch_size) as sync:
                    logits = forward()
                    if sync is not False:
                        logits = logits.numpy()  # the copy to host synchronises
                outputs.append(logits)
        return np.concatenate([np.asarray(o, dtype=np.float32) for o in outputs])

    def export_weights(self, model: TFModel) -> dict[str, np.ndarray]:
        import zoo_tf.modules as modules

        return modules.export_canonical(model.variables)

    def memory(self, device: str) -> dict[str, int]:
        if device != "gpu":
            return {}
        import tensorflow as tf

        return {"peak_bytes": int(tf.config.experimental.get_memory_info("GPU:0")["peak"])}


def _apply_process_settings(runtime: Runtime) -> None:
    """Visible devices, thread pools and TF32, once per process (TensorFlow takes them only
    before its runtime starts); a later call must ask for the same settings."""
    global _applied_settings
    import tensorflow as tf

    wanted = (runtime.device, runtime.threads, runtime.matmul_precision)
    if _applied_settings is not None:
        if _applied_settings != wanted:
            raise RuntimeError(
                f"TensorFlow in this process was prepared for (device, threads, matmul precision) = "
                f"{_applied_settings}, and cannot switch to {wanted}; use a fresh process"
            )
        return
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
    _applied_settings = wanted


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
