"""Every flag is validated before anything runs — zero, negative and non-finite values and values
this machine cannot honour — and no file ever holds NaN or Infinity."""

from __future__ import annotations

import json
import math
import os

import pytest

from conftest import ROOT
from harness.cli import main
from harness.plan.cells import Cell
from harness.plan.validate import available_cpus
from harness.results.records import CellRecord, Metric, record_from_dict, record_to_json

FAULTY = str(ROOT / "tests" / "faulty")

BAD = [
    ("--lr", "0"), ("--lr", "-0.001"), ("--lr", "nan"), ("--lr", "inf"),
    ("--timeout", "0"), ("--timeout", "-5"), ("--timeout", "nan"), ("--timeout", "inf"),
    ("--threads", "0"), ("--threads", "-2"), ("--threads", str(available_cpus() + 1)),
    ("--seed", "-1"), ("--seed", str(2**32)),
    ("--windows", "0"), ("--window-steps", "-1"), ("--warmup-cap", "0"), ("--repeats", "0"),
    ("--epochs", "0"), ("--epochs", "-3"), ("--batch-size", "0"), ("--batch-size", "-32"),
]


@pytest.fixture
def faulty(monkeypatch):
    monkeypatch.syspath_prepend(FAULTY)
    monkeypatch.setenv("PYTHONPATH", FAULTY + os.pathsep + os.environ.get("PYTHONPATH", ""))  # for the workers
    monkeypatch.setenv("NO_COLOR", "1")


@pytest.mark.parametrize("flag, value", BAD)
def test_a_bad_value_is_refused_naming_the_flag_before_anything_is_written(tmp_path, capsys, faulty, flag, value):
    code = main(["-p", "faulty_plugin", "bench", "-f", "healthy", "-m", "mlp", flag, value,
                 "--results-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert flag in err and "Traceback" not in err
    assert not (tmp_path / "r").exists(), "nothing may be written for a request that cannot run"


def test_resume_refuses_a_changed_setting_instead_of_ignoring_it(tmp_path, capsys, faulty):
    assert main(["-p", "faulty_plugin", "bench", "-f", "healthy,raises", "-m", "mlp", "--epochs", "1", "--windows",
                 "1", "--results-dir", str(tmp_path), "--run-id", "base"]) == 1
    statuses = [json.loads(line)["status"] for line in (tmp_path / "base" / "results.jsonl").read_text().splitlines()]
    assert statuses == ["ok", "failed"]  # the raises cell is left for a resume
    before = (tmp_path / "base" / "results.jsonl").read_text()
    capsys.readouterr()
    for extra in (["--epochs", "5"], ["-f", "healthy"], ["--lr", "0.01"], ["--threads", "1"]):
        code = main(["-p", "faulty_plugin", "bench", "--resume", "base", "--results-dir", str(tmp_path), *extra])
        err = capsys.readouterr().err
        assert code == 2 and extra[0] in err and "cannot apply" in err, err
    assert (tmp_path / "base" / "results.jsonl").read_text() == before


def _strict(text: str):
    def refuse(constant: str):
        raise AssertionError(f"non-standard JSON constant {constant} written")
    return json.loads(text, parse_constant=refuse)


def test_non_finite_numbers_are_written_as_null_and_read_back_as_nan():
    record = CellRecord("r", Cell("torch", "mlp", "digits"), "ok",
                        metrics={"x": Metric(math.nan, "s", "lower", (1.0, math.inf), {"robust_cv": math.nan})})
    text = record_to_json(record)
    data = _strict(text)
    assert data["metrics"]["x"]["value"] is None and data["metrics"]["x"]["samples"] == [1.0, None]
    back = record_from_dict(data).metrics["x"]
    assert math.isnan(back.value) and math.isnan(back.spread["robust_cv"]) and math.isnan(back.samples[1])


@pytest.mark.slow
def test_a_real_run_writes_only_standard_json(tmp_path, faulty):
    assert main(["-p", "faulty_plugin", "bench", "-f", "healthy", "-m", "mlp", "--epochs", "1", "--windows", "1",
                 "--results-dir", str(tmp_path), "--run-id", "std"]) == 0
    for line in (tmp_path / "std" / "results.jsonl").read_text().splitlines():
        _strict(line)
    _strict((tmp_path / "std" / "manifest.json").read_text())
