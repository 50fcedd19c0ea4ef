"""``zoo bench --repeats R``: one cell in R worker processes, merged into one record whose CI
covers the process-to-process spread (harness/repeats.py, harness.measure.stats.summarize_groups)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from conftest import ROOT, needs_plugin, run_zoo
from harness.plan.cells import Cell
from harness.results.records import CellRecord, ErrorInfo, Metric, record_from_dict, record_to_json
from harness.results.repeats import merge_repeats
from harness.measure.stats import summarize, summarize_groups

CELL = Cell("torch", "mlp", "digits")
FAULTY = {"PYTHONPATH": str(ROOT / "tests" / "faulty") + os.pathsep + os.environ.get("PYTHONPATH", "")}


def rep(train: list[float], latency: list[float], accuracy: float = 90.0, status: str = "ok",
        error: ErrorInfo | None = None) -> CellRecord:
    metrics = {
        "accuracy": Metric(accuracy, "%", "higher"),
        "train_throughput": Metric.from_samples(train, "samples/s", "higher"),
        "latency_p50_ms": Metric.from_samples(latency, "ms", "lower"),
        "latency_p99_ms": Metric(float(np.percentile(latency, 99)), "ms", "lower"),
        "train_gflops": Metric(float(np.median(train)) * 2e-6, "GFLOP/s", "higher"),
        "compile_s": Metric(0.5, "s", "lower"),
        "accuracy_curve": Metric(accuracy, "%", "info", (80.0, accuracy)),
    }
    return CellRecord("run", CELL, status, metrics, error=error, environment={"threads": 2}, duration_s=3.0)


def test_group_bootstrap_covers_a_shifted_process_where_pooling_does_not():
    # Four processes of 20 windows that agree tightly within each, one process 10 % slower: a CI
    # that treats the 80 windows as independent excludes the slow level (a next run could land
    # there); one that resamples processes first reaches it.
    rng = np.random.default_rng(1)
    groups = [list(level + rng.normal(0, 0.2, 20)) for level in (100.0, 90.0, 100.0, 100.0)]
    naive = summarize([v for g in groups for v in g])
    grouped = summarize_groups(groups)
    assert grouped.median == naive.median and grouped.n == 80
    assert naive.ci_low > 99 and grouped.ci_low < 91
    assert summarize_groups(groups) == grouped  # seeded: the same samples give the same interval
    assert summarize_groups([groups[0]]) == summarize(groups[0])


def test_merge_pools_windows_recomputes_percentiles_and_keeps_per_repeat_values():
    a = rep([100.0, 101.0, 99.0], [1.0, 1.1, 1.2, 5.0])
    b = rep([90.0, 91.0, 89.0], [1.0, 1.0, 1.1, 1.2])
    merged = merge_repeats([a, b])
    assert merged.status == "ok" and merged.duration_s == 6.0
    train = merged.metrics["train_throughput"]
    assert train.samples == (100.0, 101.0, 99.0, 90.0, 91.0, 89.0) and train.spread["groups"] == 2
    assert train.value == pytest.approx(95.0) and train.spread["ci_low"] <= 90.0
    # each process alone is steady (1 %); pooled, the 10 % step between them shows
    assert train.spread["within_cv"] == pytest.approx((1.4826 / 100 + 1.4826 / 90) / 2)
    assert train.spread["robust_cv"] > 0.05
    lat = merged.metrics["latency_p50_ms"].samples
    assert merged.metrics["latency_p99_ms"].value == pytest.approx(np.percentile(lat, 99))
    # proportional to training throughput: the merged throughput times the FLOPs per sample
    assert merged.metrics["train_gflops"].value == pytest.approx(95.0 * 2e-6)
    assert merged.metrics["accuracy"].value == 90.0 and merged.metrics["accuracy"].samples == (90.0, 90.0)
    assert merged.metrics["accuracy_curve"].samples == (80.0, 90.0)
    repeats = merged.environment["repeats"]
    assert repeats["count"] == 2 and repeats["values"]["train_throughput"] == [100.0, 90.0]
    assert merged.environment["threads"] == 2
    assert record_from_dict(json.loads(record_to_json(merged))) == merged  # stores and loads


def test_a_failed_repeat_fails_the_cell_and_names_it_but_keeps_the_measured_repeats():
    crash = ErrorInfo("worker", "WorkerDied", "worker died from SIGSEGV")
    merged = merge_repeats([rep([100.0, 100.0], [1.0, 1.0]), CellRecord("run", CELL, "failed", error=crash)])
    assert merged.status == "failed"
    assert merged.error.message == "repeat 2 of 2: worker died from SIGSEGV" and merged.error.type == "WorkerDied"
    assert merged.metrics["train_throughput"].value == 100.0
    assert merged.environment["repeats"]["statuses"] == ["ok", "failed"]


@pytest.mark.slow
def test_a_cell_that_crashes_in_its_second_process_is_failed_and_not_run_a_third_time(tmp_path):
    env = {**FAULTY, "FLAKY_COUNTER": str(tmp_path / "count")}
    proc = run_zoo("-p", "faulty_plugin", "bench", "-f", "healthy,flaky", "-m", "mlp", "--epochs", "1",
                   "--windows", "2", "--threads", "1", "--repeats", "3", "--results-dir", str(tmp_path),
                   "--run-id", "flaky", env=env)
    assert proc.returncode == 1, proc.stderr
    run = tmp_path / "flaky"
    records = {json.loads(line)["cell"]["framework"]: json.loads(line)
               for line in (run / "results.jsonl").read_text().splitlines()}
    assert records["healthy"]["status"] == "ok" and records["healthy"]["environment"]["repeats"]["count"] == 3
    flaky = records["flaky"]
    assert flaky["status"] == "failed" and flaky["error"]["message"] == "repeat 2 of 3: worker died from SIGABRT"
    assert flaky["environment"]["repeats"]["statuses"] == ["ok", "failed"]
    assert flaky["metrics"]["infer_throughput"]["samples"]  # what the first process measured is kept
    assert (tmp_path / "count").read_text() == "2"  # no third process
    repeats = [json.loads(line)["cell"]["framework"] for line in (run / "repeats.jsonl").read_text().splitlines()]
    assert repeats == ["healthy", "flaky", "healthy", "flaky", "healthy"]


def test_one_repeat_is_the_record_itself():
    a = rep([1.0, 2.0], [1.0, 1.0])
    assert merge_repeats([a]) is a
    with pytest.raises(ValueError):
        merge_repeats([])


@needs_plugin("zoo-torch")
def test_repeats_below_one_are_refused():
    proc = run_zoo("bench", "-f", "torch", "--repeats", "0")
    assert proc.returncode == 2 and "--repeats must be at least 1" in proc.stderr


@pytest.mark.slow
@needs_plugin("zoo-torch")
def test_bench_with_repeats_interleaves_processes_and_merges_one_record_per_cell(tmp_path):
    proc = run_zoo("bench", "-f", "torch", "-m", "mlp,cnn", "--epochs", "1", "--windows", "3", "--repeats", "2",
                   "--results-dir", str(tmp_path), "--run-id", "rep")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "torch mlp digits fp32 (repeat 2/2): ok" in proc.stderr
    run = tmp_path / "rep"
    records = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    assert [(r["cell"]["model"], r["status"]) for r in records] == [("mlp", "ok"), ("cnn", "ok")]
    for record in records:
        train = record["metrics"]["train_throughput"]
        assert len(train["samples"]) == 6 and train["spread"]["groups"] == 2
        assert record["environment"]["repeats"]["count"] == 2
        acc = record["environment"]["repeats"]["values"]["accuracy"]
        assert acc[0] == acc[1]  # deterministic fine-tune: both processes reach the same accuracy
    # Round by round: every cell's first process, then every cell's second.
    repeats = [json.loads(line) for line in (run / "repeats.jsonl").read_text().splitlines()]
    assert [r["cell"]["model"] for r in repeats] == ["mlp", "cnn", "mlp", "cnn"]
    keys = [r["cell"]["key"] for r in records]
    assert sorted(p.name for p in (run / "logs").iterdir()) == sorted(
        [f"{k}.log" for k in keys] + [f"{k}.repeat2.log" for k in keys])
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["request"]["repeats"] == 2 and manifest["quietness"]["end_gflops"] > 0
