"""The JAX/Flax framework adapter. jax, flax and optax are imported inside the methods (and by
the modules those methods import), never at import time, so ``zoo --help`` stays fast.

CPU threads: in jaxlib 0.10 the intra-op parallelism of XLA:CPU is the ``XLAEigen`` thread pool
of the PjRt CPU client, sized once, when the client is created, from the ``PJRT_NPROC``
environment variable or, without it, the process's CPU affinity (XLA ``DefaultThreadPoolSize``).
Measured: ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false`` no longer keeps matmuls single-threaded;
``intra_op_parallelism_threads=1`` (no ``--``) is a TensorFlow session option that XLA silently
ignores. So the adapter sets ``PJRT_NPROC``; the host may also pin affinity. Other threads
(compilation, the client's dispatch pool) still exist but do no model arithmetic.

Variants: ``jit`` (default) and ``sync``. On CPU, jaxlib runs a jitted computation on a thread of
its own and returns at once (async dispatch), so Python can prepare the next step meanwhile; a
caller that waits for every result (batch-1 latency) then pays a thread hand-off per call, which
on the 2-core development VM made the batch-1 MLP latency vary between processes from 14 to 75 us.
``sync`` sets ``jax_cpu_enable_async_dispatch=False`` before the CPU client exists: the computation
runs on the calling thread. It is the same program with the same numbers.

An op-by-op ``nojit`` variant (the same step functions called without ``jax.jit``) was measured
and left out: it matches ``jit`` to ~1e-7 relative after an Adam step but
is 25-130x slower per step on the zoo's models (31 ms vs 0.3 ms for the MLP on 2 CPU cores),
almost all of it Flax linen's per-call Python (``Dense.apply`` alone takes 2-5 ms eagerly), so
it would measure Flax's bookkeeping rather than JAX's execution.

Precision ``bf16``: see :mod:`zoo_jax.modules`. ``jax_default_matmul_precision="highest"`` does not
upcast bfloat16 dots and convs: the program jax emits keeps their operands and results bfloat16
(the tests check the lowered StableHLO). XLA:CPU (jaxlib 0.10) then computes such a dot in
float32 arithmetic on the bf16-rounded operands and rounds the result to bf16, whatever the
matmul precision: bf16 numerics, but on CPU slower than fp32 (extra converts), not faster.

``meter.end_epoch`` receives a handle whose trainable arrays are copies of the training state
(the next step donates the originals), so the host may keep and evaluate it at any time; after
the last epoch it receives the handle that ``fine_tune`` returns.

GPU cells (none measured yet; the CPU tests cover what does not need a device):

* synchronisation: :func:`synchronize` (``jax.block_until_ready``) at the synchronised steps;
  nothing is copied to the host inside a step (losses and logits go to the host once, after the
  loop);
* memory (:data:`GPU_MEMORY_ENV`): no pre-allocation, XLA's BFC allocator growing on demand up to
  :data:`GPU_MEMORY_FRACTION` of the device. Without an explicit fraction the cap is 75 %, so a
  model that fits torch (whose caching allocator may use the whole device) would fail under JAX;
  with pre-allocation ``peak_bytes_in_use`` would still be honest but the process would hold the
  whole pool from the start. The platform allocator (exact cudaMalloc/cudaFree per buffer) would
  make the peak exact too, but costs a device synchronisation per free and so distorts the step
  times. The BFC pool's ``peak_bytes_in_use`` counts live buffers, the same quantity as torch's
  ``max_memory_allocated`` and TensorFlow's ``peak``; a user's own ``XLA_PYTHON_CLIENT_*`` /
  ``XLA_CLIENT_MEM_FRACTION`` settings are left as they are, and ``info()`` records what applied;
* per-phase allocator peaks: none. jaxlib 0.10 has no call that resets ``peak_bytes_in_use``
  (``Device.memory_stats()`` only reads; the allocator's ``ClearStats`` is not exposed), so
  :meth:`JaxFramework.reset_memory_peak` returns False and the host records the figure as the
  peak since the process started;
* autotuning: XLA autotunes GEMMs and convolutions at ``--xla_gpu_autotune_level`` (default 4:
  with correctness checks), during compilation, which is in the first step's time; recorded;
* precision ``tf32``: ``jax_default_matmul_precision="tensorfloat32"`` (``fp32`` sets "highest":
  jax's own GPU default would use TF32 on Ampere and newer).
"""

