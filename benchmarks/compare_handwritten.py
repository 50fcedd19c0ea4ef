"""Harness overhead check: run `zoo bench` and the hand-written loops in `handwritten/` in one
session on the same machine, and print harness / hand-written throughput per framework, model
and phase. The goal is >= 0.95: measuring through the harness must not cost a framework speed.

    .venv/bin/python benchmarks/compare_handwritten.py --frameworks torch,tf,jax --models mlp,cnn

The runs alternate (harness, loop, harness, loop, ...) for --rounds rounds so slow drifts of the
machine hit both sides; each side's figure is the median over rounds of its per-run median.
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
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    frameworks, models = args.frameworks.split(","), args.models.split(",")
    harness: dict = {}
    loops: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for key, values in harness_run(frameworks, models, args.threads, Path(tmp), f"round{r}").items():
                for phase, v in values.items():
                    harness.setdefault((*key, phase), []).append(v)
            for fw in frameworks:
                for model in models:
                    values = loop_run(fw, model, args.threads)
                    for phase in PHASES:
                        loops.setdefault((fw, model, phase), []).append(values[phase])
    print(f"{'framework':10} {'model':6} {'phase':18} {'harness':>12} {'hand-written':>13} {'ratio':>6}")
    worst = float("inf")
    for key in sorted(loops):
        if key not in harness:
            print(f"{key[0]:10} {key[1]:6} {key[2]:18} {'(cell failed)':>12}")
            continue
        h, w = statistics.median(harness[key]), statistics.median(loops[key])
        worst = min(worst, h / w)
        print(f"{key[0]:10} {key[1]:6} {key[2]:18} {h:12,.0f} {w:13,.0f} {h / w:6.2f}")
    print(f"worst ratio: {worst:.2f} (threads={args.threads}, rounds={args.rounds})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
