"""The nightly table: change points over many runs, per machine, from real recorded runs."""

import numpy as np
import pytest

from harness.results.metrics import BUILTIN
from harness.analysis.history import build_history, change_points
from harness.results.loader import load_results
from results_helpers import RECORDED, copy_run, scale_timings, zoo

THROUGHPUT = BUILTIN["train_throughput"].compare


def test_a_lasting_step_is_one_change_point_at_the_right_run():
    values = [100, 101, 99, 100, 102, 90, 91, 89, 90]
    (cp,) = change_points(values, THROUGHPUT, "higher")
    assert cp.index == 5 and cp.change == pytest.approx(-0.10) and not cp.better and cp.sustained


def test_one_bad_night_in_the_middle_is_not_a_change_point():
    assert change_points([100, 101, 99, 100, 102, 60, 100, 101, 100], THROUGHPUT, "higher") == []


def test_a_bad_latest_night_is_flagged_as_not_yet_sustained():
    (cp,) = change_points([0.10, 0.101, 0.099, 0.10, 0.102, 0.101, 0.10, 0.12], BUILTIN["latency_p50_ms"].compare, "lower")
    assert cp.index == 7 and not cp.better and not cp.sustained


def test_a_step_smaller_than_the_night_to_night_noise_is_not_flagged():
    rng = np.random.default_rng(0)
    noisy = np.r_[rng.normal(100, 20, 10), rng.normal(90, 20, 10)]  # 10 % step, 20 % noise
    assert change_points(noisy, THROUGHPUT, "higher") == []


def test_two_steps_are_both_found():
    values = [100, 101, 99, 100, 102, 90, 91, 89, 90, 95, 96, 94, 95, 96]
    assert [c.index for c in change_points(values, THROUGHPUT, "higher")] == [5, 9]


def _nightly(tmp_path, slow_from: int, nights: int = 8, factor: float = 1.25):
    """Nights made from the two real recorded runs; from night ``slow_from`` on one cell is slower."""
    target = load_results([RECORDED]).cells["cell_key"].iloc[0]
    root = tmp_path / "nightly"
    for i in range(nights):
        src = RECORDED / ("aa-1" if i % 2 == 0 else "aa-2")
        copy_run(src, root / f"night-{i}",
                 lambda r, i=i: scale_timings(r, factor) if i >= slow_from and r["cell"]["key"] == target else r,
                 manifest=lambda m, i=i: {**m, "started_at": f"2026-01-0{i + 1}T02:00:00+00:00"})
    return root, target


def test_history_of_real_runs_flags_the_slowed_cell_only(tmp_path):
    root, target = _nightly(tmp_path, slow_from=4)
    h = build_history(load_results([root]))
    assert list(h.values.columns[-8:]) == [f"night-{i}" for i in range(8)]
    timed = h.changes[h.changes["metric"].isin(["train_throughput", "infer_throughput", "latency_p50_ms"])]
    assert set(timed["cell_key"]) <= {target}
    assert (timed["run"] == "night-4").all() and (~timed["better"]).all() and timed["sustained"].all()
    assert len(timed) >= 1


def test_runs_from_another_machine_are_a_separate_series(tmp_path):
    root, _ = _nightly(tmp_path, slow_from=99, nights=4)
    copy_run(RECORDED / "aa-1", root / "elsewhere",
             manifest=lambda m: {**m, "started_at": "2026-01-09T02:00:00+00:00",
                                 "machine": {**m["machine"], "fingerprint": "ffffffffffffffff"}})
    h = build_history(load_results([root]))
    assert h.values["fingerprint"].nunique() == 2
    mine = h.values[h.values["fingerprint"] == "ffffffffffffffff"]
    assert mine["elsewhere"].notna().all() and mine["night-0"].isna().all()


def test_zoo_history_renders_every_format(tmp_path):
    root, _ = _nightly(tmp_path, slow_from=4)
    for fmt in ("table", "markdown", "csv", "html"):
        proc = zoo("history", str(root), "--format", fmt, "--last", "6")
        assert proc.returncode == 0, proc.stderr
        assert "night-7" in proc.stdout
    proc = zoo("history", str(root), "--format", "markdown")
    assert "▼" in proc.stdout and "change points" in proc.stdout
    assert zoo("history", str(tmp_path / "nothing")).returncode == 2