from __future__ import annotations

import collections
import itertools
import os
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Iterator, Mapping, Sequence

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
from zoo.models import InputSpec, ModelSpec
from zoo.models.inputs import batch_form

from zoo_jax.families import FAMILIES  # the one list of what zoo-jax builds

#: Environment variables read when jax creates its backends, recorded by :meth:`JaxFramework.info`.
ENV_KEYS = ("PJRT_NPROC", "JAX_PLATFORMS", "XLA_PYTHON_CLIENT_PREALLOCATE", "XLA_PYTHON_CLIENT_MEM_FRACTION",
            "XLA_CLIENT_MEM_FRACTION", "XLA_PYTHON_CLIENT_ALLOCATOR", "XLA_FLAGS")
PRECISIONS = ("fp32", "tf32", "bf16")
#: The share of the device XLA's allocator may grow to in a GPU cell (module doc): a cap, not a
#: reservation; the rest is left for the CUDA context and libraries' handles outside the pool.
GPU_MEMORY_FRACTION = "0.95"
#: A GPU cell's memory policy (module doc). ``XLA_PYTHON_CLIENT_MEM_FRACTION`` is the name every
#: jaxlib reads (0.10 also reads ``XLA_CLIENT_MEM_FRACTION`` and refuses both at once).
GPU_MEMORY_ENV = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false", "XLA_PYTHON_CLIENT_ALLOCATOR": "bfc",
                  "XLA_PYTHON_CLIENT_MEM_FRACTION": GPU_MEMORY_FRACTION}
#: What ``info().details["autotune"]`` says on a CPU cell, in zoo-torch, zoo-tf and zoo-jax.
NOT_ON_CPU = "not applicable: CPU cell"
#: XLA's ``xla_gpu_autotune_level`` when ``XLA_FLAGS`` does not set it (DebugOptions default).
XLA_AUTOTUNE_DEFAULT = 4
#: How batches reach the model, the same words in zoo-torch, zoo-tf and zoo-jax (``info().details["feed"]``).
FEED = "device-resident: split staged once per call, batches gathered by the host's indices"
#: The host-pipeline feed (``zoo bench --feed host``), the same first words in the three plugins.
HOST_FEED = "host pipeline: batches gathered on the host in the host's order"
HOST_FEED_JAX = (f"{HOST_FEED}, jax.device_put of batch i+1 issued before step i runs "
                 "(a 2-deep prefetch, as flax's prefetch_to_device)")
#: Batches :func:`prefetch` keeps on the device ahead of the step (flax's ``prefetch_to_device``'s default).
PREFETCH = 2
#: The jax option behind the ``sync`` variant (module doc).
ASYNC_FLAG = "jax_cpu_enable_async_dispatch"


@dataclass
class JaxModel:
    """The handle the host passes between calls. ``params`` maps canonical names to float32
    arrays on ``device``; a fine-tune returns a new handle and leaves this one valid. Every
    handle zoo-jax gives out, including those passed to ``meter.end_epoch``, owns buffers that
    no later step donates, so it stays valid for as long as the host keeps it."""

    module: Any  # flax.linen.Module (its ``dtype`` is the backbone's compute dtype)
    params: dict[str, Any]  # canonical name -> jax.Array (BatchNorm running statistics included)
    trainable: frozenset[str]  # canonical names
    device: Any  # jax.Device
    updated: frozenset[str] = frozenset()  # running statistics a fine-tune updates


