"""A worker never outlives its run or runs twice: real `zoo bench` processes, real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT

FAULTY = str(ROOT / "tests" / "faulty")


def alive(pid: int) -> bool:
    """Running (not a zombie waiting to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting until {what}")


def start_bench(tmp_path: Path, framework: str, run_id: str = "life", *extra: str) -> tuple[subprocess.Popen, Path]:
    pids = tmp_path / "pids"
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": FAULTY + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "ZOO_TEST_PIDS": str(pids)}
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "-p", "faulty_plugin", "bench", "-f", framework,
                             "-m", "mlp", "--epochs", "1", "--windows", "1", "--results-dir", str(tmp_path / "r"),
                             "--run-id", run_id, *extra], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    return proc, pids


def noted(pids: Path, count: int = 1, timeout: float = 120) -> list[int]:
    wait_until(lambda: pids.exists() and len(pids.read_text().split()) >= count, timeout, "the worker noted its pid")
    return [int(p) for p in pids.read_text().split()]


def manifest(tmp_path: Path, run_id: str = "life") -> dict:
    return json.loads((tmp_path / "r" / run_id / "manifest.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_or_sighup_ends_the_run_like_ctrl_c(tmp_path, sig, code):
    proc, pids = start_bench(tmp_path, "hangpid")
    (worker,) = noted(pids)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert not alive(worker), "the worker outlived its run"
    m = manifest(tmp_path)
    assert m["status"] == "interrupted" and m["interrupted_by"] == signal.Signals(sig).name
    assert "--resume life" in err
    assert not list((tmp_path / "r" / "life" / "work").glob("*.pid"))


@pytest.mark.slow
def test_a_second_ctrl_c_cannot_cancel_killing_a_worker_that_ignores_sigterm(tmp_path):
    proc, pids = start_bench(tmp_path, "stubborn")
    (worker,) = noted(pids)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)  # inside the graceful wait for SIGTERM to work
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    wait_until(lambda: not alive(worker), 10, "the stubborn worker is killed")
    assert manifest(tmp_path)["status"] == "interrupted"


@pytest.mark.slow
def test_sigkill_of_the_parent_takes_the_worker_with_it_and_resume_runs_alone(tmp_path):
    proc, pids = start_bench(tmp_path, "hangpid", "life", "--timeout", "15")
    (worker,) = noted(pids)
    proc.kill()
    proc.communicate(timeout=30)
    wait_until(lambda: not alive(worker), 10, "the orphaned worker dies with its parent")
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": FAULTY, "ZOO_TEST_PIDS": str(pids)}
    resumed = subprocess.run([sys.executable, "-m", "harness.cli", "-p", "faulty_plugin", "bench", "--resume", "life",
                              "--results-dir", str(tmp_path / "r")], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=120)
    first, second = noted(pids, 2, timeout=1)
    assert second != first and not alive(second)
    record = json.loads((tmp_path / "r" / "life" / "results.jsonl").read_text().splitlines()[-1])
    assert record["status"] == "timeout", resumed.stderr  # the resumed cell ran (and hung) on its own


@pytest.mark.slow
def test_processes_a_plugin_starts_die_with_their_cell(tmp_path):
    proc, pids = start_bench(tmp_path, "spawner")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    children = noted(pids, 2, timeout=1)
    for pid in children:
        wait_until(lambda: not alive(pid), 10, f"child {pid} of the finished cell is gone")


def test_resume_refuses_a_run_whose_worker_is_still_alive(tmp_path):
    from harness.run.processes import write_pid_file

    subprocess.run([sys.executable, "-m", "harness.cli", "-p", "faulty_plugin", "bench", "-f", "healthy", "-m", "mlp",
                    "--epochs", "1", "--windows", "1", "--results-dir", str(tmp_path / "r"), "--run-id", "seed"],
                   cwd=ROOT, env={**os.environ, "PYTHONPATH": FAULTY}, capture_output=True, timeout=300, check=True)
    seed = tmp_path / "r" / "seed"
    (seed / "results.jsonl").write_text("")  # the cell is missing again: resume would run it
    (seed / "work").mkdir(exist_ok=True)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        write_pid_file(seed / "work" / "healthy-mlp.pid", sleeper.pid)
        proc = subprocess.run([sys.executable, "-m", "harness.cli", "-p", "faulty_plugin", "bench", "--resume", "seed",
                               "--results-dir", str(tmp_path / "r")], cwd=ROOT, capture_output=True, text=True,
                              env={**os.environ, "NO_COLOR": "1", "PYTHONPATH": FAULTY}, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert "still has live workers" in proc.stderr and str(sleeper.pid) in proc.stderr
        assert not (seed / "results.jsonl").read_text(), "nothing may run beside a live worker"
    finally:
        sleeper.kill()
        sleeper.wait()
