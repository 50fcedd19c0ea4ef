"""zoo-jax's inference step against the hand-written loop's, in one process.

``compare_handwritten.py`` pairs whole processes, and on a shared VM a process runs 5-10 % slow
or fast from start to end, so a small gap between the adapter and the loop cannot be told from
that noise there. This script removes the process from the comparison: in one process, on the
digits MLP's test set (batch 32, the host's eval order cycled), it alternates, ``--rounds``
times:

* ``adapter``: ``JaxFramework.evaluate`` with the host's ``StepMeter`` (synchronised every
  ``--window`` steps, as the inference-throughput phase does), timed from the first step after a
  warm-up window to the last, by the meter's own clock;
* ``loop``: the same jitted gather-and-forward (``zoo_jax.steps.forward_at``) over the same staged
  split and index arrays, called bare, as ``jax_loop.py`` does;
* ``loop+meter``: the bare loop inside ``with meter.step(32)``, the harness's per-step timing alone;
* ``loop+kept``: the bare loop keeping every output, as ``evaluate`` must (it returns the logits).

and prints each variant's minimum and median time per step over the rounds.

    .venv/bin/python benchmarks/handwritten/jax_same_process.py --rounds 6
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from itertools import cycle, islice
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--steps", type=int, default=4000, help="steps per variant and round (default 4000)")
    p.add_argument("--window", type=int, default=400, help="steps per synchronised window; the first is warm-up")
    args = p.parse_args()
    os.environ.setdefault("PJRT_NPROC", str(args.threads))

    import jax

    from harness.measure.meter import StepMeter
    from zoo.batching import eval_order
    from zoo.contract import EvalData, Runtime, load_kwargs
    from zoo.init import init_weights
    from zoo.models import CORE_MODELS
    from zoo.tasks.digits import load_digits_task
    from zoo_jax.adapter import JaxFramework, stage_order
    from zoo_jax.steps import forward_at

    spec = next(s for s in CORE_MODELS if s.name == "mlp")
    fw = JaxFramework()
    fw.prepare(Runtime("cpu", "fp32", threads=args.threads, seed=0))
    digits = load_digits_task()
    model = fw.load_pretrained(**load_kwargs(
        fw, spec=spec, weights=init_weights(spec, (8, 8, 1), 10, seed=0), input_shape=(8, 8, 1), num_classes=10,
        device="cpu", precision="fp32", freeze="none"))
    order = tuple(islice(cycle(eval_order(len(digits.x_test), 32)), args.steps))
    timed = args.steps - args.window  # steps after the warm-up window

    def adapter() -> float:
        meter = StepMeter(sync_every=args.window)
        fw.evaluate(model, EvalData(digits.x_test, order), meter)
        return (meter.ends[-1] - meter.starts[args.window]) / timed

    names = tuple(sorted(model.params))
    forward, params = forward_at(model.module, names), tuple(model.params[n] for n in names)
    inputs, indices = jax.device_put(digits.x_test, model.device), stage_order(order, model.device)

    def loop(meter: bool, keep: bool) -> float:
        outputs, m, out, t0 = [], StepMeter(sync_every=args.window), None, 0.0
        for i, idx in enumerate(indices):
            if i == args.window:
                jax.block_until_ready(out)
                t0 = time.perf_counter()
            if meter:
                with m.step(32):
                    out = forward(params, inputs, idx)
            else:
                out = forward(params, inputs, idx)
            if keep:
                outputs.append(out)
        jax.block_until_ready(out)
        return (time.perf_counter() - t0) / timed

    variants = {"adapter": adapter, "loop": lambda: loop(False, False), "loop+meter": lambda: loop(True, False),
                "loop+kept": lambda: loop(False, True)}
    times: dict[str, list[float]] = {name: [] for name in variants}
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; threads={args.threads}, "
          f"rounds={args.rounds}, steps={args.steps}", flush=True)
    gc.collect()
    gc.disable()  # as the harness's windows and the loops do
    try:
        for _ in range(args.rounds):
            for name, run in variants.items():
                times[name].append(run())
    finally:
        gc.enable()
    for name, values in times.items():
        print(f"{name:11s} per step: min {min(values) * 1e6:6.2f} us, median {statistics.median(values) * 1e6:6.2f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
