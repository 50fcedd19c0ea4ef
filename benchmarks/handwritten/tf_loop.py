"""Idiomatic Keras 3 / TensorFlow fine-tuning and inference of the zoo's digits models, without
the harness: a tf.function train step with keras.optimizers.Adam, predictions through a
tf.function forward, one read-back per window."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from common import data, parse, report, windows  # noqa: E402

args = parse()
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(args.threads)
tf.config.threading.set_inter_op_parallelism_threads(1)
d, train, test = data(args.batch_size)
layers = keras.layers
if args.model == "mlp":
    model = keras.Sequential([keras.Input((8, 8, 1)), layers.Flatten(), layers.Dense(128, "relu"),
                              layers.Dense(64, "relu"), layers.Dense(10)])
else:
    model = keras.Sequential([keras.Input((8, 8, 1)), layers.ZeroPadding2D(1), layers.Conv2D(16, 3, activation="relu"),
                              layers.ZeroPadding2D(1), layers.Conv2D(32, 3, 2, activation="relu"),
                              layers.ZeroPadding2D(1), layers.Conv2D(64, 3, activation="relu"),
                              layers.GlobalAveragePooling2D(), layers.Dense(10)])
opt = keras.optimizers.Adam(1e-3)
loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
x_all, y_all = tf.constant(d.x_train), tf.constant(d.y_train)
x_test = tf.constant(d.x_test)


@tf.function(input_signature=[tf.TensorSpec((args.batch_size,), tf.int64)])
def train_step(idx):
    x, y = tf.gather(x_all, idx), tf.gather(y_all, idx)
    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=True))
    opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
    return loss


@tf.function(input_signature=[tf.TensorSpec((args.batch_size,), tf.int64)])
def predict(idx):
    return model(tf.gather(x_test, idx), training=False)


tr = windows(lambda i: train_step(train[i % len(train)]), lambda out: out.numpy(), args, args.batch_size)
inf = windows(lambda i: predict(test[i % len(test)]), lambda out: out.numpy(), args, args.batch_size)
report(tr, inf)
