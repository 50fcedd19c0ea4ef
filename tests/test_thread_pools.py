"""Fairness facts are recorded, not assumed: each record lists the BLAS/OpenMP pools the worker
really ran with beside the threads it was given, and a pool of another size fails the check."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, needs_plugin
from harness.measure.threadpools import fairness


def test_a_pool_of_another_size_fails_the_check():
    pools = [{"library": "openblas", "api": "blas", "prefix": "libopenblas", "num_threads": 2, "version": "x"},
             {"library": "openmp", "api": "openmp", "prefix": "libgomp", "num_threads": 8, "version": None}]
    verdict = fairness(pools, 2)
    assert not verdict["ok"] and verdict["mismatches"] == [
        "libgomp (openmp) runs 8 threads, not the 2 the cell was given"]
    assert fairness(pools[:1], 2)["ok"]


@pytest.mark.slow
@needs_plugin("zoo-torch")
def test_a_torch_cell_records_its_real_pools_and_they_match(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "bench", "-f", "torch", "-m", "mlp", "--epochs", "1",
                           "--windows", "1", "--threads", "1", "--results-dir", str(tmp_path), "--run-id", "tp"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "NO_COLOR": "1"})
    assert proc.returncode == 0, proc.stderr
    record = json.loads((tmp_path / "tp" / "results.jsonl").read_text())
    pools = record["environment"]["thread_pools"]
    assert pools["requested"] == 1 and pools["ok"], pools
    assert {"blas", "openmp"} <= {p["api"] for p in pools["pools"]}  # numpy's BLAS and torch's OpenMP
