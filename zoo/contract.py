"""The framework-adapter contract: what a framework plugin implements, and what it receives.

The host (the ``harness`` package) runs each benchmark cell in its own worker process and
calls one adapter's methods in this order::

    prepare(runtime)                        # before anything touches the framework's runtime
    info()                                  # versions and devices, recorded with the result
    model = load_pretrained(spec, weights, input_shape, num_classes, device, precision, freeze,
                            inputs)         # inputs: only to adapters of contract version >= 3
    result = fine_tune(model, train_data, config, meter)   # -> FineTuneResult(model, losses)
    logits = evaluate(result.model, eval_data, meter)      # called several times
    weights = export_weights(result.model)
    memory(device)

Division of labour, so every framework is measured the same way:

* the **host** owns the data, its split, the batch order, the initial weights (a new head is
  initialised once in NumPy), warm-up, repeats, timing windows, statistics, accuracy (it is
  computed by the host from the logits the adapter returns) and peak host memory;
* the **adapter** owns the framework: layouts, compilation, and *synchronisation*: the work of a
  step must be finished when the adapter leaves ``with meter.step(n):``. Synchronise by waiting,
  not by copying: ``torch.cuda.synchronize()``, ``jax.block_until_ready``,
  ``tf.test.experimental.sync_devices()`` on a GPU (nothing on a CPU whose ops are synchronous).
  Reading a value back to NumPy inside the step would also wait, but adds a device-to-host copy
  to the timed step that another framework does not make (batch-1 latency synchronises every
  step); keep the outputs on the device and copy them to the host once, after the loop.

Canonical weights (design section 3): NumPy float32 arrays keyed by canonical parameter names,
each in the layout of its *role* (``ParamSpec.role``, :mod:`zoo.models.params`): dense kernels
``[in, out]``, conv kernels ``[kh, kw, in, out]`` (HWIO), depthwise kernels ``[kh, kw, C, mult]``,
embedding tables ``[rows, dim]``, vectors as they are. Convert layouts by role, never by array
rank or name suffix (an embedding table is 2-D and must not be transposed like a dense kernel).

Inputs (design: "inputs are declared, not assumed"): a model declares what it consumes,
``spec.inputs(input_shape)``, a tuple of :class:`~zoo.models.inputs.InputSpec` (name, shape
without the batch dimension, kind, dtype): ``image`` (NHWC float32), ``tokens`` (int32 ids),
``mask`` (int32 attention mask), ... The data an adapter receives follow the *batch form*: a
model with one input gets that input's array (so image models see NHWC float32 arrays, exactly
as in contract version 2); a model with several gets a dict name -> array.

Contract versions, and what the host does for an adapter declaring each (``contract_version``):

* 1, 2: image models only. ``load_pretrained`` is called with the seven keywords of its
  signature and *no* ``inputs`` keyword; an adapter of these versions is never given a model
  whose inputs are not one image (:func:`input_support`, :func:`load_kwargs`).
* 3: ``load_pretrained`` also receives ``inputs=spec.inputs(input_shape)``, and models of any
  declared inputs may be planned for it (its ``supports`` decides).

The host builds the keywords with :func:`load_kwargs`, which applies exactly this rule.

Precision ``bf16`` means the same thing in every adapter: parameters, optimiser state, loss and
logits stay float32; the backbone's convolutions and dense layers compute in bfloat16; the head
computes in float32. ``FrameworkInfo.details["bf16_ops"]`` says which ops ran in bfloat16.

Precision ``tf32`` is ``fp32`` (float32 parameters, activations, optimiser state and logits;
models built as at ``fp32``, :func:`model_precision`) with TF32 tensor cores allowed for float32
matmuls and convolutions: torch ``set_float32_matmul_precision("high")`` and
``cudnn.allow_tf32``, TensorFlow ``enable_tensor_float_32_execution(True)``, JAX
``jax_default_matmul_precision="tensorfloat32"``. It is a GPU precision (NVIDIA Ampere and
newer): :func:`precision_support` refuses it on a CPU, with the reason every adapter gives.
``fp32`` keeps TF32 off (:attr:`Runtime.tf32`). Adapters record the setting in ``info()``.

Autotuning, recorded so a GPU number says what it includes: adapters put what their framework
autotunes (torch ``cudnn.benchmark``, which zoo-torch turns on for GPU cells as a user timing
fixed shapes would; TensorFlow's ``TF_CUDNN_USE_AUTOTUNE``; XLA's ``--xla_gpu_autotune_level``)
in ``info().details["autotune"]``, each ``"not applicable: ..."`` on a CPU.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ContextManager, Mapping, Protocol, Sequence

import numpy as np

from zoo.models.inputs import InputSpec, describe, is_single_image
from zoo.data import EvalData, TrainData  # part of the contract; defined in zoo.data
from zoo.models.spec import ModelSpec

#: Canonical weights: parameter name -> float32 array in the canonical layout.
Weights = Mapping[str, np.ndarray]

DEVICES = ("cpu", "gpu")
#: ``fp32``: float32, TF32 off; ``tf32``: float32 with TF32 matmuls and convolutions (GPU only);
#: ``bf16``: bfloat16 compute, float32 parameters and logits (module doc).
PRECISIONS = ("fp32", "tf32", "bf16")
#: Precisions only a GPU has the hardware for, -> why (:func:`precision_support`).
GPU_PRECISIONS = {
    "tf32": "tf32 is a GPU precision: TF32 tensor cores (NVIDIA Ampere and newer) run float32 matmuls and "
            "convolutions with a 10-bit mantissa, and a CPU has none; use --precision fp32 (or bf16) on a CPU, "
            "or --device gpu",
}
#: How batches reach the model (:attr:`Runtime.feed`, ``zoo bench --feed``): ``device`` = the
#: split staged on the device, batches gathered there (the default); ``host`` = batches gathered
#: on the host and copied by the framework's overlapped input pipeline.
FEEDS = ("device", "host")
#: Fixed freeze policies; ``last-N`` (the head plus the last N blocks) is accepted too, see
#: :func:`zoo.models.spec.parse_freeze`.
FREEZE_POLICIES = ("none", "backbone")
#: The first contract version whose ``load_pretrained`` receives ``inputs`` and whose adapters
#: may be given models with inputs other than one image.
INPUTS_CONTRACT = 3


class Meter(Protocol):
    """Times the steps of a phase; given to the adapter by the host.

    Use it around exactly one step of work (one optimiser step, or one forward pass over one
    batch), including getting the batch to the model (gathering it from the split staged on the
    device, as the built-in adapters do, or transferring a NumPy batch). The block yields ``sync``:
    when it is true, the step's work must be finished when the block is left; when false, the
    adapter may leave with work still in flight (the host asks for a sync at the end of each
    timing window, so asynchronous frameworks can pipeline as they would for a user)::

        for x, y in data.batches():
            with meter.step(len(y)) as sync:
                loss = train_step(x, y)
                if sync is not False:
                    block_until_done(loss)   # the adapter's own synchronisation

    An adapter that synchronises at every step is correct, only slower where dispatch is
    asynchronous. A meter that yields nothing (``None``) asks for synchronisation: adapters test
    ``sync is not False``.
    """

    def step(self, samples: int) -> ContextManager[bool]:
        """Time one step that processes ``samples`` examples; yields whether to synchronise."""

    def end_epoch(self, model: Any) -> None:
        """Call after the last step of each epoch of :meth:`Framework.fine_tune` with a model
        handle that :meth:`Framework.evaluate` accepts. The host may evaluate it there (for
        time-to-accuracy); that time is excluded from the training clock."""


@dataclass(frozen=True)
class Runtime:
    """Process-wide settings the host fixes for one cell, the same for every framework."""

    device: str  # "cpu" or "gpu"
    precision: str  # one of PRECISIONS: "fp32", "tf32" (GPU only) or "bf16" (module doc)
    threads: int  # intra-op threads on CPU
    seed: int
    #: "highest" keeps float32 matmuls in full float32 (TF32 off on GPUs that have it) unless the
    #: precision is ``tf32``; anything else allows TF32 at any precision (:attr:`tf32`).
    matmul_precision: str = "highest"
    #: One of the adapter's :attr:`Framework.variants` (execution mode, e.g. eager or compiled).
    variant: str = ""
    #: How batches reach the model, one of :data:`FEEDS` the adapter lists in
    #: :attr:`Framework.feeds`: ``"device"`` (the default, the headline mode: the split staged on
    #: the model's device once per ``fine_tune``/``evaluate`` call, each batch gathered there by
    #: the host's indices) or ``"host"`` (an input pipeline in host memory: each batch gathered on
    #: the host in the host's order and moved to the device by the framework's own overlapped
    #: mechanism, the copy of step i+1 overlapping the compute of step i). Both give the same
    #: batches in the same order. Adapters that predate the field never read it: it has a default.
    feed: str = "device"

    @property
    def tf32(self) -> bool:
        """Whether float32 matmuls and convolutions may use TF32 tensor cores in this cell:
        precision ``tf32``, or a ``matmul_precision`` other than ``"highest"``. False at ``fp32``
        by default, so an fp32 number is a float32 number."""
        return self.precision == "tf32" or self.matmul_precision != "highest"


@dataclass(frozen=True)
class Support:
    """Whether an adapter can run a model on a device at a precision, and if not, why."""

    ok: bool
    reason: str = ""

    @classmethod
    def yes(cls) -> "Support":
        return cls(True)

    @classmethod
    def no(cls, reason: str) -> "Support":
        return cls(False, reason)


@dataclass(frozen=True)
class FrameworkInfo:
    """What an adapter reports about itself from inside the worker."""

    name: str
    versions: Mapping[str, str]  # package -> version, e.g. {"torch": "2.13.0+cpu"}
    devices: Sequence[str]  # devices usable in this process, e.g. ("cpu",) or ("cpu", "gpu")
    details: Mapping[str, Any] = field(default_factory=dict)  # threads, backend flags, ...


@dataclass(frozen=True)
class FineTuneConfig:
    """The optimiser and schedule; identical for every framework in a comparison.

    The optimiser formula is torch's ``Adam`` (``eps`` added outside the square root of the
    bias-corrected second moment, as optax does); adapters configure their framework to match.
    """

    learning_rate: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    freeze: str = "none"  # one of FREEZE_POLICIES



@dataclass
class FineTuneResult:
    """What ``fine_tune`` returns: the trained model handle and the loss of every step."""

    model: Any
    losses: Sequence[float]


class Framework(abc.ABC):
    """A framework adapter. Subclass it in a plugin and return an instance from
    :func:`zoo.hookspecs.zoo_frameworks`.

    Class attributes are read by the ``zoo`` command without importing the framework, so keep
    the framework import inside the methods (or in a module those methods import).
    """

    #: Short unique name used on the command line, e.g. ``"torch"``.
    name: str = ""
    #: Other names accepted on the command line, e.g. ``("pytorch",)``.
    aliases: tuple[str, ...] = ()
    #: Human-readable name for tables, e.g. ``"PyTorch"``.
    display_name: str = ""
    #: Distributions whose versions identify the framework build, read with importlib.metadata.
    packages: tuple[str, ...] = ()
    #: The :data:`zoo.CONTRACT_VERSION` this adapter implements (set it: the default is the
    #: oldest, 1, for adapters written before versions were declared).
    contract_version: int = 1
    #: ``False`` for inference-only runtimes (ONNX Runtime, TensorRT, ...): the host then never
    #: calls :meth:`fine_tune`, evaluates the loaded weights, and reports the training phase as
    #: not applicable. ``fine_tune`` may then raise ``NotImplementedError``.
    can_train: bool = True
    #: Execution modes, name -> one-line description; the first is the default. Chosen on the
    #: command line as ``name:variant`` (``torch:compile``) and passed in :attr:`Runtime.variant`.
    variants: Mapping[str, str] = {"default": "the framework's usual execution mode"}
    #: The :data:`FEEDS` this adapter implements (:attr:`Runtime.feed`); the host skips a cell of
    #: ``zoo bench --feed host`` whose adapter does not list ``"host"``, and says why.
    feeds: tuple[str, ...] = ("device",)

    def subprocess_env(self, runtime: Runtime) -> Mapping[str, str]:
        """Environment variables the worker process needs *before* the framework is imported
        (thread pools, GPU memory pre-allocation, log noise). Called in the ``zoo`` process."""
        return {}

    @abc.abstractmethod
    def supports(self, spec: ModelSpec, device: str, precision: str) -> Support:
        """Whether this adapter can build ``spec`` and run it on ``device`` at ``precision``.

        Called in the ``zoo`` process to plan the matrix: must not import the framework. Whether
        a GPU is actually present is checked later, in the worker, through :meth:`info`."""

    @abc.abstractmethod
    def prepare(self, runtime: Runtime) -> None:
        """Apply the cell's runtime settings (threads, seeds, matmul precision) before any
        other call. Called once per worker process, before the framework has done any work:
        some settings (TF's thread pools, XLA's CPU client) can only be set then."""

    @abc.abstractmethod
    def info(self) -> FrameworkInfo:
        """Versions and the devices usable *in this process* (a CPU cell may hide the GPUs
        from the framework, so do not read it as an inventory of the machine)."""

    @abc.abstractmethod
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
    ) -> Any:
        """Build ``spec`` for a task of ``input_shape`` (an image's ``(H, W, C)``; what the spec's
        methods take) with ``num_classes`` outputs, load ``weights`` (canonical layout by role,
        head already sized for ``num_classes`` by the host), place it on ``device`` and freeze
        the parameters that ``spec.trainable_names(freeze, input_shape, num_classes)`` excludes.
        Returns an opaque model handle that the other methods receive.

        The host calls this with keyword arguments (:func:`load_kwargs`). ``inputs``, the model's
        declared inputs (``spec.inputs(input_shape)``), is passed only to adapters declaring
        ``contract_version >= 3``; adapters of versions 1 and 2 leave it out of their signature.
        Give it a default (``None``: compute ``spec.inputs(input_shape)``) so tests may call
        the method without it."""

    @abc.abstractmethod
    def fine_tune(
        self, model: Any, data: TrainData, config: FineTuneConfig, meter: Meter
    ) -> FineTuneResult:
        """Train on ``data.batches()`` in order (``(x, y)``, ``x`` in the batch form: the array of
        a single-input model, a dict name -> array otherwise; :meth:`TrainData.input_batches`
        always gives dicts) with softmax cross-entropy (mean over the batch)
        and Adam as ``config`` says, timing each step with ``meter.step(len(y))`` and calling
        ``meter.end_epoch(model)`` after each epoch (``data.order`` holds the epochs). Only the trainable
        parameters change. Each call starts a fresh optimiser. The host continues with the
        returned ``FineTuneResult.model`` only; the handle passed in may be left as it was
        (functional frameworks) or updated in place (torch, Keras)."""

    @abc.abstractmethod
    def evaluate(self, model: Any, data: EvalData, meter: Meter) -> np.ndarray:
        """Run the model in inference mode on ``data.batches()`` (the batch form, as in
        :meth:`fine_tune`), timing each batch with ``meter.step(data.batch_size)``, and return
        float32 logits of shape ``(data.num_rows, num_classes)`` = ``(len(order) * batch_size,
        num_classes)`` in batch order."""

    @abc.abstractmethod
    def export_weights(self, model: Any) -> dict[str, np.ndarray]:
        """Return all parameters as canonical float32 NumPy arrays (the inverse of loading)."""

    def memory(self, device: str) -> dict[str, int]:
        """Framework allocator statistics in bytes for ``device``, as ``{"peak_bytes": ...}``
        (the allocator's peak since the last :meth:`reset_memory_peak` that returned ``True``,
        else since the worker process started: one cell per process, so then it is the cell's
        peak). The host measures process memory itself; return ``{}`` where the framework has
        nothing to add (CPU)."""
        return {}

    def reset_memory_peak(self, device: str) -> bool:
        """Reset the allocator's peak for ``device`` so the next :meth:`memory` reports the peak
        since this call: the host calls it at the start of every measured phase (load, fine-tune,
        inference throughput, latency, training throughput) to get per-phase device peaks. Return ``True`` when the peak was
        reset, ``False`` (the default) when the framework cannot reset it; the host then
        records the phase's figure as the peak since the process started, and says so."""
        return False


