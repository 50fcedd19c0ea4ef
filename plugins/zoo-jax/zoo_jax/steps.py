"""The jitted training and inference steps, and the optimiser.

Both steps are module-level ``jax.jit`` functions whose static arguments (the Flax module and
the frozen ``FineTuneConfig``) are hashable, so a second ``fine_tune`` or ``evaluate`` with the
same model, config and batch shape reuses the compiled executable instead of recompiling.

Freezing: only the trainable parameters are differentiated and given optimiser state; the
frozen ones are a separate, non-donated argument that the step reads and never writes, so they
stay bit-for-bit unchanged and no gradient is computed for them (as with torch's
``requires_grad=False``). ``state`` holds the BatchNorm running statistics the step updates
(those of layers whose scale trains, ``ModelSpec.updated_state_names``): not differentiated,
replaced by the values after the batch; the statistics of frozen layers are in ``frozen``.

Feed: the adapter runs the functions :func:`train_step_at` and :func:`forward_at` return, which
take the whole split as staged on the device once per call and the step's index array (staged
once per epoch) and gather the batch inside the compiled step; :func:`train_step` and
:func:`forward` take a batch, and so do :func:`train_step_on` and :func:`forward_on`, what the
adapter runs at feed ``host`` (``zoo bench --feed host``: batches gathered on the host and put on
the device one step ahead, :func:`zoo_jax.adapter.prefetch`).
"""

from __future__ import annotations

import math
from functools import lru_cache, partial
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from zoo.contract import FineTuneConfig
from zoo_jax.modules import FlatParams, apply, apply_train


def make_optimizer(config: FineTuneConfig) -> optax.GradientTransformation:
    """torch.optim.Adam's formula: eps outside the square root, and ``weight_decay`` as L2 added
    to the gradient *before* the moments (not AdamW, which ``optax.adamw`` would be: it adds the
    decay after Adam's scaling)."""
    adam = optax.chain(scale_by_torch_adam(config.beta1, config.beta2, config.eps),
                       optax.scale_by_learning_rate(config.learning_rate))
    if config.weight_decay > 0:
        return optax.chain(optax.add_decayed_weights(config.weight_decay), adam)
    return adam


def scale_by_torch_adam(b1: float, b2: float, eps: float) -> optax.GradientTransformation:
    """``optax.scale_by_adam(b1, b2, eps, eps_root=0)`` with torch's bias corrections. optax
    computes ``1 - b2**t`` in float32, where ``1 - float32(0.999)`` is 1.3e-5 off 1e-3, so its
    first step is 6.4e-6 smaller than torch's (which uses Python floats). Here ``1 - b**t`` is
    ``-expm1(t * log(b))`` with ``log(b)`` taken in float64: float32-exact at any step."""
    log_b1, log_b2 = math.log(b1), math.log(b2)

    def init(params: Any) -> optax.ScaleByAdamState:  # two trees of zeros: the step donates both
        return optax.ScaleByAdamState(count=jnp.zeros([], jnp.int32), mu=jax.tree.map(jnp.zeros_like, params),
                                      nu=jax.tree.map(jnp.zeros_like, params))

    def update(grads: Any, state: optax.ScaleByAdamState, params: Any = None) -> tuple[Any, optax.ScaleByAdamState]:
        mu = jax.tree.map(lambda m, g: b1 * m + (1.0 - b1) * g, state.mu, grads)
        nu = jax.tree.map(lambda v, g: b2 * v + (1.0 - b2) * g * g, state.nu, grads)
        count = state.count + 1
        t = count.astype(jnp.float32)
        correction1, correction2_sqrt = -jnp.expm1(t * log_b1), jnp.sqrt(-jnp.expm1(t * log_b2))
        direction = jax.tree.map(lambda m, v: (m / correction1) / (jnp.sqrt(v) / correction2_sqrt + eps), mu, nu)
        return direction, optax.ScaleByAdamState(count=count, mu=mu, nu=nu)

    return optax.GradientTransformation(init, update)


def _loss(
    trainable: FlatParams, state: FlatParams, frozen: FlatParams, module: nn.Module, x: jax.Array, y: jax.Array
) -> tuple[jax.Array, FlatParams]:
    logits, stats = apply_train(module, {**frozen, **state, **trainable}, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), {k: stats[k] for k in state}


