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

GPU cells (none measured yet; the CPU tests cover what does not need a device):

* synchronisation: :func:`synchronize` at the synchronised steps, ``tf.test.experimental.sync_devices()``
  on a GPU (it waits for the device's queued kernels; nothing is copied); eager CPU ops are
  synchronous. No value is read back to NumPy inside a timed step: the losses and logits stay
  tensors on the device and go to the host once, after the loop (reading the logits back at
  every synchronised step put a device-to-host copy into TF's batch-1 latency only);
* TensorFlow build: GPU cells are refused at planning when the ``tensorflow`` package comes from
  a CPU-only build (``tensorflow-cpu``, read from the installed distributions' metadata,
  :func:`tensorflow_providers`), with the install that fixes it;
* autotuning: TensorFlow autotunes cuDNN convolutions unless ``TF_CUDNN_USE_AUTOTUNE=false``,
  and ``tf:xla`` autotunes its GEMMs and convolutions at ``--xla_gpu_autotune_level`` (XLA's
  default 4); both recorded in ``info().details["autotune"]``;
* precision ``tf32``: ``enable_tensor_float_32_execution(True)``; ``fp32`` keeps it off;
* per-phase allocator peaks: :meth:`TFFramework.reset_memory_peak` calls
  ``tf.config.experimental.reset_memory_stats("GPU:0")``.
"""

from __future__ import annotations

import os
import re
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
    model_precision,
    precision_support,
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
#: Builds of TensorFlow without CUDA kernels: a GPU cell cannot run on them.
CPU_ONLY_BUILDS = ("tensorflow-cpu", "tensorflow-intel", "tensorflow-macos", "tf-nightly-cpu")
#: The fix for a GPU cell on a CPU-only build (after ``pip uninstall`` of that build).
GPU_INSTALL = ("pip install 'zoo-tf[gpu]' (tensorflow[and-cuda]), in an environment of its own if the CUDA wheels "
               "of torch or jax[cuda12] there pin other nvidia-* versions")

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
PRECISIONS = ("fp32", "tf32", "bf16")
#: How batches reach the model, the same words in zoo-torch, zoo-tf and zoo-jax (``info().details["feed"]``).
FEED = "device-resident: split staged once per call, batches gathered by the host's indices"
#: The host-pipeline feed (``zoo bench --feed host``), the same first words in the three plugins,
#: then tf.data's mechanism on a GPU or a CPU (:func:`zoo_tf.training.host_pipeline`).
HOST_FEED = "host pipeline: batches gathered on the host in the host's order"
HOST_FEED_GPU = f"{HOST_FEED}, tf.data map(tf.gather) + prefetch(2) + prefetch_to_device(GPU, 2)"
HOST_FEED_CPU = f"{HOST_FEED}, tf.data map(tf.gather) + prefetch(2) (the CPU is the device: no copy)"
#: What ``info().details["autotune"]`` says on a CPU cell, in zoo-torch, zoo-tf and zoo-jax.
NOT_ON_CPU = "not applicable: CPU cell"
#: XLA's ``xla_gpu_autotune_level`` when ``XLA_FLAGS`` does not set it (DebugOptions default).
XLA_AUTOTUNE_DEFAULT = 4

#: The process-wide settings the first prepare() applied: (device, threads, TF32 allowed).
_applied_settings: tuple[str, int, bool] | None = None


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


def tensorflow_providers() -> tuple[str, ...]:
    """The installed distributions whose files provide the ``tensorflow`` import package
    (normalised names, e.g. ``("tensorflow-cpu",)``), read from their metadata with
    ``importlib.metadata.packages_distributions``, without importing TensorFlow. Usually one;
    two when two builds were installed over each other."""
    names = metadata.packages_distributions().get("tensorflow", [])
    return tuple(sorted({re.sub(r"[-_.]+", "-", name).lower() for name in names}))


def gpu_build_support(providers: Sequence[str]) -> Support:
    """Whether TensorFlow from ``providers`` (:func:`tensorflow_providers`) can run a GPU cell:
    not when a CPU-only build provides it (its kernels have no CUDA), whatever the machine."""
    cpu_only = [name for name in providers if name in CPU_ONLY_BUILDS]
    if not cpu_only:
        return Support.yes()
    return Support.no(f"TensorFlow here comes from {' and '.join(cpu_only)}, a CPU-only build (zoo-tf[cpu]), so it "
                      f"cannot run GPU cells; pip uninstall {' '.join(cpu_only)}, then {GPU_INSTALL}")


def xla_flag(name: str, flags: str | None = None) -> str | None:
    """The value of ``--NAME=VALUE`` in ``flags`` (default: the ``XLA_FLAGS`` environment
    variable), or ``None`` where it is not set; the last one wins, as in XLA."""
    found = None
    for token in (os.environ.get("XLA_FLAGS", "") if flags is None else flags).split():
        key, _, value = token.lstrip("-").partition("=")
        if key == name:
            found = value
    return found


@dataclass
class TFModel:
    """The handle the host passes between calls."""

    model: Any  # keras.Model
    device: str  # TensorFlow device name, "/CPU:0" or "/GPU:0"
    variables: Mapping[str, Any]  # canonical name -> keras.Variable
    trainable: frozenset[str]  # canonical names
    variant: str = "graph"  # execution mode, one of VARIANTS
    precision: str = "fp32"  # the cell's: "fp32", "tf32" (built as fp32) or "bf16" (backbone compute dtype)
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
    feeds = ("device", "host")  # zoo.contract.Runtime.feed: training.Feed, or training.host_pipeline

    def __init__(self, variant: str = "") -> None:
        self.variant = resolve_variant(variant)
        self.precision = "fp32"
        self.device = "cpu"
        self.feed = "device"
        self._providers: tuple[str, ...] | None = None  # tensorflow_providers(), read once per adapter

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
        if device == "gpu":
            if self._providers is None:
                self._providers = tensorflow_providers() or (tf_dist,)
            build = gpu_build_support(self._providers)
            if not build.ok:
                return build
        return precision_support(device, precision)

    def prepare(self, runtime: Runtime) -> None:
        import zoo_tf.modules as modules

        self.variant = resolve_variant(runtime.variant)
        if runtime.precision not in PRECISIONS:
            raise ValueError(f"zoo-tf has no precision {runtime.precision!r} (it has {', '.join(PRECISIONS)})")
        support = precision_support(runtime.device, runtime.precision)
        if not support.ok:
            raise ValueError(support.reason)
        if runtime.feed not in self.feeds:
            raise ValueError(f"zoo-tf has no feed {runtime.feed!r}; it implements: {', '.join(self.feeds)}")
        self.precision, self.device, self.feed = runtime.precision, runtime.device, runtime.feed
        _apply_process_settings(runtime)
        modules.keras.utils.set_random_seed(runtime.seed)  # Python, NumPy, TensorFlow and Keras

    def info(self) -> FrameworkInfo:
        import tensorflow as tf

        import zoo_tf.modules as modules

        gpus = tf.config.get_visible_devices("GPU")
        built = model_precision(self.precision)  # tf32 builds the fp32 model
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
                "backbone": modules.BACKBONE_POLICY[built],
                "pool_and_head": modules.DTYPE,
            },
            "autotune": self._autotune(),
            "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
            # zoo_tf.training.Feed: the split in variables on the device once per call, the epoch's
            # order too; the compiled step gathers its batch at a step counter and takes no arguments
            # at feed "host": zoo_tf.training.host_pipeline and the steps that take the batch
            "feed": FEED if self.feed == "device" else HOST_FEED_GPU if self.device == "gpu" else HOST_FEED_CPU,
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
            model = modules.build_model(spec, declared, num_classes, model_precision(precision),
                                        builder(spec.family))
            variables = modules.canonical_variables(model, spec, input_shape, num_classes)
            modules.load_canonical(variables, weights)
        trainable = spec.trainable_names(freeze, input_shape, num_classes)
        modules.set_trainable(model, variables, trainable)
        return TFModel(model, tf_device, variables, trainable, variant=self.variant, precision=precision,
                       inputs=declared)

    def fine_tune(self, model: TFModel, data: TrainData, config: FineTuneConfig, meter: Meter) -> FineTuneResult:
        import tensorflow as tf

        from zoo_tf.training import TorchAdam, input_signature, make_train_step

        if self.feed == "host":
            return self._fine_tune_host(model, data, config, meter)
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
                            synchronize(model.device)  # waits for the update; copies nothing
                    losses.append(loss)  # a tensor on the device: one copy after the loop
            meter.end_epoch(model)  # updated in place; the host may evaluate it here
        return FineTuneResult(model, [float(v) for v in tf.stack(losses).numpy()] if losses else [])

    def evaluate(self, model: TFModel, data: EvalData, meter: Meter) -> np.ndarray:
        import tensorflow as tf

        from zoo_tf.training import input_signature, make_forward

        if self.feed == "host":
            return self._evaluate_host(model, data, meter)
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
                        synchronize(model.device)  # waits for the forward pass; copies nothing
                outputs.append(logits)  # a tensor on the device
            # One copy to the host, after the loop (module doc).
            return np.asarray(tf.concat(outputs, axis=0).numpy(), dtype=np.float32)

    def _fine_tune_host(self, model: TFModel, data: TrainData, config: FineTuneConfig,
                        meter: Meter) -> FineTuneResult:
        """:meth:`fine_tune` at feed ``host``: each epoch's batches from a ``tf.data`` pipeline
        (:func:`zoo_tf.training.host_pipeline`), the step taking the batch as arguments."""
        import tensorflow as tf

        from zoo_tf.training import TorchAdam, host_pipeline, input_signature, make_train_step_on

        key = ("train", data.batch_size, config, "host")
        signature = input_signature(model.inputs, data.batch_size)
        with tf.device(model.device):
            if key not in model.compiled:
                params = [v.value for name, v in model.variables.items() if name in model.trainable]
                optimizer = TorchAdam(params, config)
                model.compiled[key] = (make_train_step_on(model.model, optimizer, signature, model.variant), optimizer)
            step, optimizer = model.compiled[key]
            optimizer.reset()  # every fine-tune starts a fresh Adam, as in torch
        losses = []
        for epoch in data.order:
            batches = iter(host_pipeline(signature, data.inputs, epoch, data.y, model.device))
            with tf.device(model.device):
                for idx in epoch:
                    with meter.step(len(idx)) as sync:
                        x, y = next(batches)  # gathered and prefetched by tf.data's threads
                        loss = step(x, y)
                        if sync is not False:
                            synchronize(model.device)  # waits for the update; copies nothing
                    losses.append(loss)
            meter.end_epoch(model)
        return FineTuneResult(model, [float(v) for v in tf.stack(losses).numpy()] if losses else [])

    def _evaluate_host(self, model: TFModel, data: EvalData, meter: Meter) -> np.ndarray:
        """:meth:`evaluate` at feed ``host`` (:meth:`_fine_tune_host`)."""
        import tensorflow as tf

        from zoo_tf.training import host_pipeline, input_signature, make_forward_on

        key = ("forward", data.batch_size, "host")
        signature = input_signature(model.inputs, data.batch_size)
        outputs = []
        batch_size = data.batch_size
        batches = iter(host_pipeline(signature, data.inputs, data.order, None, model.device))
        with tf.device(model.device):
            if key not in model.compiled:
                model.compiled[key] = make_forward_on(model.model, signature, model.variant)
            forward = model.compiled[key]
            for _ in data.order:
                with meter.step(batch_size) as sync:
                    logits = forward(next(batches))
                    if sync is not False:
                        synchronize(model.device)
                outputs.append(logits)
            return np.asarray(tf.concat(outputs, axis=0).numpy(), dtype=np.float32)

    def export_weights(self, model: TFModel) -> dict[str, np.ndarray]:
        import zoo_tf.modules as modules

        return modules.export_canonical(model.variables)

    def memory(self, device: str) -> dict[str, int]:
        if device != "gpu":
            return {}
        import tensorflow as tf

        return {"peak_bytes": int(tf.config.experimental.get_memory_info("GPU:0")["peak"])}  # since the last reset

    def reset_memory_peak(self, device: str) -> bool:
        if device != "gpu":
            return False  # TensorFlow keeps no CPU allocator statistics (reset_memory_stats raises there)
        import tensorflow as tf

        if not tf.config.list_logical_devices("GPU"):
            return False
        tf.config.experimental.reset_memory_stats("GPU:0")  # the peak restarts from the memory in use now
        return True

    def _autotune(self) -> dict[str, Any]:
        """What TensorFlow autotunes in this cell (module doc), for ``info().details``."""
        if self.device != "gpu":
            return {"cudnn": NOT_ON_CPU, "xla_gpu_autotune_level": NOT_ON_CPU}
        cudnn = os.environ.get("TF_CUDNN_USE_AUTOTUNE")
        level = xla_flag("xla_gpu_autotune_level")
        return {
            "cudnn": f"TF_CUDNN_USE_AUTOTUNE={cudnn}" if cudnn is not None
            else "on (TF_CUDNN_USE_AUTOTUNE unset: TensorFlow's default)",
            "xla_gpu_autotune_level": (f"{level} (XLA_FLAGS)" if level is not None
                                       else f"{XLA_AUTOTUNE_DEFAULT} (XLA's default)") if self.variant == "xla"
            else f"not applicable: variant {self.variant} does not compile with XLA",
        }


def synchronize(device: str) -> None:
    """Wait until the work queued on ``device`` (``"/GPU:0"``, ``"/CPU:0"``) is done, without
    copying anything: ``tf.test.experimental.sync_devices()`` on a GPU (a SyncDevice op on every
    device, then a wait for eager's queue); nothing on the CPU, where eager execution and a
    function call return after their ops ran. Called at the synchronised steps of ``fine_tune``
    and ``evaluate``, inside ``meter.step``."""
    if "GPU" in device.upper():
        import tensorflow as tf

        tf.test.experimental.sync_devices()


def _apply_process_settings(runtime: Runtime) -> None:
    """Visible devices, thread pools and TF32, once per process (TensorFlow takes them only
    before its runtime starts); a later call must ask for the same settings."""
    global _applied_settings
    import tensorflow as tf

    wanted = (runtime.device, runtime.threads, runtime.tf32)
    if _applied_settings is not None:
        if _applied_settings != wanted:
            raise RuntimeError(
                f"TensorFlow in this process was prepared for (device, threads, TF32) = "
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
    # One float32 policy for every framework: full-precision matmuls, no TF32, except at precision tf32.
    tf.config.experimental.enable_tensor_float_32_execution(runtime.tf32)
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
