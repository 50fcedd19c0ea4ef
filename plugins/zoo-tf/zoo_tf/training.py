"""The compiled training step (softmax cross-entropy, torch's Adam) and forward pass.

Why not ``keras.optimizers.Adam``: :class:`zoo.contract.FineTuneConfig` is torch's Adam::

    g = grad + weight_decay * p                        # L2 in the gradient
    m = b1 * m + (1 - b1) * g;  v = b2 * v + (1 - b2) * g**2
    p -= lr * (m / (1 - b1**t)) / (sqrt(v / (1 - b2**t)) + eps)

Keras computes ``lr_t = lr * sqrt(1 - b2**t) / (1 - b1**t)`` and ``p -= lr_t * m / (sqrt(v) + eps)``:
its epsilon is added to the *uncorrected* ``sqrt(v)`` ("epsilon hat"), the same as torch's
formula with ``eps / sqrt(1 - b2**t)`` (31.6 x eps at the first step), and its ``weight_decay``
is decoupled (AdamW-style), not L2 in the gradient. So :class:`TorchAdam` writes the update out
with TF ops, in the order of torch's single-tensor Adam (bias corrections in float64, as torch
computes them in Python floats).

How the two functions run is the adapter's *variant* (:data:`zoo_tf.adapter.VARIANTS`):

* ``graph`` (default): a ``tf.function`` of no arguments whose batch has the exact batch shape
  (the :class:`Feed`'s order has rows of the batch size): traced once, never retraced (an order
  of another batch size or a split of another example shape is refused when it is staged, not
  silently recompiled), called through its concrete function (:class:`Traced`), run by
  TensorFlow's graph executor (oneDNN kernels on CPU), not XLA-compiled;
* ``xla``: the same ``tf.function`` with ``jit_compile=True``: the whole step (gathering the
  batch, forward, gradients and the Adam update) is one XLA cluster, compiled on the first call
  (and again for a staged split or epoch order of a new length: XLA compiles static shapes);
* ``eager``: the plain Python function, op by op, with no ``tf.function`` (like eager torch).

All three compute the same float32 math (the tests hold them to the NumPy reference).

Feed (``info().details["feed"]``): the step functions take no arguments. Each reads its batch
from a :class:`Feed`: variables holding the call's split (one per declared input, and the labels),
staged once per ``fine_tune`` or ``evaluate`` call on the model's device, the host's batch order
of the current epoch (one row of indices per step), staged once per epoch, and a step counter.
Inside the compiled step, the counter picks the step's row of indices and ``tf.gather`` takes the
batch from the staged split: the host's exact batches, in its order, with no per-step conversion.
Passing no tensors matters: each NumPy argument of a concrete-function call is a conversion and
each tensor argument 10-30 us of binding (measured on the 2-core VM: 246 us per MLP inference
step with the indices converted and passed, 182 us reading them from the staged order).

Host feed (``zoo bench --feed host``, :func:`host_pipeline`): TensorFlow's own input pipeline, a
``tf.data.Dataset`` of the host's batch order whose ``map`` gathers each batch (``tf.gather``) from
the split held in host memory (tensors placed on the CPU), then ``prefetch``, and on a GPU
``tf.data.experimental.prefetch_to_device``, so batch i+1 is gathered and copied while step i
computes. The steps then take the batch as arguments (:func:`make_train_step_on`,
:func:`make_forward_on`): the same body as the feed's steps, the same batches in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from zoo.contract import FineTuneConfig
from zoo.models import InputSpec
from zoo.models.inputs import batch_form

#: A batch's signature in the batch form: one TensorSpec (one input) or a dict of them.
Signature = Any


def input_signature(inputs: Sequence[InputSpec], batch_size: int) -> Signature:
    """The ``tf.TensorSpec`` of a batch of the declared ``inputs``, each of its declared dtype
    (float32 images, int32 token ids and masks, ...): one spec for one input, a dict name ->
    spec for several (the batch form of :mod:`zoo.models.inputs`)."""
    return batch_form({s.name: tf.TensorSpec((batch_size, *s.shape), tf.as_dtype(s.dtype), name=s.name)
                       for s in inputs})


def _constant(signature: Signature) -> Callable[[Any], Any]:
    """A converter of NumPy arguments to constants of ``signature`` (the fast path for one array)."""
    if isinstance(signature, Mapping):
        return lambda x: {name: tf.constant(x[name], spec.dtype) for name, spec in signature.items()}
    dtype = signature.dtype
    return lambda x: tf.constant(x, dtype)


def compile_for(variant: str, fn: Callable[..., Any], signature: Sequence[tf.TensorSpec],
                feed: "Feed | None" = None) -> Callable[..., Any]:
    """``fn`` run as ``variant`` says: a fixed-signature ``tf.function`` (``graph``), the same
    with XLA (``xla``), or ``fn`` itself (``eager``); ``feed``, the :class:`Feed` ``fn`` reads,
    is kept as the result's ``feed``.

    The compiled variants call the traced *concrete* function with tensors: calling the
    ``tf.function`` with NumPy arrays costs ~100 us per call in argument binding and conversion
    (measured on the 2-core VM: 700 us vs 500 us per MLP training step), and the signature is
    fixed, so the concrete function is the same graph without that cost. A batch of another
    shape or dtype is refused by the conversion or the concrete function, never retraced. The
    steps have no arguments at all (module doc, "Feed")."""
    if variant == "eager":
        return Eager(fn, feed)
    if variant not in ("graph", "xla"):  # the adapter resolved it (zoo_tf.adapter.resolve_variant)
        raise ValueError(f"zoo-tf has no compiled variant {variant!r}")
    return Traced(tf.function(fn, input_signature=list(signature), jit_compile=variant == "xla"), feed)


class Traced:
    """A fixed-signature ``tf.function``, traced once, called through its concrete function."""

    def __init__(self, function: Any, feed: "Feed | None" = None):
        self.function = function
        self.feed = feed
        self.concrete = function.get_concrete_function()  # traces now: input_signature fixes the shapes
        self.converters = [_constant(spec) for spec in function.input_signature]

    def __call__(self, *args: Any) -> Any:
        if not args:  # the steps: they read their batch from the feed
            return self.concrete()
        return self.concrete(*(convert(a) for convert, a in zip(self.converters, args)))

    def experimental_get_tracing_count(self) -> int:
        """How many times the function was traced (1: every call used the one graph)."""
        return self.function.experimental_get_tracing_count()

    def get_concrete_function(self, *args: Any) -> Any:
        """The traced graph (``args`` are accepted for ``tf.function``'s signature and ignored)."""
        return self.concrete


class Eager:
    """The eager variant: ``fn`` itself, called op by op, with the :class:`Feed` it reads."""

    def __init__(self, fn: Callable[..., Any], feed: "Feed | None" = None):
        self.fn = fn
        self.feed = feed

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)


