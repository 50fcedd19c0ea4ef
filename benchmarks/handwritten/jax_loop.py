"""Expert JAX/Flax fine-tuning and inference of the zoo's digits models, without the harness.

The split lives on the device (NHWC float32 images, int32 labels), and so does the host's batch
order: every step's index array is a device array, staged once (steps that repeat a batch, as
the cycled order does, pass the same array again). Each step is one call of a
``jax.jit`` function that gathers its batch from the staged split by those indices, runs the
forward pass, gradients and Adam with torch's formula, and donates the parameters and optimiser
state (updated in place). Dispatch is asynchronous; one ``block_until_ready`` per window."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

from common import BETA1, BETA2, EPS, LEARNING_RATE, Data, parse, report, windows  # noqa: E402

args = parse()
os.environ.setdefault("PJRT_NPROC", str(args.threads))

from functools import partial  # noqa: E402

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")  # full float32, as the harness runs
d = Data(args.batch_size, args.epochs)


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


def adam_init(params):
    zeros = jax.tree.map(jnp.zeros_like, params)
    return {"t": jnp.zeros([], jnp.float32), "m": zeros, "v": jax.tree.map(jnp.zeros_like, params)}


def adam_update(params, grads, state):
    """torch.optim.Adam: p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)."""
    t = state["t"] + 1.0
    m = jax.tree.map(lambda m, g: BETA1 * m + (1.0 - BETA1) * g, state["m"], grads)
    v = jax.tree.map(lambda v, g: BETA2 * v + (1.0 - BETA2) * g * g, state["v"], grads)
    step_size, bc2_sqrt = LEARNING_RATE / (1.0 - BETA1 ** t), jnp.sqrt(1.0 - BETA2 ** t)
    params = jax.tree.map(lambda p, m, v: p - step_size * (m / (jnp.sqrt(v) / bc2_sqrt + EPS)), params, m, v)
    return params, {"t": t, "m": m, "v": v}


model = MLP() if args.model == "mlp" else CNN()
device = jax.devices()[0]
params = jax.device_put(model.init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 1))), device)
opt_state = jax.device_put(adam_init(params), device)
x_train, y_train = jax.device_put(d.x_train, device), jax.device_put(d.y_train.astype(np.int32), device)
x_test = jax.device_put(d.x_test, device)
train_idx = jax.device_put([idx for epoch in d.epochs for idx in epoch], device)  # every step's indices
test_idx = jax.device_put(list(d.test_batches), device)


@partial(jax.jit, donate_argnums=(0, 1))  # parameters and Adam state updated in place
def train_step(params, opt_state, x_all, y_all, idx):
    def loss_fn(p):
        logits = model.apply(p, x_all[idx])
        return optax.softmax_cross_entropy_with_integer_labels(logits, y_all[idx]).mean()

    loss, grads = jax.value_and_grad(loss_fn)(params)
    params, opt_state = adam_update(params, grads, opt_state)
    return params, opt_state, loss


@jax.jit
def predict(params, x_all, idx):
    return model.apply(params, x_all[idx])


state = {"p": params, "o": opt_state}


def step(i):
    state["p"], state["o"], loss = train_step(state["p"], state["o"], x_train, y_train, train_idx[i % len(train_idx)])
    return loss


def infer(i):
    return predict(state["p"], x_test, test_idx[i % len(test_idx)])


tr = windows(step, jax.block_until_ready, args, args.batch_size)
inf = windows(infer, jax.block_until_ready, args, args.batch_size)
report(tr, inf)
