"""What the hand-written loops share: the same data, batch order and timing method as a framework
expert would use without the harness.

Data: the ``digits`` task's split, the host's batch order (``zoo.batching.train_order``, seed 0,
one permutation per epoch, remainder dropped, ``--epochs`` epochs cycled; ``eval_order`` for
inference, the last batch padded with index 0, cycled), batch size 32: the batches the harness
hands its adapters in ``zoo bench --epochs 1`` (whose throughput phases cycle the recipe's and the
test set's batches). Each loop stages the split once, in its framework's layout and on its
device, and never converts data per step: torch slices contiguous batches out of epoch tensors
permuted once into the host's order; TF and JAX keep the split and the per-step index arrays on
the device and gather each batch inside the compiled step.

Timing: wall clock over windows of ``--window-steps`` steps after ``--warmup-steps`` steps, one
synchronisation at the end of each window and the garbage collector paused (as in the harness's
windows), the median window reported. The optimiser is Adam with torch's formula (``torch.optim.Adam``: eps outside the
bias-corrected square root, learning rate 1e-3), written out in TF and JAX, as the adapters do.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time
from typing import Callable

import numpy as np

from zoo.batching import eval_order, train_order
from zoo.tasks.digits import load_digits_task

LEARNING_RATE, BETA1, BETA2, EPS = 1e-3, 0.9, 0.999, 1e-8


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--model", choices=("mlp", "cnn"), default="mlp")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--windows", type=int, default=5)
    p.add_argument("--window-steps", type=int, default=200)
    p.add_argument("--warmup-steps", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=1,
                   help="epochs of the host's batch order, cycled (default 1: as `zoo bench --epochs 1`, whose "
                        "training-throughput phase cycles the recipe's batches)")
    args = p.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    if args.threads < len(cpus):
        os.sched_setaffinity(0, cpus[: args.threads])
    return args


class Data:
    """The digits split and the host's batch order.

    ``epochs``: one ``(steps, batch)`` int64 array of training indices per epoch (the rows of
    ``train_order``); ``epoch_index``: the same, each epoch flattened to one permutation prefix;
    ``test_index``: the eval batches' indices concatenated (the last batch padded with index 0)."""

    def __init__(self, batch_size: int, epochs: int = 1):
        d = load_digits_task()
        self.x_train, self.y_train, self.x_test = d.x_train, d.y_train, d.x_test
        self.batch_size = batch_size
        self.epochs = [np.stack(epoch) for epoch in train_order(len(d.x_train), batch_size, epochs, seed=0)]
        self.steps_per_epoch = len(self.epochs[0])
        self.epoch_index = [epoch.reshape(-1) for epoch in self.epochs]
        self.test_batches = np.stack(eval_order(len(d.x_test), batch_size))
        self.test_index = self.test_batches.reshape(-1)

    def train_batch(self, i: int) -> np.ndarray:
        """The indices of training step ``i`` (epochs cycled)."""
        epoch, j = divmod(i, self.steps_per_epoch)
        return self.epochs[epoch % len(self.epochs)][j]

    def test_batch(self, i: int) -> np.ndarray:
        """The indices of inference step ``i`` (the eval batches cycled, as the harness does)."""
        return self.test_batches[i % len(self.test_batches)]


def windows(step: Callable[[int], object], sync: Callable[[object], None], args, batch_size: int) -> list[float]:
    """Samples/s of ``args.windows`` windows after ``args.warmup_steps`` steps; ``step(i)`` runs
    step ``i`` and returns something ``sync`` can wait on. Python's cyclic garbage collector is
    paused for the windows (collected before), as ``timeit`` and the harness's windows do."""
    i = 0
    out = None
    for _ in range(args.warmup_steps):
        out = step(i)
        i += 1
    sync(out)
    rates = []
    gc.collect()
    gc.disable()
    try:
        for _ in range(args.windows):
            t0 = time.perf_counter()
            for _ in range(args.window_steps):
                out = step(i)
                i += 1
            sync(out)
            rates.append(args.window_steps * batch_size / (time.perf_counter() - t0))
    finally:
        gc.enable()
    return rates


def report(train: list[float], infer: list[float]) -> None:
    print(json.dumps({"train_throughput": float(np.median(train)), "infer_throughput": float(np.median(infer)),
                      "train_samples": train, "infer_samples": infer}))
