"""Expert Keras 3 / TensorFlow fine-tuning and inference of the zoo's digits models, without the
harness.

The split (NHWC float32 images, int64 labels) and the host's batch order (one row of indices per
step) are staged once as device tensors. Each step is one call of a traced ``tf.function``'s
concrete function with no arguments: the step reads its row of the staged order at a step
counter kept in a variable, gathers its batch inside the graph, and runs the forward pass,
gradients and Adam with torch's formula (written out in TF ops: ``keras.optimizers.Adam`` adds
its epsilon to the uncorrected ``sqrt(v)``). Calling the concrete function skips
``tf.function``'s argument binding, and passing no tensors skips the per-argument cost of a
concrete call (each NumPy argument is a conversion, each tensor argument 10-30 us of binding on
the 2-core VM). One read-back per window."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from common import BETA1, BETA2, EPS, LEARNING_RATE, Data, parse, report, windows  # noqa: E402

args = parse()
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(args.threads)
tf.config.threading.set_inter_op_parallelism_threads(1)
keras.utils.set_random_seed(0)
d = Data(args.batch_size, args.epochs)
layers = keras.layers
if args.model == "mlp":
    model = keras.Sequential([keras.Input((8, 8, 1)), layers.Flatten(), layers.Dense(128, "relu"),
                              layers.Dense(64, "relu"), layers.Dense(10)])
else:  # explicit symmetric padding: Keras's "same" pads the end more than the start at stride 2
    model = keras.Sequential([keras.Input((8, 8, 1)), layers.ZeroPadding2D(1), layers.Conv2D(16, 3, activation="relu"),
                              layers.ZeroPadding2D(1), layers.Conv2D(32, 3, 2, activation="relu"),
                              layers.ZeroPadding2D(1), layers.Conv2D(64, 3, activation="relu"),
                              layers.GlobalAveragePooling2D(), layers.Dense(10)])
params = [v.value for v in model.trainable_variables]  # the tf.Variables behind the Keras variables
m = [tf.Variable(tf.zeros_like(p), trainable=False) for p in params]
v = [tf.Variable(tf.zeros_like(p), trainable=False) for p in params]
t = tf.Variable(0.0, dtype=tf.float64, trainable=False)

x_train, y_train = tf.constant(d.x_train), tf.constant(d.y_train)
train_order = tf.constant(np.concatenate(d.epochs))  # [epochs * steps, batch]: every step's indices
x_test, test_order = tf.constant(d.x_test), tf.constant(d.test_batches)
train_i = tf.Variable(0, dtype=tf.int64, trainable=False)
test_i = tf.Variable(0, dtype=tf.int64, trainable=False)


def adam(grads):
    """torch.optim.Adam: p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)."""
    step = t.assign_add(1.0)
    step_size = tf.cast(LEARNING_RATE / (1.0 - tf.pow(tf.constant(BETA1, tf.float64), step)), tf.float32)
    bc2_sqrt = tf.cast(tf.sqrt(1.0 - tf.pow(tf.constant(BETA2, tf.float64), step)), tf.float32)
    out = []
    for p, g, m_, v_ in zip(params, grads, m, v):
        m_t = m_.assign_add((1.0 - BETA1) * (g - m_))
        v_t = v_.assign(v_ * BETA2 + (1.0 - BETA2) * g * g)
        out.append(p.assign_sub(step_size * (m_t / (tf.sqrt(v_t) / bc2_sqrt + EPS))))
    return out


@tf.function
def train_step():
    i = train_i.assign_add(1) - 1
    idx = tf.gather(train_order, i % tf.shape(train_order, out_type=tf.int64)[0])
    x, y = tf.gather(x_train, idx), tf.gather(y_train, idx)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=model(x, training=True)))
    with tf.control_dependencies(adam(tape.gradient(loss, params))):
        return tf.identity(loss)


@tf.function
def predict():
    i = test_i.assign_add(1) - 1
    idx = tf.gather(test_order, i % tf.shape(test_order, out_type=tf.int64)[0])
    return model(tf.gather(x_test, idx), training=False)


train_fn, predict_fn = train_step.get_concrete_function(), predict.get_concrete_function()
tr = windows(lambda i: train_fn(), lambda out: out.numpy(), args, args.batch_size)
inf = windows(lambda i: predict_fn(), lambda out: out.numpy(), args, args.batch_size)
report(tr, inf)
