"""Idiomatic JAX/Flax fine-tuning and inference of the zoo's digits models, without the harness:
jitted steps dispatched asynchronously, one block_until_ready per window.

``--feed device`` (default, what a careful engineer does with a dataset this small): the images
live on the device and each step gathers its batch by index inside ``jax.jit``. ``--feed host``:
each step hands the jitted function a NumPy batch, as the harness contract has every framework
do (a real input pipeline's per-step host-to-device copy); the difference between the two is
the cost of that copy, not of the harness."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

from common import data, parse, report, windows  # noqa: E402

args = parse()
os.environ.setdefault("PJRT_NPROC", str(args.threads))

from functools import partial  # noqa: E402

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

d, train, test = data(args.batch_size)


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = x.reshape((x.shape[0], -1))
        x = nn.relu(nn.Dense(128)(x))
        x = nn.relu(nn.Dense(64)(x))
        return nn.Dense(10)(x)


class CNN(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(16, (3, 3), padding=((1, 1), (1, 1)))(x))
        x = nn.relu(nn.Conv(32, (3, 3), strides=2, padding=((1, 1), (1, 1)))(x))
        x = nn.relu(nn.Conv(64, (3, 3), padding=((1, 1), (1, 1)))(x))
        return nn.Dense(10)(x.mean(axis=(1, 2)))


model = MLP() if args.model == "mlp" else CNN()
params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 1)))
tx = optax.adam(1e-3)
opt_state = tx.init(params)
x_all, y_all = jnp.asarray(d.x_train), jnp.asarray(d.y_train, dtype=jnp.int32)
x_test = jnp.asarray(d.x_test)


@partial(jax.jit, donate_argnums=(0, 1))  # parameters and Adam state updated in place
def train_step(params, opt_state, idx):
    def loss_fn(p):
        logits = model.apply(p, x_all[idx])
        return optax.softmax_cross_entropy_with_integer_labels(logits, y_all[idx]).mean()

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


@partial(jax.jit, donate_argnums=(0, 1))
def train_step_host(params, opt_state, x, y):
    def loss_fn(p):
        return optax.softmax_cross_entropy_with_integer_labels(model.apply(p, x), y).mean()

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


@jax.jit
def predict(params, idx):
    return model.apply(params, x_test[idx])


predict_host = jax.jit(model.apply)
state = {"p": params, "o": opt_state}
y_train32 = d.y_train.astype("int32")


def step(i):
    idx = train[i % len(train)]
    if args.feed == "host":
        state["p"], state["o"], loss = train_step_host(state["p"], state["o"], d.x_train[idx], y_train32[idx])
    else:
        state["p"], state["o"], loss = train_step(state["p"], state["o"], idx)
    return loss


def infer(i):
    idx = test[i % len(test)]
    return predict_host(state["p"], d.x_test[idx]) if args.feed == "host" else predict(state["p"], idx)


tr = windows(step, jax.block_until_ready, args, args.batch_size)
inf = windows(infer, jax.block_until_ready, args, args.batch_size)
report(tr, inf)