class TorchAdam:
    """torch.optim.Adam (``amsgrad=False``, L2 ``weight_decay``) over ``variables``, the
    ``tf.Variable`` objects behind Keras variables (``keras_variable.value`` on this backend)."""

    def __init__(self, variables: Sequence[tf.Variable], config: FineTuneConfig):
        self.variables = list(variables)
        self.config = config
        self.m = [tf.Variable(tf.zeros(v.shape, tf.float32), trainable=False) for v in self.variables]
        self.v = [tf.Variable(tf.zeros(v.shape, tf.float32), trainable=False) for v in self.variables]
        self.t = tf.Variable(0.0, dtype=tf.float64, trainable=False)

    def reset(self) -> None:
        """Zero the moments and the step count, as a freshly created optimiser has them."""
        for slot in self.m + self.v:
            slot.assign(tf.zeros_like(slot))
        self.t.assign(0.0)

    def apply(self, grads: Sequence[tf.Tensor]) -> list[Any]:
        """One update (inside a ``tf.function``); returns the assignments, to depend on."""
        c = self.config
        t = self.t.assign_add(1.0)
        step_size = tf.cast(c.learning_rate / (1.0 - tf.pow(tf.constant(c.beta1, tf.float64), t)), tf.float32)
        bc2_sqrt = tf.cast(tf.sqrt(1.0 - tf.pow(tf.constant(c.beta2, tf.float64), t)), tf.float32)
        updates = []
        for p, g, m, v in zip(self.variables, grads, self.m, self.v):
            if isinstance(g, tf.IndexedSlices):  # an embedding lookup's gradient: dense, as torch's Adam sees it
                g = tf.convert_to_tensor(g)
            if c.weight_decay:
                g = g + c.weight_decay * p
            m_t = m.assign_add((1.0 - c.beta1) * (g - m))  # torch: exp_avg.lerp_(grad, 1 - beta1)
            v_t = v.assign(v * c.beta2 + (1.0 - c.beta2) * g * g)
            denom = tf.sqrt(v_t) / bc2_sqrt + c.eps
            updates.append(p.assign_sub(step_size * (m_t / denom)))
        return updates