class JaxFramework(Framework):
    name = "jax"
    aliases = ("flax",)
    display_name = "JAX/Flax"
    packages = ("jax", "jaxlib", "flax", "optax")
    contract_version = 3
    feeds = ("device", "host")  # zoo.contract.Runtime.feed: stage_order + *_at steps, or prefetch + *_on steps
    variants = {
        "jit": "jax.jit of the train and inference steps (default)",
        "sync": "jax.jit with CPU async dispatch off: each step runs on the calling thread "
                "(steadier CPU batch-1 latency, no overlap of Python and compute); CPU only",
    }

    def __init__(self) -> None:
        self.variant = next(iter(self.variants))  # until prepare() says otherwise
        self.precision = ""  # the runtime's, once prepared (for info's bf16_ops)
        self.device = "cpu"  # the runtime's, once prepared
        self.feed = "device"  # the runtime's, once prepared

    def subprocess_env(self, runtime: Runtime) -> Mapping[str, str]:
        # GPU: grow on demand up to an explicit cap (module doc); CPU: no GPU pool, should a
        # GPU be probed after all.
        env = gpu_memory_env(os.environ) if runtime.device == "gpu" else {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
        if runtime.threads > 0:
            env["PJRT_NPROC"] = str(runtime.threads)  # sizes XLA:CPU's intra-op pool (module doc)
        if runtime.device == "cpu":
            env["JAX_PLATFORMS"] = "cpu"  # do not probe for GPUs
        return env

    def supports(self, spec: ModelSpec, device: str, precision: str) -> Support:
        if spec.family not in FAMILIES:
            return Support.no(f"zoo-jax has no builder for model family {spec.family!r}")
        if precision not in PRECISIONS:
            return Support.no(f"precision {precision!r} is not implemented in zoo-jax")
        if device not in ("cpu", "gpu"):
            return Support.no(f"unknown device {device!r}")
        return precision_support(device, precision)

    def prepare(self, runtime: Runtime) -> None:
        variant = runtime.variant or next(iter(self.variants))
        if variant not in self.variants:
            raise ValueError(f"zoo-jax has no variant {variant!r}; it has {', '.join(self.variants)}")
        support = precision_support(runtime.device, runtime.precision)
        if not support.ok:
            raise ValueError(support.reason)
        if variant == "sync" and runtime.device != "cpu":  # refused before anything is changed
            raise ValueError("the jax 'sync' variant only changes how XLA:CPU dispatches; on a GPU use plain 'jax'")
        if runtime.feed not in self.feeds:
            raise ValueError(f"zoo-jax has no feed {runtime.feed!r}; it implements: {', '.join(self.feeds)}")
        self.variant, self.precision, self.device = variant, runtime.precision, runtime.device
        self.feed = runtime.feed
        # Normally already in the worker's environment; these still apply if the backends
        # have not been created yet (they are created lazily, on first use).
        for key, value in self.subprocess_env(runtime).items():
            os.environ.setdefault(key, value)
        import jax

        # One float32 policy for every framework: no TF32 / bf16 passes in float32 matmuls and
        # convs, except at precision tf32. It does not upcast bfloat16 ones (precision bf16):
        # those have bf16 operands.
        jax.config.update("jax_default_matmul_precision", "tensorfloat32" if runtime.tf32 else "highest")
        if ASYNC_FLAG in jax.config.values:
            # Read when the CPU client is created, so this must come before the first computation.
            jax.config.update(ASYNC_FLAG, variant != "sync")
        elif variant == "sync":
            raise ValueError(f"this jax ({jax.__version__}) has no {ASYNC_FLAG} option; upgrade jax for the 'sync' variant")

    def info(self) -> FrameworkInfo:
        import jax

        from zoo_jax.modules import BF16_OPS

        gpu = _gpu()
        devices = ["cpu"] + (["gpu"] if gpu is not None else [])
        details: dict[str, Any] = {
            "variant": self.variant,
            # What runs in bfloat16 in this cell: nothing at fp32 (or before prepare).
            "bf16_ops": list(BF16_OPS) if self.precision == "bf16" else [],
            "default_backend": jax.default_backend(),
            "default_matmul_precision": str(jax.config.jax_default_matmul_precision),
            "cpu_async_dispatch": bool(jax.config.values.get(ASYNC_FLAG, True)),
            # XLA:CPU's intra-op pool size, by jaxlib's rule (PJRT_NPROC, else the CPU affinity).
            "intra_op_threads": _intra_op_threads(),
            "intra_op_threads_from": "PJRT_NPROC" if os.environ.get("PJRT_NPROC", "").isdigit() else "cpu affinity",
            "env": {key: os.environ[key] for key in ENV_KEYS if key in os.environ},
            "tf32": str(jax.config.jax_default_matmul_precision) in ("tensorfloat32", "high"),
            "gpu_memory": self._gpu_memory(),
            "autotune": {"xla_gpu_autotune_level": _autotune_level() if self.device == "gpu" else NOT_ON_CPU},
            # the split on the device once per call, each epoch's index arrays too; the jitted
            # step gathers its batch (zoo_jax.steps.train_step_at, forward_at)
            # at feed "host": zoo_jax.adapter.prefetch and the *_on steps, which take the batch
            "feed": FEED if self.feed == "device" else HOST_FEED_JAX,
        }
        if gpu is not None:
            details["gpu_name"] = gpu.device_kind
        return FrameworkInfo(
            name=self.name,
            versions={pkg: metadata.version(pkg) for pkg in self.packages},
            devices=devices,
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
    ) -> JaxModel:
        import jax

        from zoo_jax.modules import build_module, canonical_to_flat

        support = self.supports(spec, device, precision)
        if not support.ok:
            raise ValueError(support.reason)
        spec.check_weights(weights, input_shape, num_classes)
        trainable = spec.trainable_names(freeze, input_shape, num_classes)
        updated = spec.updated_state_names(freeze, input_shape, num_classes)
        # BatchNorm layers whose scale trains use batch statistics in fine_tune; the others, none.
        module = build_module(spec, num_classes, model_precision(precision),
                              frozenset(n.rsplit(".", 1)[0] for n in updated))
        jax_device = _device(device)
        declared = tuple(spec.inputs(tuple(input_shape)) if inputs is None else inputs)
        params = jax.device_put(canonical_to_flat(module, weights, declared), jax_device)
        return JaxModel(module, params, trainable, jax_device, updated)

    def fine_tune(self, model: JaxModel, data: TrainData, config: FineTuneConfig, meter: Meter) -> FineTuneResult:
        import jax
        import jax.numpy as jnp

        from zoo_jax.steps import make_optimizer, train_step_at, train_step_on

        # Copies, because the step donates (reuses) the buffers of what it is given.
        trainable = {k: jnp.copy(v) for k, v in model.params.items() if k in model.trainable}
        state = {k: jnp.copy(v) for k, v in model.params.items() if k in model.updated}
        frozen = {k: v for k, v in model.params.items() if k not in model.trainable | model.updated}
        # Committed to the device like the step's outputs, so step 2 reuses step 1's executable.
        opt_state = jax.device_put(make_optimizer(config).init(trainable), model.device)
        # Meters written against contract 1 before end_epoch existed do not have it.
        end_epoch = getattr(meter, "end_epoch", None)
        n_epochs = len(data.order)
        losses = []

        def handle(params: dict[str, Any]) -> JaxModel:
            return JaxModel(model.module, {**frozen, **params}, model.trainable, model.device, model.updated)

        # The split on the device once per call (the batch form: an array, or a dict of arrays
        # for several inputs, a pytree); each step gathers its batch inside the jitted step.
        host = self.feed == "host"  # else the split on the device, gathered inside the step
        split = (batch_form(data.inputs), data.y.astype(np.int32))
        inputs, labels = split if host else jax.device_put(split, model.device)
        step = (train_step_on if host else train_step_at)(model.module, config)
        batch_size = data.batch_size
        for epoch, order in enumerate(data.order, start=1):
            if host:  # each batch gathered by NumPy and put on the device a step ahead (prefetch)
                batches = prefetch(split, order, model.device)
                for _ in order:
                    with meter.step(batch_size) as sync:
                        xb, yb = next(batches)  # the first ones are gathered inside the first step
                        trainable, state, opt_state, loss = step(trainable, state, opt_state, frozen, xb, yb)
                        if sync is not False:
                            synchronize((trainable, state, loss))
                    losses.append(loss)
            else:
                indices = stage_order(order, model.device)  # the epoch's index arrays, staged once
                for idx in indices:
                    with meter.step(batch_size) as sync:
                        trainable, state, opt_state, loss = step(
                            trainable, state, opt_state, frozen, inputs, labels, idx)
                        if sync is not False:  # dispatch is async: wait when the host asks
                            synchronize((trainable, state, loss))
                    losses.append(loss)
            if end_epoch is not None and epoch < n_epochs:
                # The next step donates ``trainable`` and ``state``: hand out copies, so the handle stays
                # valid after that step for as long as the host keeps it (one device copy per epoch).
                end_epoch(handle({k: jnp.copy(v) for k, v in {**trainable, **state}.items()}))
        new = handle({**trainable, **state})  # no step follows: the returned handle owns these buffers
        if end_epoch is not None and n_epochs:
            end_epoch(new)
        return FineTuneResult(new, [float(v) for v in np.asarray(jnp.stack(losses))] if losses else [])

    def evaluate(self, model: JaxModel, data: EvalData, meter: Meter) -> np.ndarray:
        import jax

        from zoo_jax.steps import forward_at, forward_on

        names = tuple(sorted(model.params))  # the parameters as a tuple (zoo_jax.steps.forward_at)
        params = tuple(model.params[n] for n in names)
        batch_size = data.batch_size
        outputs = []
        if self.feed == "host":  # each batch gathered on the host, put on the device a step ahead
            forward, batches = forward_on(model.module, names), prefetch(batch_form(data.inputs), data.order,
                                                                         model.device)
            for _ in data.order:
                with meter.step(batch_size) as sync:
                    logits = forward(params, next(batches))
                    if sync is not False:
                        synchronize(logits)
                outputs.append(logits)
        else:
            # The split and the batch order on the device once per call; each step gathers its batch.
            inputs, indices = jax.device_put(batch_form(data.inputs), model.device), stage_order(data.order,
                                                                                                 model.device)
            forward = forward_at(model.module, names)
            for idx in indices:
                with meter.step(batch_size) as sync:
                    logits = forward(params, inputs, idx)
                    if sync is not False:
                        synchronize(logits)
                outputs.append(logits)
        # One copy to the host at the end (copying the ready ones at each synchronised step,
        # between the timing windows, measured 2 % slower on the MLP: it churns the allocator).
        return np.concatenate([np.asarray(o, dtype=np.float32) for o in jax.device_get(outputs)])

    def export_weights(self, model: JaxModel) -> dict[str, np.ndarray]:
        import jax

        return {name: np.array(value, dtype=np.float32) for name, value in jax.device_get(model.params).items()}

    def memory(self, device: str) -> dict[str, int]:
        if device != "gpu":
            return {}
        gpu = _gpu()
        stats = (gpu.memory_stats() or {}) if gpu is not None else {}
        return {"peak_bytes": int(stats["peak_bytes_in_use"])} if "peak_bytes_in_use" in stats else {}

    def reset_memory_peak(self, device: str) -> bool:
        # jaxlib 0.10 cannot reset peak_bytes_in_use: Device.memory_stats() only reads the
        # allocator's counters, and no Python API reaches its ClearStats (module doc). So the
        # peak stays the process's, and the host says so; on a CPU there is no figure at all.
        return False

    def _gpu_memory(self) -> Any:
        """The memory policy this GPU cell's XLA client was created with (module doc)."""
        if self.device != "gpu":
            return NOT_ON_CPU
        fraction = os.environ.get("XLA_CLIENT_MEM_FRACTION") or os.environ.get("XLA_PYTHON_CLIENT_MEM_FRACTION")
        return {
            "preallocate": os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE", "true (jax's default)"),
            "allocator": os.environ.get("XLA_PYTHON_CLIENT_ALLOCATOR", "default (bfc)"),
            "mem_fraction": fraction or "0.75 (jax's default)",
        }


def synchronize(tree: Any) -> None:
    """Wait until every array in ``tree`` is computed, without copying anything to the host:
    ``jax.block_until_ready`` (dispatch is asynchronous on every backend, so the CPU too).
    Called at the synchronised steps of ``fine_tune`` and ``evaluate``, inside ``meter.step``."""
    import jax

    jax.block_until_ready(tree)


def gpu_memory_env(environ: Mapping[str, str]) -> dict[str, str]:
    """:data:`GPU_MEMORY_ENV` less what ``environ`` (the ``zoo`` process's) already sets: a
    user's explicit allocator settings stand, and jaxlib refuses ``XLA_CLIENT_MEM_FRACTION``
    together with ``XLA_PYTHON_CLIENT_MEM_FRACTION``, so neither fraction is added beside the other."""
    env = {key: value for key, value in GPU_MEMORY_ENV.items() if key not in environ}
    if "XLA_CLIENT_MEM_FRACTION" in environ:
        env.pop("XLA_PYTHON_CLIENT_MEM_FRACTION", None)
    return env


def _autotune_level() -> str:
    """XLA's GPU autotuning level in this process: from ``XLA_FLAGS``, else XLA's default."""
    level = None
    for token in os.environ.get("XLA_FLAGS", "").split():
        key, _, value = token.lstrip("-").partition("=")
        if key == "xla_gpu_autotune_level":
            level = value  # the last one wins, as in XLA
    return f"{level} (XLA_FLAGS)" if level is not None else f"{XLA_AUTOTUNE_DEFAULT} (XLA's default)"


def prefetch(split: Any, order: Sequence[np.ndarray], device: Any, size: int = PREFETCH) -> Iterator[Any]:
    """The batches of ``order`` (one index array per step) from ``split``, a pytree of host
    arrays (the batch form, or ``(inputs, labels)``), each gathered by NumPy in host memory and
    put on ``device`` with ``jax.device_put``, ``size`` batches in flight (flax's
    ``prefetch_to_device``): when step i receives its batch, the transfer of batch i+1 has already
    been issued, so it overlaps step i's compute (``device_put`` is asynchronous); batch i+2 is
    gathered and put when step i+1 asks for its batch. The first ``size`` are gathered when the
    first step asks (inside it)."""
    import jax

    def put(idx: np.ndarray) -> Any:
        return jax.device_put(jax.tree.map(lambda a: a[idx], split), device)

    steps = iter(order)
    queue: collections.deque[Any] = collections.deque()
    for idx in itertools.islice(steps, size):
        queue.append(put(idx))
    while queue:
        yield queue.popleft()
        # the step that took the batch has been dispatched: refill (flax's enqueue(1))
        queue.extend(put(idx) for idx in itertools.islice(steps, 1))


def stage_order(order: Sequence[np.ndarray], device: Any) -> list[Any]:
    """The index arrays of ``order`` as device arrays, in order, with one device array per
    distinct index array: steps that repeat a batch (the host cycles its batches to fill the
    throughput windows) pass the same array again. Measured on the 2-core VM: a jitted step is
    3-4 us faster (of the MLP's 25 us inference step) on index arrays it keeps reusing than on a
    fresh one per step, as a loop over a few staged batches has them."""
    import jax

    distinct: dict[tuple[str, bytes], np.ndarray] = {}  # (dtype, bytes) -> the first array with them
    keys = [(idx.dtype.str, idx.tobytes()) for idx in order]
    for key, idx in zip(keys, order):
        distinct.setdefault(key, idx)
    staged = dict(zip(distinct, jax.device_put(list(distinct.values()), device)))
    return [staged[key] for key in keys]


def _intra_op_threads() -> int:
    """What jaxlib sizes the ``XLAEigen`` pool to (``DefaultThreadPoolSize`` in XLA's pjrt/utils)."""
    nproc = os.environ.get("PJRT_NPROC", "")
    if nproc.isdigit():
        return int(nproc)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _gpu() -> Any:
    """The first GPU jax sees, or ``None``."""
    import jax

    try:
        return jax.devices("gpu")[0]
    except RuntimeError:
        return None


def _device(device: str) -> Any:
    import jax

    if device == "cpu":
        return jax.devices("cpu")[0]
    gpu = _gpu()
    if gpu is None:
        raise RuntimeError(
            "jax sees no GPU in this process; install a CUDA build (pip install 'zoo-jax[gpu]', i.e. jax[cuda12]) "
            "and make sure JAX_PLATFORMS does not exclude it, or run with --device cpu"
        )
    return gpu
