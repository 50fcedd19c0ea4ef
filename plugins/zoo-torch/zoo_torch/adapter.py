"""The PyTorch framework adapter. torch is imported inside the methods, never at import time,
so ``zoo --help`` and ``zoo plugins`` stay fast.

GPU cells (none measured yet; the CPU tests cover the code paths that do not need a device):

* synchronisation: :func:`synchronize` at the synchronised steps, ``torch.cuda.synchronize`` and
  nothing else: no ``.item()``, ``.cpu()`` or ``float(loss)`` inside a timed step (the losses and
  logits stay on the device and go to the host once, after the loop), and no host-to-device copy
  either (:class:`Feed` stages the split and each epoch's indices before the first step; at
  ``--feed host`` :class:`HostFeed` copies each batch from pinned memory on a side stream, one
  step ahead, by design);
* ``torch.backends.cudnn.benchmark = True`` (cuDNN times its convolution algorithms for each new
  shape and keeps the fastest, as a user timing fixed shapes would; the search runs in the first
  steps, which the host's warm-up detection sees), recorded in ``info().details["autotune"]``;
* precision ``tf32``: ``set_float32_matmul_precision("high")`` and ``cudnn.allow_tf32 = True``;
  ``fp32`` keeps both off (``"highest"``);
* per-phase allocator peaks: :meth:`TorchFramework.reset_memory_peak` resets
  ``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from zoo.contract import (
    PRECISIONS,
    EvalData,
    FineTuneConfig,
    FineTuneResult,
    Framework,
    FrameworkInfo,
    Meter,
    Runtime,
    Support,
    TrainData,
    precision_support,
)
from zoo.models import BertSpec, CNNSpec, EfficientNetLiteSpec, InputSpec, MLPSpec, ModelSpec, ParamSpec, ResNetSpec
from zoo.plugin_host import import_object

#: Model family -> the torch module class that builds it, as "module:class" (imported only when
#: a model is built, so planning never imports torch). The one list of what zoo-torch builds:
#: ``supports`` and ``load_pretrained`` both read it.
FAMILIES: Mapping[str, str] = {
    MLPSpec.family: "zoo_torch.modules:MLP",
    CNNSpec.family: "zoo_torch.modules:CNN",
    ResNetSpec.family: "zoo_torch.resnet:ResNet",
    EfficientNetLiteSpec.family: "zoo_torch.efficientnet:EfficientNetLite",
    BertSpec.family: "zoo_torch.bert:Bert",
}


def builder(family: str) -> Callable[..., Any]:
    """The module class of ``family`` (``cls(spec, input_shape, num_classes)``), from :data:`FAMILIES`."""
    return import_object(FAMILIES[family])


#: What autocast runs in bfloat16 in the zoo's modules (torch's CPU/CUDA autocast op lists);
#: BatchNorm takes bfloat16 in and out but computes in float32 (:mod:`zoo_torch.resnet`).
BF16_OPS = ("linear", "conv2d")

#: How batches reach the model, the same words in zoo-torch, zoo-tf and zoo-jax (``info().details["feed"]``).
FEED = "device-resident: split staged once per call, batches gathered by the host's indices"
#: The host-pipeline feed (``zoo bench --feed host``): the same first words in zoo-torch, zoo-tf and
#: zoo-jax, then each framework's mechanism (:data:`HOST_FEED_CUDA`, :data:`HOST_FEED_CPU`).
HOST_FEED = "host pipeline: batches gathered on the host in the host's order"
HOST_FEED_CUDA = (f"{HOST_FEED}, pinned and copied non_blocking on a side CUDA stream one step ahead "
                  "(the compute stream waits on it)")
HOST_FEED_CPU = f"{HOST_FEED}, inside each step (the CPU is the device: no copy)"
#: What ``info().details["autotune"]`` says on a CPU cell, in zoo-torch, zoo-tf and zoo-jax.
NOT_ON_CPU = "not applicable: CPU cell"


@dataclass
class TorchModel:
    """The handle the host passes between calls."""

    module: Any  # torch.nn.Module
    device: Any  # torch.device
    names: Mapping[str, str]  # canonical -> torch parameter or buffer name
    trainable: frozenset[str]  # canonical names
    forward: Any = None  # the module, or its torch.compile'd version (variant "compile")
    params: Mapping[str, ParamSpec] = field(default_factory=dict)  # canonical name -> spec (its role)


class TorchFramework(Framework):
    name = "torch"
    aliases = ("pytorch",)
    display_name = "PyTorch"
    packages = ("torch",)
    contract_version = 3
    feeds = ("device", "host")  # zoo.contract.Runtime.feed: Feed and HostFeed
    variants = {
        "eager": "eager PyTorch (default)",
        "compile": "torch.compile (inductor) of the model; compilation shows up in compile_s",
    }

    def __init__(self) -> None:
        self.variant = "eager"
        self.precision = "fp32"
        self.device = "cpu"
        self.feed = "device"

    def supports(self, spec: ModelSpec, device: str, precision: str) -> Support:
        if spec.family not in FAMILIES:
            return Support.no(f"zoo-torch has no builder for model family {spec.family!r}")
        if precision not in PRECISIONS:
            return Support.no(f"precision {precision!r} is not implemented in zoo-torch")
        if device not in ("cpu", "gpu"):
            return Support.no(f"unknown device {device!r}")
        return precision_support(device, precision)

    def prepare(self, runtime: Runtime) -> None:
        support = precision_support(runtime.device, runtime.precision)
        if not support.ok:
            raise ValueError(support.reason)
        import torch

        self.variant = runtime.variant or "eager"
        self.precision, self.device = runtime.precision, runtime.device
        if runtime.feed not in self.feeds:
            raise ValueError(f"zoo-torch has no feed {runtime.feed!r}; it implements: {', '.join(self.feeds)}")
        self.feed = runtime.feed
        torch.set_num_threads(runtime.threads)
        torch.manual_seed(runtime.seed)
        # One float32 policy for every framework: full-precision matmuls, no TF32, except at
        # precision tf32 ("high" lets cuBLAS use TF32; cudnn.allow_tf32 does it for convolutions).
        torch.set_float32_matmul_precision("high" if runtime.tf32 else "highest")
        torch.backends.cudnn.allow_tf32 = runtime.tf32
        # cuDNN picks the fastest convolution algorithm for each new shape (module doc); a CPU
        # cell uses no cuDNN and leaves torch's default.
        if runtime.device == "gpu":
            torch.backends.cudnn.benchmark = True
        # The process's first torch.optim optimiser imports torch._dynamo (about 1-2 s, measured
        # 0.97 s on the 2-core VM): a one-time import, paid here like TF's and JAX's imports, so
        # compile_s (from fine_tune's start) holds no import in any framework.
        torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])

    def info(self) -> FrameworkInfo:
        import torch

        devices = ["cpu"] + (["gpu"] if torch.cuda.is_available() else [])
        details: dict[str, Any] = {
            "intra_op_threads": torch.get_num_threads(),
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
            # TF32 for float32 matmuls (cuBLAS, "high") and convolutions (cuDNN): precision tf32 only
            "tf32": torch.get_float32_matmul_precision() != "highest",
            "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
            "autotune": {"cudnn_benchmark": bool(torch.backends.cudnn.benchmark) if self.device == "gpu"
                         else NOT_ON_CPU},
            "variant": self.variant,
            "bf16_ops": list(BF16_OPS) if self.precision == "bf16" else [],
            # zoo_torch.adapter.Feed: the split on the model's device once per call, a contiguous
            # slice per step from one index_select per chunk of steps
            # zoo_torch.adapter.HostFeed at feed "host"
            "feed": FEED if self.feed == "device" else HOST_FEED_CUDA if self.device == "gpu" else HOST_FEED_CPU,
        }
        if torch.cuda.is_available():
            details["gpu_name"] = torch.cuda.get_device_name(0)
        return FrameworkInfo(
            name=self.name,
            versions={"torch": metadata.version("torch")},
            devices=devices,
            details=details,
        )

    def load_pretrained(self, spec: ModelSpec, weights: Mapping[str, np.ndarray], input_shape: tuple[int, ...],
                        num_classes: int, device: str, precision: str, freeze: str,
                        inputs: Sequence[InputSpec] | None = None) -> TorchModel:
        import torch

        from zoo_torch.modules import load_canonical

        if spec.family not in FAMILIES:
            raise ValueError(f"zoo-torch cannot build model family {spec.family!r}; it builds {', '.join(FAMILIES)}")
        spec.check_weights(weights, input_shape, num_classes)
        module = builder(spec.family)(spec, input_shape, num_classes)
        specs = {p.name: p for p in spec.parameters(input_shape, num_classes)}
        names = load_canonical(module, weights, specs)
        trainable = spec.trainable_names(freeze, input_shape, num_classes)
        params = dict(module.named_parameters())  # BatchNorm statistics are buffers: never trained
        for canonical, key in names.items():
            if key in params:
                params[key].requires_grad_(canonical in trainable)
        module.bf16 = precision == "bf16"
        torch_device = torch.device("cuda" if device == "gpu" else "cpu")
        module = module.to(torch_device)
        forward = torch.compile(module) if self.variant == "compile" else module
        return TorchModel(module, torch_device, names, trainable, forward, specs)

    def fine_tune(self, model: TorchModel, data: TrainData, config: FineTuneConfig, meter: Meter) -> FineTuneResult:
        import torch
        import torch.nn.functional as F

        module, device = model.module, model.device
        params = [p for p in module.parameters() if p.requires_grad]
        # torch's Adam is the reference formula of FineTuneConfig; weight_decay is L2 in the gradient.
        optimizer = torch.optim.Adam(
            params,
            lr=config.learning_rate,
            betas=(config.beta1, config.beta2),
            eps=config.eps,
            weight_decay=config.weight_decay,
        )
        module.train()  # a ResNet keeps its frozen BatchNorms in eval mode (zoo_torch.resnet)
        feed = self._feed(data.inputs, device, data.batch_size, labels=data.y)  # the split, staged once (device)
        forward = model.forward
        losses = []
        for epoch in data.order:
            batches = feed.epoch(epoch)
            for idx in epoch:
                with meter.step(len(idx)) as sync:
                    xb, yb = next(batches)  # a slice of the staged split (one gather per chunk of steps)
                    optimizer.zero_grad(set_to_none=True)
                    loss = F.cross_entropy(forward(xb), yb)
                    loss.backward()
                    optimizer.step()
                    if sync is not False:
                        synchronize(device)  # waits for the queued kernels; copies nothing
                losses.append(loss.detach())  # stays on the device: one copy after the loop
            meter.end_epoch(model)
            module.train()  # the host may have evaluated (eval mode) at the epoch's end
        return FineTuneResult(model, [float(v) for v in torch.stack(losses).cpu()] if losses else [])

    def evaluate(self, model: TorchModel, data: EvalData, meter: Meter) -> np.ndarray:
        import torch

        module, device = model.module, model.device
        module.eval()
        feed = self._feed(data.inputs, device, data.batch_size)  # the split, staged once (device)
        forward, batch_size = model.forward, data.batch_size
        outputs = []
        with torch.inference_mode():
            batches = feed.epoch(data.order)
            for _ in data.order:
                with meter.step(batch_size) as sync:
                    logits = forward(next(batches))
                    if sync is not False:
                        synchronize(device)  # waits for the queued kernels; copies nothing
                outputs.append(logits)
            # One copy to host at the end: per step, .float().cpu().numpy() cost a few percent of
            # a small model's step (the logits are float32 already: the head computes in float32).
            return torch.cat(outputs).float().cpu().numpy()

    def _feed(self, inputs: Mapping[str, np.ndarray], device: Any, batch_size: int,
              labels: np.ndarray | None = None) -> "Feed | HostFeed":
        """The feed of this cell (:attr:`Runtime.feed`): :class:`Feed` (device-resident) or
        :class:`HostFeed` (host pipeline); both yield the same batches from ``epoch(order)``."""
        kind = HostFeed if self.feed == "host" else Feed
        return kind(inputs, device, batch_size, labels=labels)

    def export_weights(self, model: TorchModel) -> dict[str, np.ndarray]:
        from zoo_torch.modules import export_canonical

        return export_canonical(model.module, model.names, model.params)

    def memory(self, device: str) -> dict[str, int]:
        if device != "gpu":
            return {}
        import torch

        return {"peak_bytes": int(torch.cuda.max_memory_allocated())}  # since the last reset

    def reset_memory_peak(self, device: str) -> bool:
        if device != "gpu":
            return False  # memory() has no CPU allocator figure; the host measures the process
        import torch

        if not torch.cuda.is_available():
            return False
        torch.cuda.reset_peak_memory_stats()  # max_memory_allocated() restarts from what is allocated now
        return True


def synchronize(device: Any) -> None:
    """Wait until the work queued on ``device`` (a ``torch.device``) is done, without copying
    anything: ``torch.cuda.synchronize`` on CUDA; nothing on the CPU, whose ops are synchronous
    (an op returns when its result exists). Called at the synchronised steps of ``fine_tune``
    and ``evaluate``, inside ``meter.step``."""
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


class Feed:
    """The split of one ``fine_tune`` or ``evaluate`` call, staged once on the model's device,
    and its batches in the host's order (:data:`FEED`).

    Staging: one tensor per input (and the labels), ``torch.from_numpy`` of the host's array: on
    the CPU no copy at all, on a GPU one copy from pinned memory; the indices of an epoch's
    order, once per :meth:`epoch` call, before its first step. Batches: every
    :data:`CHUNK_STEPS` steps (fewer for big examples, :data:`CHUNK_BYTES`), the indices of the
    next steps are gathered in one ``index_select`` per tensor into a contiguous block, and each
    step takes its contiguous slice of the block. So a step is a slice, not an index gather and
    no conversion, and the gather of a chunk runs inside the first step of the chunk (inside its
    ``meter.step``: timed, as the work of that step). The block holds exactly the rows of the
    host's index arrays in their order, repeats and padding included."""

    def __init__(self, inputs: Mapping[str, np.ndarray], device: Any, batch_size: int,
                 labels: np.ndarray | None = None):
        arrays = dict(inputs)
        if labels is not None:
            arrays[LABELS] = labels.astype(np.int64, copy=False)
        self.tensors = {name: _stage(array, device) for name, array in arrays.items()}
        self.names = tuple(inputs)
        self.labels = labels is not None
        self.device = device
        row_bytes = sum(array[:1].nbytes for array in arrays.values()) or 1
        self.chunk = max(1, min(CHUNK_STEPS, CHUNK_BYTES // (row_bytes * max(1, batch_size))))

    def epoch(self, order: Sequence[np.ndarray]) -> Iterator[Any]:
        """The batches of ``order`` (one index array per step): the batch form of the inputs
        (a tensor for one input, a dict for several), with the labels as ``(x, y)`` in training.

        The whole order's indices go to the device here, once, when ``epoch`` is called (before
        the first step, outside the timed steps); the batches then come from device tensors
        only, with no host-to-device copy inside a step."""
        import torch

        rows = np.concatenate(order).astype(np.int64, copy=False) if len(order) else np.zeros(0, np.int64)
        index = torch.from_numpy(rows)
        if self.device.type != "cpu":
            index = index.to(self.device)  # pageable and small: one synchronous copy, now
        return self._batches(order, index)

    def _batches(self, order: Sequence[np.ndarray], index: Any) -> Iterator[Any]:
        """The batches of :meth:`epoch`, from ``index`` (all of ``order``'s rows, on the device)."""
        single = len(self.names) == 1
        only = self.names[0]
        first = 0  # the position in ``index`` of the chunk's first row
        for start in range(0, len(order), self.chunk):
            steps = order[start:start + self.chunk]
            size = sum(len(idx) for idx in steps)
            chunk = index[first:first + size]
            first += size
            block = {name: t.index_select(0, chunk) for name, t in self.tensors.items()}
            end = 0
            for idx in steps:
                begin, end = end, end + len(idx)
                x = block[only][begin:end] if single else {n: block[n][begin:end] for n in self.names}
                yield (x, block[LABELS][begin:end]) if self.labels else x


#: Steps whose batches one gather fetches (:class:`Feed`), and the most bytes that gather may copy.
CHUNK_STEPS = 64
CHUNK_BYTES = 16 * 2**20
#: The key of the labels among :class:`Feed`'s tensors (not a valid input name: it has a space).
LABELS = "labels (y)"


def _stage(array: np.ndarray, device: Any) -> Any:
    """``array`` as a tensor on ``device``: shared with NumPy on the CPU (never written: batches
    are gathered copies), one pinned, non-blocking copy on a GPU."""
    import torch

    with warnings.catch_warnings():  # a read-only host array is only ever read
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        tensor = torch.from_numpy(np.ascontiguousarray(array))
    if device.type == "cpu":
        return tensor
    if device.type == "cuda":
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)


class HostFeed:
    """The host-pipeline feed (``zoo bench --feed host``, :data:`HOST_FEED`): the split stays in
    host memory and each step's batch is gathered there, by the host's index array, in its order
    (repeats and padding included: the same batches as :class:`Feed`).

    On a GPU the best practice of a PyTorch input pipeline (NVIDIA's ``data_prefetcher``): the
    batch is gathered into pinned memory and copied with ``non_blocking=True`` on a side
    ``torch.cuda.Stream`` one step ahead, so the copy of step i+1 overlaps the compute of step i;
    the compute stream waits on the side stream (``wait_stream``) before it uses a batch, and the
    batch's tensors are marked as used by the compute stream (``record_stream``) so the caching
    allocator does not reuse their memory early. On the CPU, the CPU being the device, the gather
    is the whole feed and runs inside the step that uses the batch (inside its ``meter.step``)."""

    def __init__(self, inputs: Mapping[str, np.ndarray], device: Any, batch_size: int,
                 labels: np.ndarray | None = None):
        arrays = dict(inputs)
        if labels is not None:
            arrays[LABELS] = labels.astype(np.int64, copy=False)
        self.arrays = {name: np.ascontiguousarray(array) for name, array in arrays.items()}
        self.names = tuple(inputs)
        self.labels = labels is not None
        self.device = device
        self.batch_size = batch_size

    def epoch(self, order: Sequence[np.ndarray]) -> Iterator[Any]:
        """The batches of ``order`` (one index array per step), in the form of :meth:`Feed.epoch`:
        a tensor for one input, a dict for several, ``(x, y)`` with labels. Each is gathered on
        the host when the step asks for it (CPU), or one step ahead and copied on a side stream
        (CUDA)."""
        if self.device.type == "cuda":
            return self._prefetched(order)
        return (self._form(self._gather(idx)) for idx in order)

    def _gather(self, idx: np.ndarray) -> dict[str, Any]:
        """The rows ``idx`` of every array, gathered on the host (a fresh array: NumPy's
        fancy index), as tensors sharing that memory."""
        import torch

        return {name: torch.from_numpy(array[idx]) for name, array in self.arrays.items()}

    def _form(self, tensors: Mapping[str, Any]) -> Any:
        """``tensors`` (name -> batch) in the batch form the steps take."""
        x = tensors[self.names[0]] if len(self.names) == 1 else {n: tensors[n] for n in self.names}
        return (x, tensors[LABELS]) if self.labels else x

    def _prefetched(self, order: Sequence[np.ndarray]) -> Iterator[Any]:
        """CUDA: batch i+1 is gathered into pinned memory and its copy queued on the side stream
        right after batch i is handed to its step (before the step queues its kernels)."""
        import torch

        stream = torch.cuda.Stream(device=self.device)

        def issue(idx: np.ndarray) -> dict[str, Any]:
            pinned = {name: t.pin_memory() for name, t in self._gather(idx).items()}
            with torch.cuda.stream(stream):
                return {name: t.to(self.device, non_blocking=True) for name, t in pinned.items()}

        pending = issue(order[0]) if len(order) else None
        for step in range(len(order)):
            compute = torch.cuda.current_stream(self.device)
            compute.wait_stream(stream)  # the batch's copy is done before the step's kernels read it
            batch = pending
            for tensor in batch.values():
                tensor.record_stream(compute)  # made on the side stream, used on the compute stream
            pending = issue(order[step + 1]) if step + 1 < len(order) else None
            yield self._form(batch)
