"""The jitted training and inference steps, and the optimiser.

Both steps are module-level ``jax.jit`` functions whose static arguments (the Flax module and
the frozen ``FineTuneConfig``) are hashable, so a second ``fine_tune`` or ``evaluate`` with the
same model, config and batch shape reuses the compiled executable instead of recompiling.

Freezing: only the trainable parameters are differentiated and given optimiser state; the
frozen ones are a separate, non-donated argument that the step reads and never writes, so they
stay bit-for-bit unchanged and no gradient is computed for them (as with torch's
``requires_grad=False``).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Mapping

import flax.linen as nn
import jax
import optax

from zoo.contract import FineTuneConfig
from zoo_jax.modules import FlatParams, apply


def make_optimizer(config: FineTuneConfig) -> optax.GradientTransformation:
    """torch.optim.Adam's formula: eps outside the square root (``eps_root=0``), and
    ``weight_decay`` as L2 added to the gradient *before* the moments (not AdamW, which
    ``optax.adamw`` would be: it adds the decay after Adam's scaling)."""
    adam = optax.adam(config.learning_rate, b1=config.beta1, b2=config.beta2, eps=config.eps, eps_root=0.0)
    if config.weight_decay > 0:
        return optax.chain(optax.add_decayed_weights(config.weight_decay), adam)
    return adam


def _loss(trainable: FlatParams, frozen: FlatParams, module: nn.Module, x: jax.Array, y: jax.Array) -> jax.Array:
    logits = apply(module, {**frozen, **trainable}, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


@partial(jax.jit, static_argnames=("module", "config"), donate_argnames=("trainable", "opt_state"))
def train_step(
    module: nn.Module,
    config: FineTuneConfig,
    trainable: FlatParams,
    opt_state: Any,
    frozen: Mapping[str, jax.Array],
    x: jax.Array,
    y: jax.Array,
) -> tuple[FlatParams, Any, jax.Array]:
    """One Adam step on the mean softmax cross-entropy; returns new params, state and the loss.
    ``trainable`` and ``opt_state`` are donated: their buffers are reused for the results."""
    loss, grads = jax.value_and_grad(_loss)(trainable, frozen, module, x, y)
    updates, opt_state = make_optimizer(config).update(grads, opt_state, trainable)
    return optax.apply_updates(trainable, updates), opt_state, loss


@partial(jax.jit, static_argnames=("module",))
def forward(module: nn.Module, params: Mapping[str, jax.Array], x: jax.Array) -> jax.Array:
    """Inference logits (the zoo's models have no dropout or batch norm, so no mode switch)."""
    return apply(module, params, x)
