"""Harness overhead check: run `zoo bench` and the hand-written loops in `handwritten/` on the same
machine, and print harness / hand-written throughput per framework, model and phase. The goal is
>= 0.95: measuring through the harness must not cost a framework speed.

    .venv/bin/python benchmarks/compare_handwritten.py --frameworks torch,tf,jax --models mlp,cnn

Pairing: this VM's speed drifts by 10-30 % over minutes, far more than the overhead being measured,
so each (framework, model) pair is measured back to back: one `zoo bench` cell, then the loop
(the order alternates between rounds, ABBA, so a drift during a pair hits both sides equally).
A pair gives one ratio per phase; the figure printed is the median ratio over --rounds pairs,
with the lowest and highest ratio beside it.
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


def loop_run(framework: str, model: str, threads: int) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{HERE / 'handwritten'}{os.pathsep}{ROOT}"}
    proc = subprocess.run([sys.executable, str(HERE / "handwritten" / LOOPS[framework]), "--model", model,
                           "--threads", str(threads)], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frameworks", default="torch,tf,jax")
    p.add_argument("--models", default="mlp,cnn")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--rounds", type=int, default=3)
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
                        return loop_run(fw, model, args.threads)

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
    print(f"{'framework':10} {'model':6} {'phase':18} {'harness':>12} {'hand-written':>13} {'ratio':>6}  {'range':>11}")
    worst = float("inf")
    for fw, model in sorted(failed):
        print(f"{fw:10} {model:6} {'(harness cell failed)':18}")
    for key in sorted(ratios):
        ratio = statistics.median(ratios[key])
        worst = min(worst, ratio)
        h, w = statistics.median(harness[key]), statistics.median(loops[key])
        span = f"{min(ratios[key]):.2f}-{max(ratios[key]):.2f}"
        print(f"{key[0]:10} {key[1]:6} {key[2]:18} {h:12,.0f} {w:13,.0f} {ratio:6.2f}  {span:>11}")
    print(f"worst median ratio: {worst:.2f} (threads={args.threads}, rounds={args.rounds})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
