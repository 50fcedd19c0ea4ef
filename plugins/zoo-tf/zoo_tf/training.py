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

Both functions are ``tf.function`` graphs with an ``input_signature`` of the exact batch shape:
traced once, never retraced (a batch of another shape is an error, not a silent recompile).
They are not XLA-compiled (``jit_compile=False``), like the eager torch adapter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

from zoo.contract import FineTuneConfig


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
    model: Any, optimizer: TorchAdam, batch_shape: tuple[int, ...]
) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """``step(x, y) -> loss``: mean softmax cross-entropy over the batch, gradients for the
    optimiser's variables only (frozen ones get none), for the Keras ``model``, one Adam update. The returned loss is
    computed after the update ran, so reading it back means the whole step finished."""

    @tf.function(
        input_signature=[tf.TensorSpec(batch_shape, tf.float32), tf.TensorSpec(batch_shape[:1], tf.int64)],
        jit_compile=False,
    )
    def step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            tape.watch(optimizer.variables)
            logits = model(x, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        grads = tape.gradient(loss, optimizer.variables)
        with tf.control_dependencies(optimizer.apply(grads)):
            return tf.identity(loss)

    return step


def make_forward(model: Any, batch_shape: tuple[int, ...]) -> Callable[[tf.Tensor], tf.Tensor]:
    """``forward(x) -> logits`` in inference mode."""

    @tf.function(input_signature=[tf.TensorSpec(batch_shape, tf.float32)], jit_compile=False)
    def forward(x: tf.Tensor) -> tf.Tensor:
        return model(x, training=False)

    return forward
