"""Scheduling overhead per cell: the Ray executor on a local one-node cluster versus the local
executor, interleaved (local, ray, local, ray, ...), on the same quick cells.

    .venv/bin/python benchmarks/executor_overhead.py --rounds 3 --cells 4

Overhead of a run = its wall time minus the sum of its cells' worker durations (the worker time
is the same work either way), divided by the cells. The Ray cluster is started on 127.0.0.1 for
the benchmark and stopped after it.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAULTY = str(ROOT / "tests" / "faulty")
RAY = str(Path(sys.executable).with_name("ray"))
ENV = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PYTHONPATH": FAULTY, "NO_COLOR": "1"}


def one_run(results: Path, run_id: str, cells: int, executor: list[str]) -> float:
    frameworks = ",".join(["healthy", "legacy"][: max(1, min(2, cells))])
    models = ",".join(["mlp", "cnn"][: max(1, cells // 2)])
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "harness.cli", "-p", "faulty_plugin", "bench", "-f", frameworks, "-m",
                    models, "--epochs", "1", "--windows", "1", "--results-dir", str(results), "--run-id", run_id,
                    *executor], env=ENV, cwd=ROOT, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    records = [json.loads(line) for line in (results / run_id / "results.jsonl").read_text().splitlines()]
    return (wall - sum(r["duration_s"] for r in records)) / len(records)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cells", type=int, default=4, help="cells per run (2 or 4)")
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run([RAY, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
                    '--resources={"zoo_bench_node": 1}', "--include-dashboard=false", "--disable-usage-stats"],
                   env=ENV, check=True, capture_output=True)
    out: dict[str, list[float]] = {"local": [], "ray": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.rounds):
                out["local"].append(one_run(Path(tmp), f"local{r}", args.cells, []))
                out["ray"].append(one_run(Path(tmp), f"ray{r}", args.cells,
                                          ["--executor", "ray", "--ray-address", f"127.0.0.1:{port}"]))
    finally:
        subprocess.run([RAY, "stop", "--force"], env=ENV, capture_output=True)
    for name, values in out.items():
        print(f"{name:5s} overhead per cell: median {statistics.median(values):.2f} s "
              f"(rounds: {', '.join(f'{v:.2f}' for v in values)})")
    print(f"ray - local: {statistics.median(out['ray']) - statistics.median(out['local']):+.2f} s per cell")
    return 0


if __name__ == "__main__":
    sys.exit(main())
