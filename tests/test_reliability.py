"""A bad cell never costs a run, and bad input never costs data. Real subprocesses throughout."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, needs_plugin, run_zoo
from harness.plan.cells import Cell
from harness.results.records import CellRecord
from harness.results.store import RunStore, StoreError, read_records
from zoo.checkpoints import BUILTIN_DIR

FAULTY = {"PYTHONPATH": str(ROOT / "tests" / "faulty") + os.pathsep + os.environ.get("PYTHONPATH", "")}


def records_of(run_dir: Path) -> dict[str, dict]:
    """The latest record of each cell, read line by line as any tool would."""
    out = {}
    for line in (run_dir / "results.jsonl").read_text().splitlines():
        record = json.loads(line)
        out[record["cell"]["framework"]] = record
    return out


@pytest.mark.slow
@needs_plugin("zoo-torch")
def test_each_kind_of_broken_cell_is_recorded_and_the_others_succeed(tmp_path):
    frameworks = "torch,hang,abort,segv,oomkill,memhog,raises,nan,badshape,healthy,legacy"
    proc = run_zoo("-p", "faulty_plugin", "bench", "-f", frameworks, "-m", "mlp", "--epochs", "1",
                   "--windows", "2", "--timeout", "30", "--threads", "1", "--results-dir", str(tmp_path), "--run-id", "faults",
                   env=FAULTY)
    assert proc.returncode == 1, proc.stderr  # some cells failed: non-zero, but the run finished
    recs = records_of(tmp_path / "faults")
    assert len((tmp_path / "faults" / "results.jsonl").read_text().splitlines()) == 11

    assert recs["torch"]["status"] == recs["healthy"]["status"] == "ok"
    assert recs["torch"]["metrics"]["accuracy"]["value"] > 50
    assert recs["torch"]["metrics"]["train_throughput"]["samples"]
    # a contract-1 adapter (no end_epoch) still runs; it just has no per-epoch accuracy
    assert recs["legacy"]["status"] == "ok" and "accuracy_curve" not in recs["legacy"]["metrics"]
    assert "accuracy_curve" in recs["healthy"]["metrics"]

    def error(name):
        return recs[name]["error"]

    assert recs["hang"]["status"] == "timeout" and "within 30 s" in error("hang")["message"]
    assert recs["abort"]["status"] == "failed" and "SIGABRT" in error("abort")["message"]
    assert "SIGSEGV" in error("segv")["message"]
    assert "Segmentation fault" in error("segv")["detail"] or "Fatal Python error" in error("segv")["detail"]
    assert "SIGKILL" in error("oomkill")["message"] and "out of memory" in error("oomkill")["message"]
    assert error("memhog")["type"] == "MemoryError" and error("memhog")["phase"] == "fine_tune"
    assert error("raises")["message"] == "the fused kernel is not available on this CPU"
    assert "faulty_plugin.py" in error("raises")["detail"]  # the plugin's traceback is kept
    assert error("nan")["type"] == "ContractViolation" and "non-finite" in error("nan")["message"]
    assert error("badshape")["type"] == "ContractViolation" and "(3, 7)" in error("badshape")["message"]
    manifest = json.loads((tmp_path / "faults" / "manifest.json").read_text())
    assert manifest["status"] == "completed"


@pytest.mark.slow
@needs_plugin("zoo-torch")
def test_corrupted_checkpoint_is_refused_before_the_framework_loads_it(tmp_path):
    ckpts = tmp_path / "ckpts"
    shutil.copytree(BUILTIN_DIR, ckpts)
    blob = ckpts / "cnn-digits0to4.safetensors"
    data = bytearray(blob.read_bytes())
    data[-100] ^= 0xFF
    blob.write_bytes(bytes(data))
    proc = run_zoo("bench", "-f", "torch", "-m", "cnn,mlp", "--epochs", "1", "--windows", "1",
                   "--checkpoint-dir", str(ckpts), "--results-dir", str(tmp_path), "--run-id", "c")
    assert proc.returncode == 1
    lines = [json.loads(line) for line in (tmp_path / "c" / "results.jsonl").read_text().splitlines()]
    cnn, mlp = sorted(lines, key=lambda r: r["cell"]["model"])
    assert cnn["status"] == "failed" and cnn["error"]["type"] == "CheckpointError"
    assert cnn["error"]["phase"] == "data" and "sha256" in cnn["error"]["message"]
    assert "load_s" not in cnn["metrics"], "the framework must not have been handed the weights"
    assert mlp["status"] == "ok"


@pytest.mark.slow
@needs_plugin("zoo-torch")
def test_sigint_keeps_finished_cells_and_resume_completes_the_run(tmp_path):
    cmd = [sys.executable, "-m", "harness.cli", "bench", "-f", "torch,healthy", "-m", "mlp,cnn",
           "-t", "digits,digits-10shot", "--epochs", "2", "--windows", "2", "--results-dir", str(tmp_path),
           "--run-id", "r1"]
    env = {**os.environ, **FAULTY, "NO_COLOR": "1", "ZOO_PLUGINS": "faulty_plugin"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = tmp_path / "r1" / "results.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (results.exists() and len(results.read_text().splitlines()) >= 2):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "--resume r1" in err
    manifest = json.loads((tmp_path / "r1" / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    before = [json.loads(line) for line in results.read_text().splitlines()]
    assert 2 <= len(before) < 8 and all(r["status"] == "ok" for r in before)

    proc2 = subprocess.run([sys.executable, "-m", "harness.cli", "bench", "--resume", "r1",
                            "--results-dir", str(tmp_path)], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=300)
    assert proc2.returncode == 0, proc2.stderr
    after = [json.loads(line) for line in results.read_text().splitlines()]
    keys = [r["cell"]["key"] for r in after]
    assert len(set(keys)) == 8, "every cell of the matrix has a record"
    assert keys[: len(before)] == [r["cell"]["key"] for r in before], "finished records are untouched"
    assert all(r["status"] == "ok" for r in after[len(before):])
    done_before = {r["cell"]["key"] for r in before}
    assert not done_before & set(keys[len(before):]), "cells that were ok are not run again"
    manifest = json.loads((tmp_path / "r1" / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["resumed"]


def test_resume_of_unknown_run_says_which_runs_exist(tmp_path):
    (tmp_path / "20260101-a").mkdir()
    (tmp_path / "20260101-a" / "manifest.json").write_text("{}")
    proc = run_zoo("bench", "--resume", "nope", "--results-dir", str(tmp_path))
    assert proc.returncode == 2 and "no run 'nope'" in proc.stderr and "20260101-a" in proc.stderr


@pytest.mark.parametrize("run_id", ["../escape", "a/b", "..", ".hidden", "x" * 101])
def test_run_ids_cannot_leave_the_results_directory(tmp_path, run_id):
    with pytest.raises(StoreError, match="invalid run id"):
        RunStore(tmp_path, run_id)


def test_cell_keys_are_filesystem_safe():
    key = Cell("../../etc", "m/x", "t\\y", batch_size=4).key
    assert "/" not in key and "\\" not in key and not key.startswith(".")


@pytest.fixture
def tiny_disk(tmp_path):
    """A real, tiny filesystem (tmpfs); skipped where mounting is not permitted."""
    mount = tmp_path / "disk"
    mount.mkdir()

    def make(size: str) -> Path:
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
        return mount

    yield make
    subprocess.run(["umount", str(mount)], capture_output=True)


@needs_plugin("zoo-torch")
def test_full_results_disk_fails_before_measuring(tiny_disk):
    disk = tiny_disk("256k")
    proc = run_zoo("bench", "-f", "torch", "--results-dir", str(disk))
    assert proc.returncode == 2
    assert "free for results" in proc.stderr and "--results-dir" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_disk_filling_up_mid_run_keeps_every_saved_record_intact(tiny_disk):
    disk = tiny_disk("2m")
    store = RunStore(disk, "run")
    record = CellRecord("run", Cell("torch", "mlp", "digits"), "ok", environment={"pad": "x" * 2000})
    store.append(record)
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)  # fill the disk to the last byte
    try:
        for size in (1 << 16, 4096, 1):
            try:
                while os.write(fd, b"\0" * size) == size:
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)
    with pytest.raises(StoreError, match="--resume run"):
        store.append(record)
    assert [r.cell.key for r in read_records(store.results_path)] == [record.cell.key]


def test_disk_full_during_a_run_stops_it_cleanly_keeping_saved_records(tiny_disk):
    disk = tiny_disk("2m")
    proc = run_zoo("-p", "faulty_plugin", "-p", "disk_filler", "bench", "-f", "healthy", "-m", "mlp,cnn",
                   "--epochs", "1", "--windows", "1", "--results-dir", str(disk), "--run-id", "full",
                   env={**FAULTY, "ZOO_TEST_FILL": str(disk / "filler")})
    assert proc.returncode == 3, proc.stderr
    assert "healthy-cnn" in proc.stderr and "No space left" in proc.stderr and "--resume full" in proc.stderr
    assert "Traceback" not in proc.stderr
    saved = list(read_records(disk / "full" / "results.jsonl"))
    assert [(r.cell.model, r.status) for r in saved] == [("mlp", "ok")]


def test_no_code_path_unpickles_files():
    """Checkpoints are safetensors only; a torch file must be read with weights_only=True."""
    import re

    offenders = []
    for path in list(ROOT.glob("zoo/**/*.py")) + list(ROOT.glob("harness/**/*.py")) + list(ROOT.glob("plugins/*/*/*.py")):
        text = path.read_text()
        for pattern in (r"\bpickle\.loads?\(", r"allow_pickle\s*=\s*True", r"\bcloudpickle\b", r"\bjoblib\.load\("):
            if re.search(pattern, text):
                offenders.append(f"{path.relative_to(ROOT)}: {pattern}")
        for call in re.finditer(r"torch\.load\(([^)]*)\)", text):
            if "weights_only=True" not in call.group(1):
                offenders.append(f"{path.relative_to(ROOT)}: torch.load without weights_only=True")
    assert not offenders, offenders


def test_terminal_output_shows_plugin_strings_literally(fake_distribution, capsys):
    """A name or message with rich markup in it is printed as written, never interpreted."""
    from harness.results.records import ErrorInfo
    from harness.render.terminal import print_results, wide_console

    record = CellRecord("r", Cell("[red]evil[/red]", "m", "t"), "failed",
                        error=ErrorInfo("load", "X", "[link=http://x]click[/link]"))
    print_results([record], wide_console(), title="t")
    out = capsys.readouterr().out
    assert "[red]evil[/red]" in out and "[link=http://x]click[/link]" in out
