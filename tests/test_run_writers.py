"""One writer per run, and no record lost to a torn tail or a Ctrl-C between repeats: real
`zoo bench` processes on real files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from test_process_lifetime import FAULTY, noted

ENV = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": FAULTY + os.pathsep + os.environ.get("PYTHONPATH", "")}
QUICK = ("-m", "mlp", "--epochs", "1", "--windows", "1")


def zoo(tmp_path: Path, *args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", "-p", "faulty_plugin", *args], cwd=ROOT,
                          env={**ENV, **(env or {})}, capture_output=True, text=True, timeout=timeout)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_a_second_bench_with_the_same_run_id_is_refused_while_the_first_writes(tmp_path):
    pids = tmp_path / "pids"
    first = subprocess.Popen([sys.executable, "-m", "harness.cli", "-p", "faulty_plugin", "bench", "-f", "hangpid",
                              *QUICK, "--results-dir", str(tmp_path / "r"), "--run-id", "same"], cwd=ROOT,
                             env={**ENV, "ZOO_TEST_PIDS": str(pids)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        noted(pids)
        before = (tmp_path / "r" / "same" / "manifest.json").read_bytes()
        for args in (("bench", "-f", "healthy", *QUICK, "--run-id", "same"), ("bench", "--resume", "same")):
            proc = zoo(tmp_path, *args, "--results-dir", str(tmp_path / "r"))
            assert proc.returncode == 2, proc.stderr
            assert "being written by another zoo bench" in proc.stderr and str(first.pid) in proc.stderr
        assert (tmp_path / "r" / "same" / "manifest.json").read_bytes() == before
        assert not (tmp_path / "r" / "same" / "results.jsonl").exists()
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)


@pytest.mark.slow
def test_a_new_run_cannot_reuse_an_existing_run_id(tmp_path):
    done = zoo(tmp_path, "bench", "-f", "healthy", *QUICK, "--results-dir", str(tmp_path / "r"), "--run-id", "once")
    assert done.returncode == 0, done.stderr
    saved = (tmp_path / "r" / "once" / "results.jsonl").read_bytes()
    manifest = (tmp_path / "r" / "once" / "manifest.json").read_bytes()
    again = zoo(tmp_path, "bench", "-f", "healthy", *QUICK, "--results-dir", str(tmp_path / "r"), "--run-id", "once")
    assert again.returncode == 2
    assert "run once already exists" in again.stderr and "--resume once" in again.stderr
    assert (tmp_path / "r" / "once" / "results.jsonl").read_bytes() == saved
    assert (tmp_path / "r" / "once" / "manifest.json").read_bytes() == manifest


@pytest.mark.slow
def test_a_torn_tail_is_quarantined_before_resume_appends(tmp_path):
    first = zoo(tmp_path, "bench", "-f", "healthy,raises", *QUICK, "--results-dir", str(tmp_path / "r"),
                "--run-id", "torn")
    assert first.returncode == 1  # the raises cell failed: resume will run it again
    results = tmp_path / "r" / "torn" / "results.jsonl"
    with open(results, "ab") as fh:
        fh.write(b'{"schema_version": 1, "run_id": "torn", "cell": {"framew')  # a crash mid-write
    for attempt in range(2):  # a second resume must find a readable file too
        proc = zoo(tmp_path, "bench", "--resume", "torn", "--results-dir", str(tmp_path / "r"))
        assert proc.returncode == 1, proc.stderr
        records = lines(results)  # every line parses: nothing glued onto the fragment
        assert [r["cell"]["framework"] for r in records] == ["healthy", "raises"] + ["raises"] * (attempt + 1)
        assert ("torn line" in proc.stderr) == (attempt == 0), proc.stderr  # said once, when repaired
    quarantine = results.with_name("results.jsonl.torn")
    assert b'"cell": {"framew' in quarantine.read_bytes()


@pytest.mark.slow
def test_ctrl_c_between_repeats_keeps_the_finished_ones_for_resume(tmp_path):
    counter, pids = tmp_path / "counter", tmp_path / "pids"
    env = {**ENV, "FLAKY_COUNTER": str(counter), "ZOO_TEST_PIDS": str(pids)}
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "-p", "faulty_plugin", "bench", "-f", "hangs3",
                             *QUICK, "--repeats", "3", "--results-dir", str(tmp_path / "r"), "--run-id", "rep"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    noted(pids)  # the third worker process hangs: two repeats are finished
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    run = tmp_path / "r" / "rep"
    assert len(lines(run / "repeats.jsonl")) == 2 and not (run / "results.jsonl").exists()
    resumed = zoo(tmp_path, "bench", "--resume", "rep", "--results-dir", str(tmp_path / "r"),
                  env={"FLAKY_COUNTER": str(counter)})
    assert resumed.returncode == 0, resumed.stderr
    assert int(counter.read_text()) == 4, "only the missing repeat ran again"
    (record,) = lines(run / "results.jsonl")
    assert record["status"] == "ok" and record["environment"]["repeats"]["count"] == 3