class Feed:
    """What the step functions read their batches from (module doc): variables of unknown
    leading dimension for the split's inputs (declared dtypes), its labels (int64, training
    only) and an epoch's order (``[steps, batch]`` int64), and the step counter. Created with
    the step it feeds, on the model's device; :meth:`stage` and :meth:`start` are eager calls
    outside the timed steps, :meth:`batch` runs inside the step."""

    def __init__(self, signature: Signature, labels: bool):
        specs = dict(signature) if isinstance(signature, Mapping) else {None: signature}
        self.batch_size = next(iter(specs.values())).shape[0]
        self.inputs = {name: _variable(spec.shape[1:], spec.dtype) for name, spec in specs.items()}
        self.labels = _variable((), tf.int64) if labels else None
        self.order = _variable((self.batch_size,), tf.int64)
        self.step = tf.Variable(tf.constant(0, tf.int64), trainable=False)

    def stage(self, inputs: Mapping[str, Any], labels: Any = None) -> None:
        """Put the call's split on the device: ``inputs`` name -> array (for one input, its only
        array whatever its name), ``labels`` the class ids."""
        arrays = [next(iter(inputs.values()))] if len(self.inputs) == 1 else [inputs[n] for n in self.inputs]
        if self.labels is not None:
            arrays.append(labels)
        variables = [*self.inputs.values(), *([self.labels] if self.labels is not None else [])]
        for variable, array in zip(variables, arrays):
            variable.assign(tf.convert_to_tensor(np.asarray(array, variable.dtype.as_numpy_dtype)))

    def start(self, order: Sequence[np.ndarray]) -> None:
        """Stage an epoch's batch order (one index array per step) and rewind the counter."""
        rows = np.stack(order).astype(np.int64, copy=False) if len(order) else np.zeros((0, self.batch_size), np.int64)
        self.order.assign(tf.convert_to_tensor(rows))
        self.step.assign(0)

    def batch(self) -> tuple[Any, Any]:
        """The next step's ``(x, y)`` (``y`` None without labels), gathered from the staged split."""
        idx = tf.gather(self.order, self.step.assign_add(1) - 1)  # this step's row of the order
        x = {name: tf.gather(variable, idx) for name, variable in self.inputs.items()}
        x = x[None] if None in x else x  # the batch form: a tensor for one input, a dict for several
        return x, (tf.gather(self.labels, idx) if self.labels is not None else None)


def _variable(shape: Sequence[int], dtype: Any) -> tf.Variable:
    """An empty variable of any number of rows of ``shape``, for a staged array."""
    dtype = tf.as_dtype(dtype)
    return tf.Variable(tf.zeros((0, *shape), dtype), shape=tf.TensorShape([None, *shape]), trainable=False)


def make_train_step(
    model: Any, optimizer: TorchAdam, signature: Signature, variant: str = "graph"
) -> Callable[[], tf.Tensor]:
    """``step() -> loss``: one step on the next batch of the step's :class:`Feed` (``step.feed``):
    mean softmax cross-entropy over the batch, gradients for the optimiser's variables only
    (frozen ones get none), for the Keras ``model``, one Adam update. ``signature``
    (:func:`input_signature`) fixes the batch's shapes and dtypes, which are the model's declared
    inputs', never assumed float32. The returned loss is computed after the update ran, so
    reading it back means the whole step finished. The loss is taken from the model's float32
    logits (the head computes in float32 at every precision), so it is float32 too."""
    feed = Feed(signature, labels=True)

    def step() -> tf.Tensor:
        x, y = feed.batch()
        return _train_on(model, optimizer, x, y)

    return compile_for(variant, step, [], feed)


