"""Reproducibility check: run `zoo bench` twice in a row with the same arguments and say, for every
cell and timing metric, how steady each run was (robust CV of its windows) and whether the two runs
agree within their confidence intervals.

    .venv/bin/python benchmarks/back_to_back.py -- -f torch,tf,jax -m mlp,cnn --epochs 1 --repeats 3

"Agree" means the two runs' 95 % CIs of the median overlap ("strict": each run's median also lies
inside the other's CI). "Steady" means the robust CV of a throughput's repeated windows is under
--max-cv (5 %) in both runs: with --repeats, the median over processes of each process's own
window CV ("within"); the pooled CV over all processes, which also holds the spread between
processes (what the CI covers), is printed beside it; batch-1 latency is held to agreement only, because its samples are single
calls whose spread is the latency's own jitter, not the error of the measurement (that is the
CI). The script exits 0 when every timing metric of every cell is steady and agrees, 1
otherwise: the acceptance test of docs/measurement.md, meant for a quiet machine. It also prints
each run's quietness probe (the matmul speed at its start and end), which says whether the
machine was quiet enough for the test to mean anything.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
METRICS = ("train_throughput", "infer_throughput", "latency_p50_ms")


def bench(args: list[str], results: Path, run_id: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "bench", *args, "--results-dir", str(results),
                           "--run-id", run_id], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        sys.exit(f"zoo bench failed ({proc.returncode}):\n{proc.stderr}")
    records = {}
    for line in (results / run_id / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["status"] == "ok":
            records[r["cell"]["key"]] = r
    manifest = json.loads((results / run_id / "manifest.json").read_text())
    return {"records": records, "quietness": manifest.get("quietness", {})}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--max-cv", type=float, default=0.05, help="robust CV a timing metric may have (default 0.05)")
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="arguments for zoo bench, after --")
    args = p.parse_args()
    bench_args = [a for a in args.bench_args if a != "--"] or ["--epochs", "1", "--repeats", "3"]
    with tempfile.TemporaryDirectory() as tmp:
        a, b = bench(bench_args, Path(tmp), "first"), bench(bench_args, Path(tmp), "second")
    for name, run in (("first", a), ("second", b)):
        q = run["quietness"]
        if q.get("change") is not None:
            print(f"{name} run: matmul probe {q['start_gflops']:.0f} -> {q['end_gflops']:.0f} GFLOP/s "
                  f"({100 * q['change']:+.1f} %, {'quiet' if q['quiet'] else 'NOT quiet'})")
    print(f"{'cell':44} {'metric':18} {'first':>12} {'cv in':>5} {'pool':>5} {'second':>12} {'cv in':>5} {'pool':>5} "
          f"{'change':>7}  agree")
    failures = 0
    for key in sorted(set(a["records"]) | set(b["records"])):
        if key not in a["records"] or key not in b["records"]:
            print(f"{key:44} (failed in one run)")
            failures += 1
            continue
        for metric in METRICS:
            ma, mb = a["records"][key]["metrics"].get(metric), b["records"][key]["metrics"].get(metric)
            if not ma or not mb or not ma.get("spread") or not mb.get("spread"):
                continue
            sa, sb = ma["spread"], mb["spread"]
            agree = sa["ci_low"] <= sb["ci_high"] and sb["ci_low"] <= sa["ci_high"]
            strict = sa["ci_low"] <= mb["value"] <= sa["ci_high"] and sb["ci_low"] <= ma["value"] <= sb["ci_high"]
            cva, cvb = sa.get("within_cv", sa["robust_cv"]), sb.get("within_cv", sb["robust_cv"])
            steady = metric == "latency_p50_ms" or (cva < args.max_cv and cvb < args.max_cv)
            failures += not (agree and steady)
            verdict = ("yes (strict)" if strict else "yes") if agree else "NO"
            print(f"{key[:44]:44} {metric:18} {ma['value']:12,.4g} {100 * cva:4.1f}% {100 * sa['robust_cv']:4.1f}% "
                  f"{mb['value']:12,.4g} {100 * cvb:4.1f}% {100 * sb['robust_cv']:4.1f}% "
                  f"{100 * (mb['value'] / ma['value'] - 1):+6.1f}%  "
                  f"{verdict}{'' if steady else ' (cv over ' + format(args.max_cv, '.0%') + ')'}")
    print(f"{failures} timing metric(s) not steady or not agreeing (bench args: {' '.join(bench_args)})")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