def precision_support(device: str, precision: str) -> Support:
    """Whether ``precision`` exists on ``device`` at all, whatever the framework: ``tf32`` only
    on a GPU (:data:`GPU_PRECISIONS`). Adapters call it from :meth:`Framework.supports` (and
    ``prepare``) so every framework refuses a CPU ``tf32`` cell with the same reason."""
    if device != "gpu" and precision in GPU_PRECISIONS:
        return Support.no(GPU_PRECISIONS[precision])
    return Support.yes()


def model_precision(precision: str) -> str:
    """The precision a model is *built* at for the cell precision ``precision``: ``tf32`` builds
    the ``fp32`` model (float32 tensors everywhere; only the matmul mode differs, set in
    ``prepare``), the others build themselves."""
    return "fp32" if precision == "tf32" else precision


def input_support(adapter: Framework, inputs: Sequence[InputSpec]) -> Support:
    """Whether the contract ``adapter`` declares can take a model with ``inputs`` at all (before
    its own :meth:`Framework.supports`): adapters older than :data:`INPUTS_CONTRACT` know only a
    single NHWC image input. The host asks this while planning, in the ``zoo`` process."""
    if adapter.contract_version >= INPUTS_CONTRACT or is_single_image(inputs):
        return Support.yes()
    return Support.no(
        f"{adapter.name} implements contract version {adapter.contract_version}, which knows only one NHWC "
        f"image input; this model consumes {describe(inputs)}: it needs an adapter of contract version "
        f"{INPUTS_CONTRACT} or later (upgrade the plugin)")


def load_kwargs(
    adapter: Framework,
    *,
    spec: ModelSpec,
    weights: Weights,
    input_shape: tuple[int, ...],
    num_classes: int,
    device: str,
    precision: str,
    freeze: str,
    inputs: Sequence[InputSpec] | None = None,
) -> dict[str, Any]:
    """The keyword arguments to call ``adapter.load_pretrained(**kwargs)`` with, by the rule of
    the module docstring: ``inputs`` (default ``spec.inputs(input_shape)``) is added only for
    adapters declaring contract version 3 or later, so an adapter written for version 2 never
    receives a keyword its signature lacks. Raises ``ValueError`` (saying what to upgrade) when
    an older adapter would be handed a model whose inputs are not one image."""
    declared = tuple(spec.inputs(tuple(input_shape)) if inputs is None else inputs)
    support = input_support(adapter, declared)
    if not support.ok:
        raise ValueError(f"model {spec.name!r}: {support.reason}")
    kwargs: dict[str, Any] = dict(spec=spec, weights=weights, input_shape=tuple(input_shape), num_classes=num_classes,
                                  device=device, precision=precision, freeze=freeze)
    if adapter.contract_version >= INPUTS_CONTRACT:
        kwargs["inputs"] = declared
    return kwargs
