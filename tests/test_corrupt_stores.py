"""Corrupt stores get precise errors. Stored runs are attacked as a disk, a crash or a careless
edit would: invalid UTF-8, non-JSON, non-object JSON, wrong field types and newer schemas in the
manifest and in the middle of ``results.jsonl``; empty and missing manifests; and ``-o`` to places
that cannot be written. Every reader names the file (and line), one bad run does not stop
``zoo history``/``zoo report`` over a directory, ``zoo bench --resume`` exits 2 with a clear
error, and no unusable input or output is mistaken for "regression found" (exit 1)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import ROOT, run_zoo
from harness.cli import main
from harness.measure import machine
from results_helpers import RECORDED, copy_run, scale_timings, zoo

FAULTY = str(ROOT / "tests" / "faulty")


# ---------------------------------------------------------------- manifests and records, read back

def _manifest_with_bad_byte(run: Path) -> None:
    lines = (run / "manifest.json").read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"', b'"\xff', 1)
    (run / "manifest.json").write_bytes(b"".join(lines))


MANIFEST_ATTACKS = {
    "invalid-utf8": (_manifest_with_bad_byte, r"manifest.json:3: the run manifest is not UTF-8"),
    "not-json": (lambda r: (r / "manifest.json").write_text('{\n  "run_id": "x",\n  oops\n}'),
                 r"manifest.json:3: the run manifest is not JSON"),
    "array": (lambda r: (r / "manifest.json").write_text("[1, 2, 3]"), r"manifest.json: the run manifest is an array"),
    "string": (lambda r: (r / "manifest.json").write_text('"hello"'), r"manifest.json: the run manifest is a string"),
    "empty": (lambda r: (r / "manifest.json").write_text(""), r"manifest.json: the run manifest is empty"),
    "machine-not-object": (lambda r: _edit_manifest(r, machine="x"), r"manifest.json: .*field 'machine' is str"),
    "newer-schema": (lambda r: _edit_manifest(r, schema_version=99), r"manifest.json: run manifest has schema version 99"),
}


def _edit_manifest(run: Path, **fields) -> None:
    m = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**m, **fields}, indent=2))


def _middle_line(run: Path, line: bytes) -> None:
    path = run / "results.jsonl"
    lines = path.read_bytes().splitlines()
    path.write_bytes(b"\n".join([lines[0], line, *lines[1:]]) + b"\n")


RECORD_ATTACKS = {
    "invalid-utf8": (b'{"status": "ok\xff"}', r"results.jsonl:2: not UTF-8 text"),
    "not-json": (b'{"status": ', r"results.jsonl:2: not a JSON record"),
    "array": (b"[1, 2]", r"results.jsonl:2: an array where a record"),
    "number": (b"42", r"results.jsonl:2: a number where a record"),
    "metrics-not-object": (None, r"results.jsonl:2: not a valid result record"),
    "old-record-without-cell": (b'{"status": "ok"}', r"results.jsonl:2: not a valid result record \(missing field 'cell'\)"),
    "newer-schema": (None, r"results.jsonl:2: .*schema version 9, newer"),
}


def _attack_record(run: Path, name: str) -> None:
    line, _ = RECORD_ATTACKS[name]
    if line is None:
        second = json.loads((run / "results.jsonl").read_text().splitlines()[1])
        second = {**second, "metrics": [1, 2]} if name == "metrics-not-object" else {**second, "schema_version": 9}
        line = json.dumps(second).encode()
    _middle_line(run, line)


@pytest.mark.parametrize("attack", MANIFEST_ATTACKS)
def test_a_corrupt_manifest_is_an_error_naming_the_file(tmp_path, attack):
    run = copy_run(RECORDED / "aa-1", tmp_path / "bad")
    edit, message = MANIFEST_ATTACKS[attack]
    edit(run)
    for command in (["report", str(run)], ["export", str(run), "--format", "bencher"]):
        result = zoo(*command)
        assert result.returncode == 2, result
        assert str(run / "manifest.json") in result.stderr
        assert __import__("re").search(message, result.stderr.replace("\n", " ")), result.stderr


@pytest.mark.parametrize("attack", RECORD_ATTACKS)
def test_a_corrupt_line_in_the_middle_of_results_is_an_error_naming_file_and_line(tmp_path, attack):
    run = copy_run(RECORDED / "aa-1", tmp_path / "bad")
    _attack_record(run, attack)
    result = zoo("report", str(run))
    assert result.returncode == 2, result
    assert str(run / "results.jsonl") + ":2" in result.stderr
    assert __import__("re").search(RECORD_ATTACKS[attack][1], result.stderr.replace("\n", " ")), result.stderr


def _directory_with_bad_runs(tmp_path: Path) -> tuple[Path, list[str]]:
    results = tmp_path / "results"
    copy_run(RECORDED / "aa-1", results / "aa-1")
    copy_run(RECORDED / "aa-2", results / "aa-2")
    bad = []
    for attack in ("invalid-utf8", "array", "empty", "newer-schema"):
        run = copy_run(RECORDED / "aa-1", results / f"m-{attack}", manifest=lambda m, a=attack: {**m, "run_id": f"m-{a}"})
        MANIFEST_ATTACKS[attack][0](run)
        bad.append(run.name)
    for attack in ("not-json", "newer-schema"):
        run = copy_run(RECORDED / "aa-2", results / f"r-{attack}")
        _attack_record(run, attack)
        bad.append(run.name)
    return results, bad


def test_one_bad_run_does_not_stop_history_over_a_directory(tmp_path):
    results, bad = _directory_with_bad_runs(tmp_path)
    result = zoo("history", str(results), "--format", "csv")
    assert result.returncode == 0, result
    for name in bad:  # each skipped run named, with why
        assert f"skipped run {results / name}" in result.stderr.replace("\n", " "), result.stderr
    assert "not UTF-8" in result.stderr and "empty" in result.stderr and "schema version" in result.stderr
    assert "aa-1" in result.stdout and "aa-2" in result.stdout
    assert not any(name in result.stdout for name in bad)


def test_one_bad_run_does_not_stop_report_over_a_directory_but_a_bad_run_named_itself_does(tmp_path):
    results, bad = _directory_with_bad_runs(tmp_path)
    result = zoo("report", str(results), "--format", "csv")
    assert result.returncode == 0, result
    assert all(f"skipped run {results / name}" in result.stderr.replace("\n", " ") for name in bad), result.stderr
    assert {"aa-1", "aa-2"} <= set(line.split(",")[1] for line in result.stdout.splitlines()[1:])
    named = zoo("report", str(results / "aa-1"), str(results / bad[0]))
    assert named.returncode == 2 and "not UTF-8" in named.stderr


def test_a_directory_of_only_bad_runs_says_why_each_was_left_out(tmp_path):
    results, bad = _directory_with_bad_runs(tmp_path)
    for good in ("aa-1", "aa-2"):
        shutil.rmtree(results / good)
    result = zoo("history", str(results))
    assert result.returncode == 2 and "no readable run" in result.stderr
    assert all(name in result.stderr for name in bad)


def test_an_empty_manifest_is_reported_as_empty_not_as_another_machine(tmp_path):
    base = copy_run(RECORDED / "aa-1", tmp_path / "base")
    cand = copy_run(RECORDED / "aa-2", tmp_path / "cand")
    (cand / "manifest.json").write_text("")
    result = zoo("compare", str(base), str(cand))
    assert result.returncode == 2, result
    assert "manifest is empty" in result.stderr and "different machines" not in result.stderr


def test_a_missing_manifest_is_reported_as_missing_not_as_another_machine(tmp_path):
    base = copy_run(RECORDED / "aa-1", tmp_path / "base")
    cand = copy_run(RECORDED / "aa-2", tmp_path / "cand")
    (cand / "manifest.json").unlink()
    result = zoo("compare", str(base), str(cand))
    assert result.returncode == 2, result
    assert "has no manifest.json" in result.stderr and "different machines" not in result.stderr
    assert zoo("compare", str(base), str(cand), "--allow-machine-mismatch").returncode in (0, 1)


# ---------------------------------------------------------------- -o that cannot be written

def _commands(tmp_path: Path, output: str) -> dict[str, list[str]]:
    base = copy_run(RECORDED / "aa-1", tmp_path / "runs" / "base")
    slow = copy_run(RECORDED / "aa-1", tmp_path / "runs" / "slow", lambda r: scale_timings(r, 3.0))
    return {
        "report": ["report", str(base), "--format", "markdown", "-o", output],
        "report-table": ["report", str(base), "-o", output],
        "compare": ["compare", str(base), str(slow), "--format", "markdown", "-o", output],  # a regression
        "history": ["history", str(tmp_path / "runs"), "--format", "csv", "-o", output],
        "export": ["export", str(base), "--format", "bencher", "-o", output],
    }


@pytest.mark.parametrize("where", ["a-directory", "missing-parent", "parent-is-a-file"])
def test_an_unwritable_output_is_a_clear_error_with_exit_2_for_every_command(tmp_path, where):
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")
    output = {"a-directory": tmp_path / "adir", "missing-parent": tmp_path / "nope" / "out.md",
              "parent-is-a-file": tmp_path / "afile" / "out.md"}[where]
    for name, command in _commands(tmp_path, str(output)).items():
        result = zoo(*command)
        assert result.returncode == 2, (name, result)  # never 1, which compare keeps for "regression found"
        assert f"cannot write -o {output}" in result.stderr, (name, result.stderr)
        assert "Errno" not in result.stderr


def test_a_directory_format_refuses_an_existing_file_as_output(tmp_path):
    (tmp_path / "afile").write_text("x")
    base = copy_run(RECORDED / "aa-1", tmp_path / "base")
    result = zoo("export", str(base), "--format", "github-action-benchmark", "-o", str(tmp_path / "afile"))
    assert result.returncode == 2 and f"cannot write -o {tmp_path / 'afile'}: it exists and is not a directory" \
        in result.stderr, result


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only directory; run as a normal user")
def test_a_read_only_directory_as_output_is_a_clear_error_with_exit_2(tmp_path):
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    commands = _commands(tmp_path, str(readonly / "out.txt"))
    readonly.chmod(0o555)
    try:
        for name, command in commands.items():
            result = zoo(*command)
            assert result.returncode == 2, (name, result)
            assert f"cannot write -o {readonly / 'out.txt'}: the directory {readonly} is not writable" \
                in result.stderr, (name, result.stderr)
    finally:
        readonly.chmod(0o755)


# ---------------------------------------------------------------- zoo bench --resume on a corrupt run

@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A real run (healthy ok, raises failed: the resume has a cell to re-run), made once."""
    root = tmp_path_factory.mktemp("resume")
    proc = run_zoo("-p", "faulty_plugin", "bench", "-f", "healthy,raises", "-m", "mlp", "--epochs", "1", "--windows",
                   "1", "--results-dir", str(root), "--run-id", "base",
                   env={"PYTHONPATH": FAULTY + os.pathsep + os.environ.get("PYTHONPATH", "")})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    return root / "base"


