"""What the hand-written loops share: the same data, batch order and timing method as a careful
engineer would use without the harness (wall clock over a window of steps, one synchronisation
at the end of the window)."""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Callable

import numpy as np

from zoo.batching import eval_order, train_order
from zoo.tasks.digits import load_digits_task


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--model", choices=("mlp", "cnn"), default="mlp")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--windows", type=int, default=5)
    p.add_argument("--window-steps", type=int, default=200)
    p.add_argument("--warmup-steps", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--feed", choices=("device", "host"), default="device",
                   help="where each step's batch comes from (jax_loop.py; see its docstring)")
    args = p.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    if args.threads < len(cpus):
        os.sched_setaffinity(0, cpus[: args.threads])
    return args


def data(batch_size: int):
    d = load_digits_task()
    train = [idx for epoch in train_order(len(d.x_train), batch_size, 50, seed=0) for idx in epoch]
    test = eval_order(len(d.x_test), batch_size)
    return d, train, test


def windows(step: Callable[[int], object], sync: Callable[[object], None], args, batch_size: int) -> list[float]:
    """Samples/s of ``args.windows`` windows after ``args.warmup_steps`` steps; ``step(i)`` runs
    step ``i`` and returns something ``sync`` can wait on."""
    i = 0
    out = None
    for _ in range(args.warmup_steps):
        out = step(i)
        i += 1
    sync(out)
    rates = []
    for _ in range(args.windows):
        t0 = time.perf_counter()
        for _ in range(args.window_steps):
            out = step(i)
            i += 1
        sync(out)
        rates.append(args.window_steps * batch_size / (time.perf_counter() - t0))
    return rates


def report(train: list[float], infer: list[float]) -> None:
    print(json.dumps({"train_throughput": float(np.median(train)), "infer_throughput": float(np.median(infer)),
                      "train_samples": train, "infer_samples": infer}))
