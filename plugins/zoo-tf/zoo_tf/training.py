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

* ``graph`` (default): a ``tf.function`` with an ``input_signature`` of the exact batch shape:
  traced once, never retraced (a batch of another shape is an error, not a silent recompile),
  called through its concrete function (:class:`Traced`), run by TensorFlow's graph executor
  (oneDNN kernels on CPU), not XLA-compiled;
* ``xla``: the same ``tf.function`` with ``jit_compile=True``: the whole step (forward,
  gradients and the Adam update) is one XLA cluster, compiled on the first call;
* ``eager``: the plain Python function, op by op, with no ``tf.function`` (like eager torch).

All three compute the same float32 math (the tests hold them to the NumPy reference).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

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


def to_tensors(x: Any, signature: Signature) -> Any:
    """``x`` (an array or a dict of arrays) as tensors of ``signature``'s dtypes."""
    if isinstance(signature, Mapping):
        return {name: tf.convert_to_tensor(x[name], spec.dtype) for name, spec in signature.items()}
    return tf.convert_to_tensor(x, signature.dtype)


def _constant(signature: Signature) -> Callable[[Any], Any]:
    """A converter of NumPy arguments to constants of ``signature`` (the fast path for one array)."""
    if isinstance(signature, Mapping):
        return lambda x: {name: tf.constant(x[name], spec.dtype) for name, spec in signature.items()}
    dtype = signature.dtype
    return lambda x: tf.constant(x, dtype)


def compile_for(variant: str, fn: Callable[..., Any], signature: Sequence[tf.TensorSpec]) -> Callable[..., Any]:
    """``fn`` run as ``variant`` says: a fixed-signature ``tf.function`` (``graph``), the same
    with XLA (``xla``), or ``fn`` itself (``eager``).

    The compiled variants call the traced *concrete* function with tensors: calling the
    ``tf.function`` with NumPy arrays costs ~100 us per call in argument binding and conversion
    (measured on the 2-core VM: 700 us vs 500 us per MLP training step), and the signature is
    fixed, so the concrete function is the same graph without that cost. A batch of another
    shape or dtype is refused by the conversion or the concrete function, never retraced."""
    if variant == "eager":
        return fn
    if variant not in ("graph", "xla"):  # the adapter resolved it (zoo_tf.adapter.resolve_variant)
        raise ValueError(f"zoo-tf has no compiled variant {variant!r}")
    return Traced(tf.function(fn, input_signature=list(signature), jit_compile=variant == "xla"))


class Traced:
    """A fixed-signature ``tf.function``, traced once, called through its concrete function."""

    def __init__(self, function: Any):
        self.function = function
        self.concrete = function.get_concrete_function()  # traces now: input_signature fixes the shapes
        self.converters = [_constant(spec) for spec in function.input_signature]

    def __call__(self, *args: Any) -> Any:
        return self.concrete(*(convert(a) for convert, a in zip(self.converters, args)))

    def experimental_get_tracing_count(self) -> int:
        """How many times the function was traced (1: every call used the one graph)."""
        return self.function.experimental_get_tracing_count()

    def get_concrete_function(self, *args: Any) -> Any:
        """The traced graph (``args`` are accepted for ``tf.function``'s signature and ignored)."""
        return self.concrete


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


def make_train_step(
    model: Any, optimizer: TorchAdam, signature: Signature, variant: str = "graph"
) -> Callable[[Any, tf.Tensor], tf.Tensor]:
    """``step(x, y) -> loss``: mean softmax cross-entropy over the batch, gradients for the
    optimiser's variables only (frozen ones get none), for the Keras ``model``, one Adam update.
    ``signature`` (:func:`input_signature`) fixes the batch's shapes and dtypes, which are the
    model's declared inputs', never assumed float32. The returned loss is computed after the
    update ran, so reading it back means the whole step finished. The loss is taken from the
    model's float32 logits (the head computes in float32 at every precision), so it is float32 too."""
    batch_size = next(iter(signature.values())).shape[0] if isinstance(signature, Mapping) else signature.shape[0]

    def step(x: Any, y: tf.Tensor) -> tf.Tensor:
        x = to_tensors(x, signature)  # no-ops in a graph; in eager, NumPy -> tensor
        y = tf.convert_to_tensor(y, tf.int64)
        with tf.GradientTape() as tape:
            tape.watch(optimizer.variables)
            logits = model(x, training=True)
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=tf.cast(logits, tf.float32))
            )
        grads = tape.gradient(loss, optimizer.variables)
        with tf.control_dependencies(optimizer.apply(grads)):
            return tf.identity(loss)

    return compile_for(variant, step, [signature, tf.TensorSpec((batch_size,), tf.int64)])


def make_forward(model: Any, signature: Signature, variant: str = "graph") -> Callable[[Any], tf.Tensor]:
    """``forward(x) -> logits`` (float32) in inference mode, for batches of ``signature``."""

    def forward(x: Any) -> tf.Tensor:
        return tf.cast(model(to_tensors(x, signature), training=False), tf.float32)

    return compile_for(variant, forward, [signature])
