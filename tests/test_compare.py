"""The regression rule on real recorded samples: A/A is quiet, a 10% slowdown in one cell is found
in that cell only, a noisy cell is unstable; the statistics match scipy; `zoo compare` gates CI."""

import json

import numpy as np
import pytest
from scipy.stats import false_discovery_control, mannwhitneyu

from conftest import run_zoo
from harness.analysis.compare import (CompareSettings, NotComparable, benjamini_hochberg, compare_results, mann_whitney,
                             mann_whitney_rows)
from harness.results.loader import load_results
from results_helpers import RECORDED, TIMED, copy_run, scale_timings, spread_samples, zoo


def _compare(baseline, candidate, **kw):
    return compare_results(load_results([baseline]), load_results([candidate]), **kw)


def _most_stable_cell() -> str:
    """The cell whose timing metrics have the smallest robust CV in both recorded runs."""
    m = load_results([RECORDED]).metrics
    m = m[m["metric"].isin(TIMED)]
    return m.groupby("cell_key")["robust_cv"].max().idxmin()


# --- the statistics


@pytest.mark.parametrize("n1,n2,ties", [(5, 5, False), (3, 8, False), (10, 10, False), (5, 5, True),
                                        (25, 30, False), (100, 100, True)])
def test_mann_whitney_matches_scipy(n1, n2, ties):
    rng = np.random.default_rng(n1 * 100 + n2)
    for shift in (0.0, 0.5, 1.5):
        x, y = rng.normal(10, 1, n1), rng.normal(10 + shift, 1, n2)
        if ties:
            x, y = np.round(x), np.round(y)
        method = "exact" if max(n1, n2) <= 20 and not ties else "asymptotic"
        expected = mannwhitneyu(y, x, alternative="two-sided", method=method).pvalue
        p, lo, hi = mann_whitney(x, y, relative=False)
        assert p == pytest.approx(expected, rel=1e-9, abs=1e-12)
        assert lo <= np.median(np.subtract.outer(y, x)) <= hi


def test_ci_of_the_shift_covers_the_true_ratio_about_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    x = rng.lognormal(0, 0.05, (2000, 10))
    y = rng.lognormal(np.log(1.10), 0.05, (2000, 10))
    r = mann_whitney_rows(x, y, 0.95)
    coverage = np.mean((r["ci_low"] <= 0.10) & (r["ci_high"] >= 0.10))
    assert 0.93 <= coverage <= 0.98


def test_benjamini_hochberg_matches_scipy():
    p = np.random.default_rng(3).uniform(size=50) ** 3
    assert np.allclose(benjamini_hochberg(p), false_discovery_control(p))
    assert np.isnan(benjamini_hochberg(np.array([0.01, np.nan]))[1])


# --- the acceptance criteria, on real recorded samples


def test_a_a_recorded_runs_flag_no_regression():
    c = _compare(RECORDED / "aa-1", RECORDED / "aa-2")
    assert c.counts()["regressed"] == 0, c.rows[c.rows["verdict"] == "regressed"].to_string()
    assert set(c.rows["metric"]) >= {"train_throughput", "infer_throughput", "latency_p50_ms", "accuracy",
                                     "peak_rss_mb"}


def test_a_10_percent_slowdown_in_one_cell_is_flagged_in_that_cell_only(tmp_path):
    target = _most_stable_cell()
    slow = copy_run(RECORDED / "aa-2", tmp_path / "slow",
                    lambda r: scale_timings(r, 1.10) if r["cell"]["key"] == target else r)
    c = _compare(RECORDED / "aa-1", slow)
    regressed = c.rows[c.rows["verdict"] == "regressed"]
    assert set(regressed["cell_key"]) == {target}, c.rows.to_string()
    mine = c.rows[(c.rows["cell_key"] == target) & c.rows["metric"].isin(TIMED)]
    assert (mine["verdict"] != "improved").all()
    latency = mine[mine["metric"] == "latency_p50_ms"].iloc[0]
    assert latency["verdict"] == "regressed" and latency["ci_low"] > 0.05 and latency["q_value"] < 0.05


def test_a_cell_with_30_percent_cv_is_unstable_not_regressed(tmp_path):
    target = _most_stable_cell()

    def noisy_and_slow(r):
        if r["cell"]["key"] != target:
            return r
        return spread_samples(scale_timings(r, 1.10), "train_throughput", 0.30)

    c = _compare(RECORDED / "aa-1", copy_run(RECORDED / "aa-2", tmp_path / "noisy", noisy_and_slow))
    mine = c.rows[(c.rows["cell_key"] == target) & c.rows["metric"].isin(TIMED)]
    assert set(mine["verdict"]) == {"unstable"}
    train = mine[mine["metric"] == "train_throughput"].iloc[0]
    assert 0.25 < train["cv_candidate"] < 0.40 and "robust CV" in train["note"]
    assert "regressed" not in set(c.rows["verdict"])