def _train_on(model: Any, optimizer: TorchAdam, x: Any, y: tf.Tensor) -> tf.Tensor:
    """One step on the batch ``(x, y)``, the body of both feeds' training steps: the loss,
    computed after the update (it depends on the update's assignments)."""
    with tf.GradientTape() as tape:
        tape.watch(optimizer.variables)
        logits = model(x, training=True)
        loss = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=tf.cast(logits, tf.float32))
        )
    grads = tape.gradient(loss, optimizer.variables)
    with tf.control_dependencies(optimizer.apply(grads)):
        return tf.identity(loss)


def make_forward(model: Any, signature: Signature, variant: str = "graph") -> Callable[[], tf.Tensor]:
    """``forward() -> logits`` (float32) in inference mode, for the next batch of the function's
    :class:`Feed` (``forward.feed``), of ``signature``'s shapes and dtypes."""
    feed = Feed(signature, labels=False)

    def forward() -> tf.Tensor:
        x, _ = feed.batch()
        return tf.cast(model(x, training=False), tf.float32)

    return compile_for(variant, forward, [], feed)


def make_train_step_on(
    model: Any, optimizer: TorchAdam, signature: Signature, variant: str = "graph"
) -> Callable[[Any, tf.Tensor], tf.Tensor]:
    """``step(x, y) -> loss``: :func:`make_train_step`'s step on a batch given as arguments (the
    host feed, module doc), ``x`` in the batch form of ``signature``, ``y`` int64 class ids."""
    batch_size = _batch_size(signature)

    def step(x: Any, y: tf.Tensor) -> tf.Tensor:
        return _train_on(model, optimizer, x, y)

    return compile_for(variant, step, [signature, tf.TensorSpec((batch_size,), tf.int64)])


def make_forward_on(model: Any, signature: Signature, variant: str = "graph") -> Callable[[Any], tf.Tensor]:
    """``forward(x) -> logits`` (float32) in inference mode, for a batch of ``signature`` given as
    an argument (the host feed)."""

    def forward(x: Any) -> tf.Tensor:
        return tf.cast(model(x, training=False), tf.float32)

    return compile_for(variant, forward, [signature])


def _batch_size(signature: Signature) -> int:
    return next(iter(signature.values())).shape[0] if isinstance(signature, Mapping) else signature.shape[0]


def host_pipeline(signature: Signature, inputs: Mapping[str, Any], order: Sequence[np.ndarray],
                  labels: Any = None, device: str = "") -> tf.data.Dataset:
    """The host feed's ``tf.data`` pipeline (module doc) over ``order`` (one index array per step,
    each of the batch size): elements ``(x, y)`` with ``labels``, else ``x``, ``x`` in the batch
    form of ``signature`` (its dtypes), ``y`` int64. The split and the order are tensors on the
    host's CPU; each element's gather runs in tf.data's threads, ``prefetch(2)`` ahead of the
    step. ``device`` (a TF device name such as ``/GPU:0``): the last stage,
    ``prefetch_to_device``, puts each batch there ahead of the step (a CPU device: none)."""
    specs = dict(signature) if isinstance(signature, Mapping) else {None: signature}
    arrays = {name: next(iter(inputs.values())) if name is None else inputs[name] for name in specs}
    with tf.device("/CPU:0"):  # the split stays in host memory
        host = {name: tf.constant(np.asarray(arrays[name], specs[name].dtype.as_numpy_dtype)) for name in specs}
        y_host = tf.constant(np.asarray(labels, np.int64)) if labels is not None else None
        rows = np.stack(order).astype(np.int64, copy=False) if len(order) else np.zeros((0, _batch_size(signature)),
                                                                                           np.int64)

        def gather(idx: tf.Tensor) -> Any:
            x = {name: tf.gather(tensor, idx) for name, tensor in host.items()}
            x = x[None] if None in x else x  # the batch form: a tensor for one input, a dict for several
            return (x, tf.gather(y_host, idx)) if y_host is not None else x

        dataset = tf.data.Dataset.from_tensor_slices(rows).map(gather).prefetch(2)  # in order: a sequential map
    if device and "GPU" in device.upper():
        dataset = dataset.apply(tf.data.experimental.prefetch_to_device(device, buffer_size=2))
    return dataset
