"""Memory per phase: an adapter that holds a known 400 MiB while fine-tuning and 100 MiB while
evaluating is reported within 5 % in each phase, over a baseline taken after the task's data."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT

FAULTY = str(ROOT / "tests" / "faulty")


@pytest.mark.slow
def test_known_allocations_are_reported_per_phase_within_5_percent(tmp_path):
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": FAULTY}
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "-p", "faulty_plugin", "bench", "-f", "memknown",
                           "-m", "mlp", "--epochs", "1", "--windows", "1", "--results-dir", str(tmp_path),
                           "--run-id", "mem"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = json.loads((tmp_path / "mem" / "results.jsonl").read_text())
    m = {k: v["value"] for k, v in record["metrics"].items()}
    assert m["fine_tune_peak_mb"] == pytest.approx(400, rel=0.05)
    assert m["inference_peak_mb"] == pytest.approx(100, rel=0.05)
    assert m["latency_peak_mb"] == pytest.approx(100, rel=0.05)
    assert m["training_peak_mb"] == pytest.approx(400, rel=0.05)
    assert m["load_peak_mb"] < 20
    assert m["peak_rss_mb"] == pytest.approx(400, rel=0.05)
    assert m["process_peak_mb"] >= m["baseline_rss_mb"] + 400 * 0.95
    assert record["environment"]["measurement"]["trackers"]["host_memory"]["method"].startswith("VmHWM")