def _edit_metric(name, delta):
    def edit(r):
        r["metrics"][name]["value"] += delta
        return r
    return edit


@pytest.mark.parametrize("metric,delta,verdict", [
    ("accuracy", -0.6, "regressed"), ("accuracy", -0.4, "unchanged"), ("accuracy", +0.6, "improved"),
    ("peak_rss_mb", +40.0, "regressed"),  # > 2 % and > 32 MiB
    ("peak_rss_mb", +20.0, "unchanged"),  # > 2 % but < 32 MiB
    ("peak_rss_mb", -40.0, "improved"),
])
def test_single_value_metrics_are_judged_by_threshold_alone(tmp_path, metric, delta, verdict):
    c = _compare(RECORDED / "aa-1", copy_run(RECORDED / "aa-1", tmp_path / "c", _edit_metric(metric, delta)))
    rows = c.rows[c.rows["metric"] == metric]
    assert set(rows["verdict"]) == {verdict}
    assert rows["p_value"].isna().all() and (rows["note"] == "no samples: threshold only").all()


def test_missing_failed_and_new_cells(tmp_path):
    cells = load_results([RECORDED / "aa-1"]).cells["cell_key"].tolist()
    gone, failed = cells[0], cells[1]

    def edit(r):
        if r["cell"]["key"] == gone:
            return None
        if r["cell"]["key"] == failed:
            r.update(status="failed", error={"phase": "fine_tune", "type": "RuntimeError", "message": "boom",
                                             "detail": ""})
        return r

    candidate = copy_run(RECORDED / "aa-2", tmp_path / "c", edit)
    c = _compare(RECORDED / "aa-1", candidate)
    assert set(c.rows.loc[c.rows["cell_key"] == gone, "verdict"]) == {"missing"}
    lost = c.rows[c.rows["cell_key"] == failed]
    assert set(lost["verdict"]) == {"missing"} and lost["note"].str.contains("failed in fine_tune: boom").all()
    reverse = compare_results(load_results([candidate]), load_results([RECORDED / "aa-1"]))
    assert set(reverse.rows.loc[reverse.rows["cell_key"] == gone, "verdict"]) == {"new"}
    assert len(c.failures(["accuracy"], fail_on_missing=True)) == len(lost) + (c.rows["cell_key"] == gone).sum()


def test_runs_from_different_machines_are_not_compared(tmp_path):
    other = copy_run(RECORDED / "aa-2", tmp_path / "other",
                     manifest=lambda m: {**m, "machine": {**m["machine"], "fingerprint": "0123456789abcdef"}})
    with pytest.raises(NotComparable, match="different machines"):
        _compare(RECORDED / "aa-1", other)
    c = _compare(RECORDED / "aa-1", other, allow_machine_mismatch=True)
    assert c.warnings and "different machines" in c.warnings[0]


def test_run_to_run_noise_from_a_history_keeps_a_noisy_nights_change_unchanged(tmp_path):
    target = _most_stable_cell()
    history = tmp_path / "history"
    for i, factor in enumerate((1.0, 1.25, 0.8, 1.3, 0.85)):  # nights that differ by up to 30 %
        copy_run(RECORDED / "aa-1", history / f"n{i}",
                 lambda r, f=factor: scale_timings(r, f) if r["cell"]["key"] == target else r)
    slow = copy_run(RECORDED / "aa-2", tmp_path / "slow",
                    lambda r: scale_timings(r, 1.10) if r["cell"]["key"] == target else r)
    plain = _compare(RECORDED / "aa-1", slow)
    assert "regressed" in set(plain.rows.loc[plain.rows["cell_key"] == target, "verdict"])
    with_history = compare_results(load_results([RECORDED / "aa-1"]), load_results([slow]),
                                   history=load_results([history]))
    mine = with_history.rows[(with_history.rows["cell_key"] == target) & with_history.rows["metric"].isin(TIMED)]
    assert "regressed" not in set(mine["verdict"])
    assert mine["note"].str.contains("within run-to-run noise").any()


def test_settings_change_the_verdicts(tmp_path):
    target = _most_stable_cell()
    slow = copy_run(RECORDED / "aa-2", tmp_path / "slow",
                    lambda r: scale_timings(r, 1.10) if r["cell"]["key"] == target else r)
    strict = _compare(RECORDED / "aa-1", slow, settings=CompareSettings(max_cv=0.0001))
    assert set(strict.rows.loc[strict.rows["metric"].isin(TIMED), "verdict"]) == {"unstable"}


