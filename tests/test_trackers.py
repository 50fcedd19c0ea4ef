"""The tracker seam: a tracker and a metric definition from a plugin, and nothing else, put a new
measurement into every cell's record and the `zoo bench` table; a broken tracker never fails the
cell it measures. Real `zoo bench` runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT

FAULTY = str(ROOT / "tests" / "faulty")

TRACKER_PLUGIN = '''
import time

import zoo
from zoo.metrics import MetricDef, Rule
from zoo.trackers import Tracker


class PhaseClock(Tracker):
    """Wall time of the fine-tune phase, per cell; and how many phases it saw."""

    name = "phase_clock"

    def start(self, phase):
        self.t0 = time.perf_counter()

    def stop(self, phase):
        self.phases = getattr(self, "phases", 0) + 1
        if phase == "fine_tune":
            return {"tracked_fine_tune_s": time.perf_counter() - self.t0}
        return {}

    def finish(self):
        return {"tracked_phases": self.phases}


class Broken(Tracker):
    name = "broken"

    def stop(self, phase):
        raise RuntimeError("the counter device went away")


@zoo.hookimpl
def zoo_trackers():
    return [PhaseClock, Broken]


@zoo.hookimpl
def zoo_metrics():
    return [MetricDef("tracked_fine_tune_s", "s", "lower", label="tracked ft s", format="{:.3f}",
                      phase="fine_tune", compare=Rule("relative", 0.10, tested=False), column=95),
            MetricDef("tracked_phases", "count", "info", label="phases", format="{:.0f}", phase="memory")]
'''


@pytest.mark.slow
def test_a_plugin_tracker_measures_every_cell_and_a_broken_one_fails_none(tmp_path):
    (tmp_path / "tracker_plugin.py").write_text(TRACKER_PLUGIN)
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": os.pathsep.join([str(tmp_path), FAULTY])}
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "-p", "tracker_plugin", "-p", "faulty_plugin", "bench",
                           "-f", "healthy", "-m", "mlp,cnn", "--epochs", "1", "--windows", "1", "--results-dir",
                           str(tmp_path / "r"), "--run-id", "tr"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "tracked ft s" in proc.stdout  # the plugin's column in the bench table
    records = [json.loads(line) for line in (tmp_path / "r" / "tr" / "results.jsonl").read_text().splitlines()]
    assert len(records) == 2
    for record in records:
        assert record["status"] == "ok"
        tracked = record["metrics"]["tracked_fine_tune_s"]
        assert tracked["unit"] == "s" and tracked["direction"] == "lower" and tracked["value"] > 0
        # the tracker's fine_tune phase encloses the recipe's training clock (which excludes the
        # epoch-end evaluations the phase also holds; no upper bound: a busy machine stretches those)
        assert tracked["value"] >= record["metrics"]["fine_tune_wall_s"]["value"]
        assert record["metrics"]["tracked_phases"]["value"] >= 6  # data, load, fine_tune, evaluate, ...
        assert "peak_rss_mb" in record["metrics"]  # the built-in tracker still runs
        error = record["environment"]["measurement"]["trackers"]["broken"]["error"]
        assert "the counter device went away" in error
