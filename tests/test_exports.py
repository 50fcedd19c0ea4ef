"""Exports for existing tools, from real recorded runs: pytest-benchmark JSON (read back by
pytest-benchmark itself), github-action-benchmark custom JSON, Bencher Metric Format."""

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.render.exports import to_bencher, to_github_action_benchmark, to_pytest_benchmark
from harness.results.loader import load_results
from results_helpers import RECORDED, zoo

RUN = RECORDED / "aa-1"


def _all_numbers_finite(doc) -> bool:
    if isinstance(doc, dict):
        return all(_all_numbers_finite(v) for v in doc.values())
    if isinstance(doc, list):
        return all(_all_numbers_finite(v) for v in doc)
    return not isinstance(doc, float) or math.isfinite(doc)


def test_pytest_benchmark_json_has_one_benchmark_per_timed_metric_and_cell():
    rs = load_results([RUN])
    doc = to_pytest_benchmark(rs)
    assert set(doc) == {"machine_info", "commit_info", "benchmarks", "datetime", "version"}
    assert doc["commit_info"]["id"] == rs.runs["commit"].iloc[0]
    ok_cells = (rs.cells["status"] == "ok").sum()
    assert len(doc["benchmarks"]) == 3 * ok_cells
    latency = next(b for b in doc["benchmarks"] if b["name"].startswith("latency_p50_ms[torch-"))
    stats = latency["stats"]
    assert stats["rounds"] == len(stats["data"]) == 100
    assert stats["min"] <= stats["q1"] <= stats["median"] <= stats["q3"] <= stats["max"]
    assert stats["ops"] == pytest.approx(1 / stats["mean"])
    record_ms = rs.metrics.query("metric == 'latency_p50_ms' and framework == 'torch'")["value"].iloc[0]
    assert stats["median"] == pytest.approx(record_ms / 1000)  # seconds per call
    assert _all_numbers_finite(doc)


@pytest.mark.skipif(shutil.which("pytest-benchmark", path=str(Path(sys.executable).parent)) is None,
                    reason="pytest-benchmark is not installed (pip install -e '.[benchmarks]')")
def test_pytest_benchmark_itself_reads_the_export(tmp_path):
    out = tmp_path / "0001_zoo.json"
    proc = zoo("export", str(RUN), "--format", "pytest-benchmark", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    cli = Path(sys.executable).parent / "pytest-benchmark"
    shown = subprocess.run([str(cli), "compare", str(out), "--group-by", "group", "--columns", "min,median,ops"],
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "latency_p50_ms[torch-mlp-digits" in shown.stdout and "train_throughput[jax-mlp" in shown.stdout


def test_github_action_benchmark_splits_by_direction(tmp_path):
    bigger, smaller = to_github_action_benchmark(load_results([RUN]))
    names_big = {e["name"].split(" ")[1] for e in bigger}
    names_small = {e["name"].split(" ")[1] for e in smaller}
    assert {"accuracy", "train_throughput", "infer_throughput"} <= names_big
    assert {"latency_p50_ms", "peak_rss_mb", "compile_s"} <= names_small and not names_big & names_small
    for e in bigger + smaller:
        assert set(e) <= {"name", "unit", "value", "range", "extra"} and isinstance(e["value"], float)
    proc = zoo("export", str(RUN), "--format", "github-action-benchmark", "-o", str(tmp_path / "gab"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "gab" / "bigger_is_better.json").read_text()) == bigger
    assert json.loads((tmp_path / "gab" / "smaller_is_better.json").read_text()) == smaller
    assert zoo("export", str(RUN), "--format", "github-action-benchmark").returncode == 2


def test_bencher_metric_format_matches_its_schema():
    doc = to_bencher(load_results([RUN]))
    assert doc and all(isinstance(k, str) and k for k in doc)
    for measures in doc.values():
        for slug, m in measures.items():
            assert len(slug) <= 64 and set(m) <= {"value", "lower_value", "upper_value"} and "value" in m
            if "lower_value" in m:
                assert m["lower_value"] <= m["value"] <= m["upper_value"]
    torch = next(v for k, v in doc.items() if k.startswith("torch-"))
    assert {"train-throughput", "latency-p50-ms", "accuracy", "peak-rss-mb"} <= set(torch)
    proc = zoo("export", str(RUN), "--format", "bencher")
    assert proc.returncode == 0 and json.loads(proc.stdout) == doc


def test_failed_cells_are_left_out_and_json_stays_strict(tmp_path):
    from results_helpers import copy_run

    run = copy_run(RUN, tmp_path / "r", lambda r: {**r, "status": "failed", "error": {
        "phase": "evaluate", "type": "X", "message": "m", "detail": ""}} if r["cell"]["framework"] == "tf" else r)
    rs = load_results([run])
    for doc in (to_pytest_benchmark(rs), to_bencher(rs), to_github_action_benchmark(rs)):
        text = json.dumps(doc, allow_nan=False)
        assert "tf-mlp" not in text
