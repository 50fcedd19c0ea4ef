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

How the two functions run is the adapter's *variant* (:data:`VARIANTS`):

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

from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

from zoo.contract import FineTuneConfig
from zoo_tf.adapter import VARIANTS


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
    if variant not in VARIANTS:
        raise ValueError(f"zoo-tf has no variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    return Traced(tf.function(fn, input_signature=list(signature), jit_compile=variant == "xla"))


class Traced:
    """A fixed-signature ``tf.function``, traced once, called through its concrete function."""

    def __init__(self, function: Any):
        self.function = function
        self.concrete = function.get_concrete_function()  # traces now: input_signature fixes the shapes
        self.dtypes = [spec.dtype for spec in function.input_signature]

    def __call__(self, *args: Any) -> Any:
        return self.concrete(*(tf.constant(a, dtype) for a, dtype in zip(args, self.dtypes)))

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
            if c.weight_decay:
                g = g + c.weight_decay * p
            m_t = m.assign_add((1.0 - c.beta1) * (g - m))  # torch: exp_avg.lerp_(grad, 1 - beta1)
            v_t = v.assign(v * c.beta2 + (1.0 - c.beta2) * g * g)
            denom = tf.sqrt(v_t) / bc2_sqrt + c.eps
            updates.append(p.assign_sub(step_size * (m_t / denom)))
        return updates


def make_train_step(
    model: Any, optimizer: TorchAdam, batch_shape: tuple[int, ...], variant: str = "graph"
) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """``step(x, y) -> loss``: mean softmax cross-entropy over the batch, gradients for the
    optimiser's variables only (frozen ones get none), for the Keras ``model``, one Adam update.
    The returned loss is computed after the update ran, so reading it back means the whole step
    finished. The loss is taken from the model's float32 logits (the head computes in float32
    at every precision), so it is float32 too."""

    def step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        x = tf.convert_to_tensor(x, tf.float32)  # no-ops in a graph; in eager, NumPy -> tensor
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

    signature = [tf.TensorSpec(batch_shape, tf.float32), tf.TensorSpec(batch_shape[:1], tf.int64)]
    return compile_for(variant, step, signature)


def make_forward(model: Any, batch_shape: tuple[int, ...], variant: str = "graph") -> Callable[[tf.Tensor], tf.Tensor]:
    """``forward(x) -> logits`` (float32) in inference mode."""

    def forward(x: tf.Tensor) -> tf.Tensor:
        return tf.cast(model(tf.convert_to_tensor(x, tf.float32), training=False), tf.float32)

    return compile_for(variant, forward, [tf.TensorSpec(batch_shape, tf.float32)])
