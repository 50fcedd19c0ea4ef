"""The executor seam: an executor registered by a plugin runs real cells through the unchanged
worker, in whatever order it likes, and the records say where they ran (the peak comes from the
executor's own measurement, the machine from the worker)."""

from __future__ import annotations

import json
import os

import pytest

from conftest import needs_plugin, run_zoo

TOY_EXECUTOR = '''
import json, subprocess, sys
from pathlib import Path

import zoo
from harness.results.records import record_from_dict
from harness.run.executors.base import Executor


class BackwardsExecutor(Executor):
    """Runs the jobs last first, each in a plain subprocess of the worker."""

    name = "backwards"
    description = "a test executor"

    def submit(self, jobs, on_start=None):
        self.options.work_dir.mkdir(parents=True, exist_ok=True)
        for job in reversed(list(jobs)):
            if on_start:
                on_start(job)
            plan = self.options.work_dir / (job.name + ".plan.json")
            out = self.options.work_dir / (job.name + ".record.json")
            plan.write_text(json.dumps(job.plan.to_dict()))
            with open(job.log_path, "wb") as log:
                subprocess.run([sys.executable, "-m", "harness.worker", str(plan), str(out)],
                               env={**__import__("os").environ, **job.plan.env}, stdout=log, stderr=log,
                               timeout=self.options.timeout_s, check=True)
            yield job, record_from_dict(json.loads(out.read_text()))

    def measure_peaks(self, pairs, threads):
        return {f"{d}/{p}": {"device": d, "precision": p, "gflops": 123.0, "source": "toy"} for d, p in pairs}


@zoo.hookimpl
def zoo_executors():
    return [BackwardsExecutor]
'''


@pytest.mark.slow
@needs_plugin("zoo-torch")
def test_an_executor_from_a_plugin_runs_real_cells(tmp_path):
    (tmp_path / "toy_executor.py").write_text(TOY_EXECUTOR)
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    proc = run_zoo("-p", "toy_executor", "bench", "-f", "torch", "-m", "mlp,cnn", "--epochs", "1", "--windows", "2",
                   "--executor", "backwards", "--results-dir", str(tmp_path / "r"), "--run-id", "toy", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    records = [json.loads(line) for line in (tmp_path / "r" / "toy" / "results.jsonl").read_text().splitlines()]
    assert [r["cell"]["model"] for r in records] == ["cnn", "mlp"]  # stored as they finished
    assert all(r["status"] == "ok" for r in records)
    for r in records:
        assert r["environment"]["peak_gflops"] == 123.0  # measured by the executor, where cells run
        assert r["environment"]["machine"]["fingerprint"]  # stamped by the worker itself
        assert r["environment"]["plugin"]["distribution"] == "zoo-torch"
    manifest = json.loads((tmp_path / "r" / "toy" / "manifest.json").read_text())
    assert manifest["request"]["executor"] == "backwards" and manifest["peaks"]["cpu/fp32"]["source"] == "toy"
    assert proc.stdout.index("mlp") < proc.stdout.index("cnn"), "the table keeps plan order"


@needs_plugin("zoo-torch")
def test_an_unknown_executor_is_refused_before_anything_is_written(tmp_path):
    proc = run_zoo("bench", "-f", "torch", "--executor", "slurm", "--results-dir", str(tmp_path))
    assert proc.returncode == 2
    assert "unknown executor 'slurm'; available: local" in proc.stderr
    assert not list(tmp_path.iterdir())