# --- the command


def test_zoo_compare_exits_1_on_a_gating_regression_and_0_otherwise(tmp_path):
    target = _most_stable_cell()
    slow = copy_run(RECORDED / "aa-2", tmp_path / "slow",
                    lambda r: scale_timings(r, 1.10) if r["cell"]["key"] == target else r)
    proc = run_zoo("compare", str(RECORDED / "aa-1"), str(slow))  # the real command, in a subprocess
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "regressed" in proc.stdout and "FAIL" in proc.stdout
    assert zoo("compare", str(RECORDED / "aa-1"), str(slow), "--fail-on", "accuracy,peak_rss_mb").returncode == 0
    assert zoo("compare", str(RECORDED / "aa-1"), str(slow), "--fail-on", "none").returncode == 0
    proc = zoo("compare", "aa-1", "aa-2", "--results-dir", str(RECORDED), "--format", "json", "--all")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["counts"]["regressed"] == 0 and doc["baseline"]["run"] == "aa-1" and len(doc["rows"]) > 10
    assert all(set(r) >= {"verdict", "change", "ci_low", "ci_high", "q_value"} for r in doc["rows"])
    proc = zoo("compare", "aa-1", "aa-2", "--results-dir", str(RECORDED), "--fail-on", "speed")
    assert proc.returncode == 2 and "unknown metric 'speed'" in proc.stderr


def test_different_requested_settings_are_warned_about(tmp_path):
    other = copy_run(RECORDED / "aa-2", tmp_path / "other",
                     manifest=lambda m: {**m, "request": {**m["request"], "threads": 7}})
    c = _compare(RECORDED / "aa-1", other)
    assert any("different threads" in w for w in c.warnings)


def test_a_190x_latency_slowdown_is_a_regression_even_in_a_noisy_cell(tmp_path):
    """Noise must not hide a change larger than any noise seen: batch-1 latency 0.025 -> 4.8 ms
    used to say 'unstable' and exit 0."""
    target = _most_stable_cell()

    def hugely_slow(r):
        if r["cell"]["key"] != target:
            return r
        r = scale_timings(r, 190.0)
        return spread_samples(r, "latency_p50_ms", 0.40)  # and noisy with it

    slow = copy_run(RECORDED / "aa-2", tmp_path / "slow", hugely_slow)
    c = _compare(RECORDED / "aa-1", slow)
    latency = c.rows[(c.rows["cell_key"] == target) & (c.rows["metric"] == "latency_p50_ms")].iloc[0]
    assert latency["cv_candidate"] > 0.10  # the cell is noisy ...
    assert latency["verdict"] == "regressed", latency.to_dict()  # ... and still regressed
    assert "whole CI lies past" in latency["note"]
    proc = zoo("compare", str(RECORDED / "aa-1"), str(slow))
    assert proc.returncode == 1, proc.stdout + proc.stderr


def test_a_moderate_change_in_a_noisy_cell_stays_unstable(tmp_path):
    target = _most_stable_cell()
    noisy = copy_run(RECORDED / "aa-2", tmp_path / "noisy", lambda r: spread_samples(
        scale_timings(r, 1.20), "latency_p50_ms", 0.40) if r["cell"]["key"] == target else r)
    c = _compare(RECORDED / "aa-1", noisy)
    latency = c.rows[(c.rows["cell_key"] == target) & (c.rows["metric"] == "latency_p50_ms")].iloc[0]
    assert latency["verdict"] == "unstable"


def test_user_thresholds_change_the_gate(tmp_path):
    from harness.analysis.compare import parse_threshold
    from harness.results.metrics import BUILTIN

    assert parse_threshold("train_throughput=3%") == ("train_throughput", 0.03)
    assert parse_threshold("accuracy=1") == ("accuracy", 1.0)
    for bad in ("train_throughput", "nope=3%", "train_throughput=-1%", "train_throughput=nan", "parameters=1"):
        with pytest.raises(ValueError, match="--threshold"):
            parse_threshold(bad)
    target = _most_stable_cell()
    slow = copy_run(RECORDED / "aa-2", tmp_path / "slow",
                    lambda r: scale_timings(r, 1.10) if r["cell"]["key"] == target else r)
    loose = CompareSettings(catalogue=BUILTIN.with_thresholds({"latency_p50_ms": 0.50}))
    c = _compare(RECORDED / "aa-1", slow, settings=loose)
    latency = c.rows[(c.rows["cell_key"] == target) & (c.rows["metric"] == "latency_p50_ms")].iloc[0]
    assert latency["verdict"] == "unchanged"  # +10 % is within a 50 % threshold
