"""The default run's table and records keep their columns and fields when the harness is
reorganised: every key path of a record (``metrics.accuracy.value``, ``environment.machine.gpu``,
...) is compared with a snapshot taken from the default run before the seams were introduced
(``tests/data/default_record_keys.json``; the plugin's own ``framework.details`` are its business).

A change that adds or removes a field on purpose updates the snapshot in the same commit, and
says so in its message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import INSTALLED_FRAMEWORKS, run_zoo
from harness.worker.cell import ENV_VARS_RECORDED

SNAPSHOT = Path(__file__).parent / "data" / "default_record_keys.json"

#: The columns of the `zoo bench` table, left to right.
TABLE_COLUMNS = ["framework", "model", "task", "precision", "status", "accuracy %", "train samples/s",
                 "infer samples/s", "b1 p50 ms", "train util %", "compile s", "to target s", "fine-tune s",
                 "peak MiB"]


def key_paths(data: dict, prefix: str = "") -> set[str]:
    """Every key path of a JSON object, not descending into the plugin's ``framework.details``."""
    out = set()
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else key
        out.add(path)
        if isinstance(value, dict) and path != "framework.details":
            out |= key_paths(value, path)
    return out


@pytest.mark.slow
@pytest.mark.skipif(not INSTALLED_FRAMEWORKS, reason="no built-in framework plugin is installed")
def test_default_run_records_and_table_keep_their_fields(tmp_path, monkeypatch):
    frameworks = ",".join(INSTALLED_FRAMEWORKS)
    # the recorded env vars are those the plan sets plus any the caller had: start from none of them
    for name in ENV_VARS_RECORDED:
        monkeypatch.delenv(name, raising=False)
    proc = run_zoo("bench", "-f", frameworks, "-m", "mlp", "--results-dir", str(tmp_path), "--run-id", "keys")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    header = next(line for line in proc.stdout.splitlines() if "framework" in line and "status" in line)
    assert [c.strip() for c in header.strip("┃│ ").split("┃")] == TABLE_COLUMNS
    expected = json.loads(SNAPSHOT.read_text())
    records = [json.loads(line) for line in (tmp_path / "keys" / "results.jsonl").read_text().splitlines()]
    assert sorted(r["cell"]["framework"] for r in records) == sorted(INSTALLED_FRAMEWORKS)
    for record in records:
        framework = record["cell"]["framework"]
        got = key_paths(record)
        want = set(expected[framework])
        assert got == want, (f"{framework}: fields added {sorted(got - want)}, removed {sorted(want - got)}")