@pytest.fixture
def faulty(monkeypatch):
    monkeypatch.syspath_prepend(FAULTY)
    monkeypatch.setenv("PYTHONPATH", FAULTY + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.setenv("NO_COLOR", "1")


RESUME_ATTACKS = {
    "manifest-not-json": (lambda r: MANIFEST_ATTACKS["not-json"][0](r), "manifest.json:3: the run manifest is not JSON"),
    "manifest-invalid-utf8": (_manifest_with_bad_byte, "manifest.json:3: the run manifest is not UTF-8"),
    "manifest-array": (lambda r: (r / "manifest.json").write_text("[]"), "the run manifest is an array"),
    "manifest-null": (lambda r: (r / "manifest.json").write_text("null"), "the run manifest is null"),
    "manifest-empty": (lambda r: (r / "manifest.json").write_text(""), "the run manifest is empty"),
    "manifest-missing": (lambda r: (r / "manifest.json").unlink(), "has no manifest.json (it is missing)"),
    "manifest-without-request": (lambda r: _drop(r, "request"), "has no field 'request'"),
    "manifest-without-machine": (lambda r: _drop(r, "machine"), "has no field 'machine.fingerprint'"),
    "manifest-newer-schema": (lambda r: _edit_manifest(r, schema_version=2), "run manifest has schema version 2"),
    "results-middle-not-json": (lambda r: _attack_record(r, "not-json"), "results.jsonl:2: not a JSON record"),
    "results-middle-invalid-utf8": (lambda r: _attack_record(r, "invalid-utf8"), "results.jsonl:2: not UTF-8"),
    "results-middle-array": (lambda r: _attack_record(r, "array"), "results.jsonl:2: an array where a record"),
    "record-newer-schema": (lambda r: _attack_record(r, "newer-schema"), "results.jsonl:2: result record has schema "
                                                                          "version 9"),
    "repeats-corrupt": (lambda r: (r / "repeats.jsonl").write_bytes(b"\xff\n{}\n"), "repeats.jsonl:1: not UTF-8"),
}


def _drop(run: Path, key: str) -> None:
    m = json.loads((run / "manifest.json").read_text())
    m.pop(key)
    (run / "manifest.json").write_text(json.dumps(m))


@pytest.mark.parametrize("attack", RESUME_ATTACKS)
def test_resume_of_a_corrupt_run_is_a_clear_error_with_exit_2(tmp_path, capsys, faulty, finished_run, attack):
    run = Path(shutil.copytree(finished_run, tmp_path / "base"))
    if attack.startswith(("results", "record", "repeats")):  # reach the records: the machine must be this one
        _edit_manifest(run, machine={**json.loads((run / "manifest.json").read_text())["machine"],
                                     "fingerprint": machine.fingerprint()})
    edit, message = RESUME_ATTACKS[attack]
    edit(run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    code = main(["-p", "faulty_plugin", "bench", "--resume", "base", "--results-dir", str(tmp_path)])
    err = capsys.readouterr().err.replace("\n", " ")
    assert code == 2, err
    assert message in err, err
    assert "different machine" not in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"} == \
        {k: v for k, v in before.items() if k != ".lock"}, "a refused resume must not change the run"
