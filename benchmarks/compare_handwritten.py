"""Harness overhead check: run `zoo bench` and the hand-written loops in `handwritten/` on the same
machine, and print harness / hand-written throughput per framework, model and phase. The goal is
>= 0.95: measuring through the harness must not cost a framework speed.

    .venv/bin/python benchmarks/compare_handwritten.py --frameworks torch,tf,jax --models mlp,cnn

Pairing: this VM's speed drifts by 10-30 % over minutes, far more than the overhead being measured,
so each (framework, model) pair is measured back to back: one `zoo bench` cell, then the loop
(the order alternates between rounds, ABBA, so a drift during a pair hits both sides equally).
A pair gives one ratio per phase; printed are the median ratio over --rounds pairs, with the
lowest and highest ratio beside it, and the ratio of the best runs (each side's highest
throughput over the rounds). On a shared machine, interference only ever slows a run down, and
here it comes in process-long spells (a worker process runs 30-50 % slow from start to end), so
the best of several runs is each side's closest estimate of its own speed: the ratio of bests
is the overhead figure, the median ratio shows how much the noise moved it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LOOPS = {"torch": "torch_loop.py", "tf": "tf_loop.py", "jax": "jax_loop.py"}
PHASES = ("train_throughput", "infer_throughput")


def harness_run(frameworks: list[str], models: list[str], threads: int, results: Path, run_id: str) -> dict:
    subprocess.run([sys.executable, "-m", "harness.cli", "bench", "-f", ",".join(frameworks), "-m", ",".join(models),
                    "--epochs", "1", "--threads", str(threads), "--results-dir", str(results), "--run-id", run_id],
                   cwd=ROOT, check=True, capture_output=True, text=True)
    out = {}
    for line in (results / run_id / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["status"] == "ok":
            out[(r["cell"]["framework"], r["cell"]["model"])] = {p: r["metrics"][p]["value"] for p in PHASES}
    return out


def loop_run(framework: str, model: str, threads: int, feed: str = "device") -> dict:
    env = {**os.environ, "PYTHONPATH": f"{HERE / 'handwritten'}{os.pathsep}{ROOT}"}
    proc = subprocess.run([sys.executable, str(HERE / "handwritten" / LOOPS[framework]), "--model", model,
                           "--threads", str(threads), "--feed", feed], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frameworks", default="torch,tf,jax")
    p.add_argument("--models", default="mlp,cnn")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--feed", choices=("device", "host"), default="device",
                   help="the JAX loop's batches: gathered on the device (idiomatic) or copied from NumPy "
                        "each step, as the harness contract does (default: device)")
    args = p.parse_args()
    frameworks, models = args.frameworks.split(","), args.models.split(",")
    ratios: dict = {}
    harness: dict = {}
    loops: dict = {}
    failed = set()
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for fw in frameworks:
                for model in models:
                    def harness_side() -> dict:
                        return harness_run([fw], [model], args.threads, Path(tmp), f"r{r}-{fw}-{model}").get((fw, model))

                    def loop_side() -> dict:
                        return loop_run(fw, model, args.threads, args.feed)

                    if r % 2 == 0:
                        h, w = harness_side(), loop_side()
                    else:
                        w, h = loop_side(), harness_side()
                    if h is None:
                        failed.add((fw, model))
                        continue
                    for phase in PHASES:
                        key = (fw, model, phase)
                        harness.setdefault(key, []).append(h[phase])
                        loops.setdefault(key, []).append(w[phase])
                        ratios.setdefault(key, []).append(h[phase] / w[phase])
    print(f"{'framework':10} {'model':6} {'phase':18} {'harness':>12} {'hand-written':>13} {'ratio':>6}  {'range':>11}"
          f"  {'best':>10} {'best':>12} {'ratio of bests':>14}")
    worst = worst_best = float("inf")
    for fw, model in sorted(failed):
        print(f"{fw:10} {model:6} {'(harness cell failed)':18}")
    for key in sorted(ratios):
        ratio = statistics.median(ratios[key])
        worst = min(worst, ratio)
        h, w = statistics.median(harness[key]), statistics.median(loops[key])
        span = f"{min(ratios[key]):.2f}-{max(ratios[key]):.2f}"
        hb, wb = max(harness[key]), max(loops[key])
        worst_best = min(worst_best, hb / wb)
        print(f"{key[0]:10} {key[1]:6} {key[2]:18} {h:12,.0f} {w:13,.0f} {ratio:6.2f}  {span:>11}"
              f"  {hb:10,.0f} {wb:12,.0f} {hb / wb:14.2f}")
    print(f"worst ratio of bests: {worst_best:.2f}; worst median ratio: {worst:.2f} "
          f"(threads={args.threads}, rounds={args.rounds}; harness and hand-written columns: medians, then bests)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
