"""`zoo bench --executor ray` on a real Ray cluster started by the test on 127.0.0.1: the same
records as the local executor, a cell that kills its Ray worker fails alone, Ctrl-C keeps the
finished records."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from test_process_lifetime import alive, noted, wait_until
from test_record_keys import key_paths

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'zoo-bench[ray]'; make test installs it)")

FAULTY = str(ROOT / "tests" / "faulty")
RAY = str(Path(sys.executable).with_name("ray"))
#: Ray replaces 127.0.0.1 by the machine's routable address unless told this is a one-machine
#: cluster: keep every byte on loopback.
LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    port = _free_port()
    pids = tmp_path_factory.mktemp("ray") / "pids"  # the nodes' environment is what `ray start` had
    env = {**os.environ, **LOOPBACK, "PYTHONPATH": FAULTY, "ZOO_TEST_PIDS": str(pids)}
    subprocess.run([RAY, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
                    '--resources={"zoo_bench_node": 1}', "--include-dashboard=false", "--disable-usage-stats",
                    "--object-store-memory=100000000"], env=env, check=True, capture_output=True, timeout=120)
    try:
        yield f"127.0.0.1:{port}", pids
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=120)


def bench(tmp_path: Path, run_id: str, *args: str, background: bool = False, env: dict | None = None):
    cmd = [sys.executable, "-m", "harness.cli", "-p", "faulty_plugin", "bench", "-m", "mlp", "--epochs", "1",
           "--windows", "1", "--results-dir", str(tmp_path), "--run-id", run_id, *args]
    full = {**os.environ, **LOOPBACK, "NO_COLOR": "1", "PYTHONPATH": FAULTY, **(env or {})}
    if background:
        return subprocess.Popen(cmd, cwd=ROOT, env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, cwd=ROOT, env=full, capture_output=True, text=True, timeout=600)


def records(run: Path) -> dict[str, dict]:
    return {r["cell"]["framework"]: r for r in map(json.loads, (run / "results.jsonl").read_text().splitlines())}


@pytest.mark.slow
def test_ray_gives_the_local_records_and_a_dead_ray_worker_fails_only_its_cell(tmp_path, cluster):
    address, _ = cluster
    local = bench(tmp_path, "local", "-f", "healthy,oomkill")
    assert local.returncode == 1, local.stderr  # oomkill fails, on purpose
    remote = bench(tmp_path, "ray", "-f", "healthy,oomkill,killsparent", "--executor", "ray", "--ray-address", address)
    assert remote.returncode == 1, remote.stdout + remote.stderr
    here, there = records(tmp_path / "local"), records(tmp_path / "ray")
    assert there["healthy"]["status"] == "ok" and there["oomkill"]["status"] == "failed"
    assert key_paths(there["healthy"]) == key_paths(here["healthy"])  # the same schema, field for field
    assert there["oomkill"]["error"]["message"] == here["oomkill"]["error"]["message"]
    dead = there["killsparent"]
    assert dead["status"] == "failed" and "Ray task of this cell died" in dead["error"]["message"]
    assert there["healthy"]["environment"]["machine"]["fingerprint"]  # stamped on the node
    assert (tmp_path / "ray" / "logs").is_dir() and any((tmp_path / "ray" / "logs").iterdir())
    manifest = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["request"]["executor"] == "ray"


@pytest.mark.slow
def test_ctrl_c_cancels_the_ray_tasks_and_keeps_finished_records(tmp_path, cluster):
    address, pids = cluster
    pids.unlink(missing_ok=True)
    proc = bench(tmp_path, "stop", "-f", "healthy,hangpid", "--executor", "ray", "--ray-address", address,
                 background=True)
    (worker,) = noted(pids, timeout=300)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    kept = records(tmp_path / "stop")
    assert kept["healthy"]["status"] == "ok" and "hangpid" not in kept
    wait_until(lambda: not alive(worker), 30, "the hung cell's worker is gone with its Ray task")
    assert json.loads((tmp_path / "stop" / "manifest.json").read_text())["status"] == "interrupted"


def test_without_a_cluster_the_error_says_how_to_start_one(tmp_path):
    proc = bench(tmp_path, "none", "-f", "healthy", "--executor", "ray", "--ray-address", f"127.0.0.1:{_free_port()}")
    assert proc.returncode == 2
    assert "cannot reach a Ray cluster" in proc.stderr and "ray start --head" in proc.stderr
    assert not (tmp_path / "none").exists()