def _train_step(module: nn.Module, config: FineTuneConfig, trainable: FlatParams, state: FlatParams, opt_state: Any,
                frozen: Mapping[str, jax.Array], x: Any, y: jax.Array) -> tuple[FlatParams, FlatParams, Any, jax.Array]:
    (loss, state), grads = jax.value_and_grad(_loss, has_aux=True)(trainable, state, frozen, module, x, y)
    updates, opt_state = make_optimizer(config).update(grads, opt_state, trainable)
    return optax.apply_updates(trainable, updates), state, opt_state, loss


@partial(jax.jit, static_argnames=("module", "config"), donate_argnames=("trainable", "state", "opt_state"))
def train_step(
    module: nn.Module,
    config: FineTuneConfig,
    trainable: FlatParams,
    state: FlatParams,
    opt_state: Any,
    frozen: Mapping[str, jax.Array],
    x: jax.Array,
    y: jax.Array,
) -> tuple[FlatParams, FlatParams, Any, jax.Array]:
    """One Adam step on the mean softmax cross-entropy of the batch ``(x, y)``; returns the new
    parameters, running statistics and optimiser state, and the loss. ``trainable``, ``state``
    and ``opt_state`` are donated: their buffers are reused for the results."""
    return _train_step(module, config, trainable, state, opt_state, frozen, x, y)


@partial(jax.jit, static_argnames=("module",))
def forward(module: nn.Module, params: Mapping[str, jax.Array], x: jax.Array) -> jax.Array:
    """Inference logits (BatchNorm with running statistics; the zoo's models have no dropout)."""
    return apply(module, params, x)


def _train_step_at(module: nn.Module, config: FineTuneConfig, trainable: FlatParams, state: FlatParams,
                   opt_state: Any, frozen: Mapping[str, jax.Array], inputs: Any, labels: jax.Array,
                   idx: jax.Array) -> tuple[FlatParams, FlatParams, Any, jax.Array]:
    x = jax.tree.map(lambda a: a[idx], inputs)  # the batch form: an array, or a dict of arrays
    return _train_step(module, config, trainable, state, opt_state, frozen, x, labels[idx])


def _forward_at(module: nn.Module, names: tuple[str, ...], values: tuple[jax.Array, ...], inputs: Any,
                idx: jax.Array) -> jax.Array:
    return apply(module, dict(zip(names, values)), jax.tree.map(lambda a: a[idx], inputs))


@lru_cache(maxsize=64)
def train_step_at(module: nn.Module, config: FineTuneConfig) -> Any:
    """``step(trainable, state, opt_state, frozen, inputs, labels, idx)``: :func:`train_step` on
    the batch ``idx`` of the staged split (``inputs`` in the batch form, ``labels``), gathered
    inside the compiled step; what ``fine_tune`` runs, looked up once per call.

    ``module`` and ``config`` are bound here rather than passed as static arguments: jit hashes
    its static arguments at every call, and hashing a Flax module costs ~2.5 us, a tenth of the
    MLP's inference step on the 2-core VM. Equal modules and configs get the same function, so a
    second ``fine_tune`` reuses its executable."""
    return jax.jit(partial(_train_step_at, module, config), donate_argnums=(0, 1, 2))


@lru_cache(maxsize=64)
def forward_at(module: nn.Module, names: tuple[str, ...]) -> Any:
    """``forward(values, inputs, idx)``: :func:`forward` on the batch ``idx`` of the staged
    ``inputs``, gathered inside the compiled step, with the parameters as a tuple of ``values``
    in the order of ``names`` (a tuple is flattened faster than a dict, whose keys jit sorts at
    every call: 0.5 us against 0.8 us for the MLP's six arrays); what ``evaluate`` runs
    (``module`` and ``names`` bound as in :func:`train_step_at`)."""
    return jax.jit(partial(_forward_at, module, names))


def _forward_on(module: nn.Module, names: tuple[str, ...], values: tuple[jax.Array, ...], x: Any) -> jax.Array:
    return apply(module, dict(zip(names, values)), x)


@lru_cache(maxsize=64)
def train_step_on(module: nn.Module, config: FineTuneConfig) -> Any:
    """``step(trainable, state, opt_state, frozen, x, y)``: :func:`train_step` on a batch given
    as an argument (feed ``host``: already on the device, put there one step ahead), with
    ``module`` and ``config`` bound as in :func:`train_step_at`."""
    return jax.jit(partial(_train_step, module, config), donate_argnums=(0, 1, 2))


@lru_cache(maxsize=64)
def forward_on(module: nn.Module, names: tuple[str, ...]) -> Any:
    """``forward(values, x)``: :func:`forward` on a batch given as an argument (feed ``host``),
    the parameters as in :func:`forward_at`."""
    return jax.jit(partial(_forward_on, module, names))
