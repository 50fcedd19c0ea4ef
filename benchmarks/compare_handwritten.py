"""Harness overhead check: run `zoo bench` and the hand-written loops in `handwritten/` on the same
machine, and print harness / hand-written throughput per framework, model and phase. The goal is
>= 0.98: measuring through the harness must not cost a framework speed.

    .venv/bin/python benchmarks/compare_handwritten.py --frameworks torch,tf,jax --models mlp,cnn --rounds 3

The loops are what a framework expert writes (`handwritten/common.py`): the digits split staged
once in the framework's layout and on its device, the host's batch order, no per-step conversion,
the same models and the same Adam (torch's formula). The harness side is one `zoo bench` cell
(`-t digits --epochs 1`, every other setting the default) per (framework, model); training and
inference throughput are read from its record. Both sides get the same threads (`--threads`,
and the harness's thread variables, OMP_NUM_THREADS and the like, for the loops too) and cycle
the same batches (one epoch of the host's order; the test set's batches).

Pairing: this VM's speed drifts by 10-30 % over minutes, far more than the overhead being measured,
so each (framework, model) pair is measured back to back: one `zoo bench` cell, then the loop
(the order alternates between rounds, ABBA, so a drift during a pair hits both sides equally).
All pairs run in one interleaved sequence: round 1 visits every pair, then round 2, and so on.
A pair gives one ratio per phase; printed are the median ratio over --rounds pairs, with the
lowest and highest ratio beside it, and the ratio of the best runs (each side's highest
throughput over the rounds). On a shared machine, interference only ever slows a run down, and
here it comes in process-long spells (a worker process runs 30-50 % slow from start to end), so
the best of several runs is each side's closest estimate of its own speed: the ratio of bests
is the overhead figure, the median ratio shows how much the noise moved it.

The output starts with the command, the commit (and, when the work tree differs from it, the
number of changed files and a digest of `git diff HEAD`) and the load average at the start, so a
table can be traced to the code and the machine state that produced it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
from zoo.threads import thread_env  # noqa: E402
LOOPS = {"torch": "torch_loop.py", "tf": "tf_loop.py", "jax": "jax_loop.py"}
PHASES = ("train_throughput", "infer_throughput")


def harness_run(frameworks: list[str], models: list[str], threads: int, results: Path, run_id: str) -> dict:
    subprocess.run([sys.executable, "-m", "harness.cli", "bench", "-f", ",".join(frameworks), "-m", ",".join(models),
                    "-t", "digits", "--epochs", "1", "--threads", str(threads), "--results-dir", str(results), "--run-id", run_id],
                   cwd=ROOT, check=True, capture_output=True, text=True)
    out = {}
    for line in (results / run_id / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["status"] == "ok":
            out[(r["cell"]["framework"], r["cell"]["model"])] = {p: r["metrics"][p]["value"] for p in PHASES}
    return out


def loop_run(framework: str, model: str, threads: int) -> dict:
    # The thread variables the harness sets for its workers (OMP_NUM_THREADS, ...), so both
    # sides start their thread pools alike.
    env = {**os.environ, **thread_env(threads), "PYTHONPATH": f"{HERE / 'handwritten'}{os.pathsep}{ROOT}"}
    proc = subprocess.run([sys.executable, str(HERE / "handwritten" / LOOPS[framework]), "--model", model,
                           "--threads", str(threads), "--epochs", "1"], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def commit() -> str:
    """The checked-out commit, and whether the work tree differs from it."""
    def git(*argv: str) -> str:
        return subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    changed = git("diff", "HEAD", "--name-only").splitlines()
    if not changed:
        return head
    digest = hashlib.sha256(git("diff", "HEAD").encode()).hexdigest()[:12]
    return f"{head} + uncommitted changes to {len(changed)} files (diff sha256 {digest})"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frameworks", default="torch,tf,jax")
    p.add_argument("--models", default="mlp,cnn")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    python = os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(str(ROOT)) else sys.executable
    print(f"command: {' '.join(shlex.quote(a) for a in [python, *sys.argv])}")
    print(f"commit: {commit()}; load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; "
          f"threads={args.threads}, rounds={args.rounds}", flush=True)
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
