"""A contended machine is detected, not trusted: a cell run while busy loops are pinned to its CPU
is marked disturbed (with the reason, in the record and on the terminal); the same cell alone is
not. Real processes on real cores."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT

FAULTY = str(ROOT / "tests" / "faulty")
BUSY = "import os, sys\nos.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True:\n    pass\n"


def bench(tmp_path, run_id: str, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": FAULTY}
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "-p", "faulty_plugin", "bench", "-f", "healthy",
                           "-m", "cnn", "--epochs", "1", "--windows", "3", "--threads", "1", "--results-dir",
                           str(tmp_path), "--run-id", run_id, *extra], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc, json.loads((tmp_path / run_id / "results.jsonl").read_text().splitlines()[-1])


@pytest.mark.slow
def test_busy_loops_on_the_cells_cpu_mark_it_disturbed_and_alone_it_is_not(tmp_path):
    cpu = sorted(os.sched_getaffinity(0))[0]  # a one-thread cell is pinned to the first allowed CPU
    hogs = [subprocess.Popen([sys.executable, "-c", BUSY, str(cpu)]) for _ in range(2)]
    try:
        proc, busy = bench(tmp_path, "busy", "--retry-disturbed", "1")
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    verdict = busy["environment"]["disturbance"]
    print("busy:", busy["environment"]["measurement"]["inference"]["contention"])
    assert verdict["disturbed"], verdict
    assert any("not alone on its cores" in r for r in verdict["reasons"])
    # two hogs and the cell share one CPU: the others took about two thirds of it
    assert busy["environment"]["measurement"]["inference"]["contention"]["others_share"] > 0.4
    assert len(verdict["retried"]) == 1  # run again once; the disturbed attempt's numbers are kept
    assert "disturbed:" in proc.stdout and "ok, disturbed" in proc.stdout

    _, alone = bench(tmp_path, "alone")
    verdict = alone["environment"]["disturbance"]
    print("alone:", alone["environment"]["measurement"]["inference"]["contention"], verdict["peak_drift"])
    assert not verdict["disturbed"], verdict["reasons"]
    assert alone["environment"]["measurement"]["inference"]["contention"]["others_share"] < 0.10


def test_compare_says_which_cells_were_disturbed_and_that_a_run_was_not_quiet(tmp_path):
    from results_helpers import RECORDED, copy_run, zoo

    def disturbed(record):
        if record["cell"]["framework"] == "torch":
            record["environment"]["disturbance"] = {"disturbed": True, "reasons": ["inference: a timing window got "
                                                                                   "40% of the CPU it asked for"]}
        return record

    cand = copy_run(RECORDED / "aa-2", tmp_path / "cand", disturbed,
                    manifest=lambda m: {**m, "quietness": {**m.get("quietness", {}), "quiet": False}})
    proc = zoo("compare", str(RECORDED / "aa-1"), str(cand), "--format", "json")
    warnings = json.loads(proc.stdout)["warnings"]
    assert any("candidate run was not quiet" in w for w in warnings), warnings
    assert any("candidate cell torch-mlp" in w and "40% of the CPU" in w for w in warnings), warnings
    assert not any("baseline" in w for w in warnings)


def test_report_and_history_warn_about_disturbed_cells_and_unquiet_runs(tmp_path):
    from results_helpers import RECORDED, copy_run, zoo

    def disturbed(record):
        if record["cell"]["framework"] == "jax":
            record["environment"]["disturbance"] = {"disturbed": True, "reasons": ["the device peak moved +30%"]}
        return record

    copy_run(RECORDED / "aa-2", tmp_path / "runs" / "noisy", disturbed,
             manifest=lambda m: {**m, "quietness": {**m.get("quietness", {}), "quiet": False}})
    for command in ("report", "history"):
        proc = zoo(command, str(tmp_path / "runs"))
        assert proc.returncode == 0, proc.stderr
        said = " ".join(proc.stderr.split())
        assert "cell jax-mlp-digits-cpu-fp32-b32-freeze_none-pretrained was disturbed: the device peak moved +30%" \
            in said, proc.stderr
        assert "run noisy was not quiet" in proc.stderr
