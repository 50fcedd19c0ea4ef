"""Loading stored runs into DataFrames: recorded runs, schema migration, refusals with messages."""

import json

import pytest

from harness.results.loader import LoadError, find_runs, load_results, resolve_runs
from harness.results.records import SCHEMA_VERSION, SchemaError, migrate_record, record_from_dict
from results_helpers import RECORDED, copy_run


def test_recorded_runs_load_with_manifest_and_raw_samples():
    rs = load_results([RECORDED])
    assert list(rs.runs["run"]) == ["aa-1", "aa-2"]  # oldest first
    run = rs.runs.iloc[0]
    assert run["fingerprint"] and run["commit"] and run["trigger"] == "manual"
    assert run["started_at"].tzinfo is not None
    assert set(rs.cells["framework"]) == {"torch", "jax", "tf"}
    m = rs.metrics
    latency = m[(m["metric"] == "latency_p50_ms") & (m["framework"] == "torch")].iloc[0]
    assert latency["n"] == len(latency["samples"]) == 100 and latency["unit"] == "ms"
    assert latency["direction"] == "lower" and latency["robust_cv"] > 0
    assert (m.groupby(["run", "cell_key"]).size() > 5).all()
    assert {"fingerprint", "commit", "framework", "model", "task", "status", "value", "samples"} <= set(m.columns)


def test_run_dirs_results_dirs_and_run_ids_are_all_accepted():
    assert find_runs([RECORDED]) == [RECORDED / "aa-1", RECORDED / "aa-2"]
    assert find_runs([RECORDED / "aa-2"]) == [RECORDED / "aa-2"]
    assert resolve_runs(["aa-1"], RECORDED) == [RECORDED / "aa-1"]
    with pytest.raises(LoadError, match="no run 'nope'.*aa-1, aa-2"):
        resolve_runs(["nope"], RECORDED)


def test_a_path_without_runs_says_what_it_expected(tmp_path):
    with pytest.raises(LoadError, match="holds no runs"):
        load_results([tmp_path])


def test_newer_record_schema_is_refused_naming_file_and_line(tmp_path):
    run = copy_run(RECORDED / "aa-1", tmp_path / "r", lambda r: {**r, "schema_version": SCHEMA_VERSION + 1})
    with pytest.raises(SchemaError, match=r"results.jsonl:1: .*schema version 2, newer than this zoo-bench reads "
                                          r"\(1\); upgrade zoo-bench"):
        load_results([run])


def test_newer_manifest_schema_is_refused(tmp_path):
    run = copy_run(RECORDED / "aa-1", tmp_path / "r", manifest=lambda m: {**m, "schema_version": 7})
    with pytest.raises(SchemaError, match="manifest has schema version 7"):
        load_results([run])


def _as_version_0(record: dict) -> dict:
    """A record as written before schema_version existed: bare-number metrics, no cell key."""
    old = {k: v for k, v in record.items() if k not in ("schema_version", "not_applicable")}
    old["cell"] = {k: v for k, v in record["cell"].items() if k not in ("key", "freeze", "init", "variant")}
    old["metrics"] = {"accuracy": record["metrics"]["accuracy"]["value"],
                      "latency_p50_ms": {k: v for k, v in record["metrics"]["latency_p50_ms"].items()
                                         if k not in ("direction", "spread")}}
    return old


def test_version_0_records_are_migrated(tmp_path):
    first = json.loads((RECORDED / "aa-1" / "results.jsonl").read_text().splitlines()[0])
    old = _as_version_0(first)
    upgraded = migrate_record(old)
    assert upgraded["schema_version"] == SCHEMA_VERSION
    assert upgraded["metrics"]["accuracy"] == {"value": first["metrics"]["accuracy"]["value"], "unit": "",
                                               "direction": "higher", "samples": [], "spread": {}}
    assert upgraded["metrics"]["latency_p50_ms"]["direction"] == "lower"
    record = record_from_dict(old)
    assert record.cell.key == first["cell"]["key"] and record.schema_version == SCHEMA_VERSION
    run = copy_run(RECORDED / "aa-1", tmp_path / "r", _as_version_0)
    m = load_results([run]).metrics
    assert set(m["metric"]) == {"accuracy", "latency_p50_ms"}
    assert set(m["cell_key"]) == set(load_results([RECORDED / "aa-1"]).cells["cell_key"])


def test_torn_last_line_is_skipped_but_a_bad_middle_line_is_an_error(tmp_path):
    run = copy_run(RECORDED / "aa-1", tmp_path / "r")
    path = run / "results.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines) + "\n" + lines[0][:40])
    assert len(load_results([run]).cells) == len(lines)
    path.write_text(lines[0][:40] + "\n" + "\n".join(lines) + "\n")
    with pytest.raises(LoadError, match="results.jsonl:1: not a JSON record"):
        load_results([run])


def test_the_same_run_id_in_two_results_dirs_gets_distinct_labels(tmp_path):
    a = copy_run(RECORDED / "aa-1", tmp_path / "x" / "aa-1")
    b = copy_run(RECORDED / "aa-1", tmp_path / "y" / "aa-1")
    rs = load_results([a, b])
    assert sorted(rs.runs["run"]) == ["x/aa-1", "y/aa-1"]  # copy_run names them aa-1 both
    assert rs.metrics.groupby("run").size().nunique() == 1


def test_an_unknown_status_is_refused(tmp_path):
    run = copy_run(RECORDED / "aa-1", tmp_path / "r", lambda r: {**r, "status": "exploded"})
    with pytest.raises(LoadError, match="status must be one of"):
        load_results([run])
