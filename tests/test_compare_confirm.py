"""`zoo compare --confirm`: cells a comparison could not settle are measured again, from this
install, interleaved with the baseline, and the verdict follows the new measurements. Real runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from results_helpers import copy_run, scale_timings, spread_samples

FAULTY = str(ROOT / "tests" / "faulty")
ENV = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": FAULTY}


def zoo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", "-p", "faulty_plugin", *args], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture
def runs(tmp_path):
    """A real baseline of one cell, and a candidate copy whose latency was made noisy and slower."""
    base = zoo("bench", "-f", "healthy", "-m", "mlp", "--epochs", "1", "--windows", "5",
               "--results-dir", str(tmp_path), "--run-id", "base")
    assert base.returncode == 0, base.stderr
    copy_run(tmp_path / "base", tmp_path / "cand",
             lambda r: spread_samples(scale_timings(r, 1.3, ("latency_p50_ms",)), "latency_p50_ms", 0.8))
    return tmp_path


@pytest.mark.slow
def test_an_unstable_cell_is_measured_again_and_settles(runs):
    # --max-cv 0.5: a real re-measurement of this cell (robust CV ~10 % on a busy machine) settles,
    # the doctored candidate (80 %) does not
    plain = zoo("compare", str(runs / "base"), str(runs / "cand"), "--format", "json", "--max-cv", "0.5")
    assert plain.returncode == 0, plain.stderr
    assert "unstable" in {r["verdict"] for r in json.loads(plain.stdout)["rows"]}

    proc = zoo("compare", str(runs / "base"), str(runs / "cand"), "--confirm", "--confirm-repeats", "2",
               "--confirm-rounds", "1", "--format", "json", "--all", "--max-cv", "0.5",
               # the same code measured twice on a shared machine can differ by a few per cent: the
               # question here is whether the doctored spread settles, not the 5 % gates
               "--threshold", "latency_p50_ms=50%,infer_throughput=50%,train_throughput=50%",
               "--fail-on", "latency_p50_ms,infer_throughput,train_throughput")  # timings: what the spread is in
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads(proc.stdout)["rows"]
    latency = next(r for r in rows if r["metric"] == "latency_p50_ms")
    assert latency["verdict"] in ("unchanged", "improved"), latency  # the same code, measured again
    for run in ("cand.confirm1", "base.confirm1"):  # both sides, interleaved
        record = json.loads((runs / run / "results.jsonl").read_text())
        assert record["environment"]["repeats"]["count"] == 2


@pytest.mark.slow
def test_confirm_refuses_a_candidate_from_another_install(runs):
    copy_run(runs / "base", runs / "other", lambda r: spread_samples(r, "latency_p50_ms", 0.4),
             manifest=lambda m: {**m, "harness": {**m["harness"], "commit": "0" * 40, "dirty": False}})
    proc = zoo("compare", str(runs / "base"), str(runs / "other"), "--confirm")
    assert proc.returncode == 2
    assert "re-runs the candidate's cells from this install" in proc.stderr
