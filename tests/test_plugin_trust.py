"""Plugin trust: the allow-list holds for explicitly named modules too, and a plugin's output
cannot fill the disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT

FAULTY = str(ROOT / "tests" / "faulty")


def test_zoo_plugins_cannot_bypass_the_allow_list(tmp_path):
    marker = tmp_path / "ran"
    (tmp_path / "sneaky_plugin.py").write_text(f"open({str(marker)!r}, 'w').write('imported')\n")
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(tmp_path), "ZOO_PLUGINS": "sneaky_plugin",
           "ZOO_ALLOWED_PLUGINS": "zoo-torch"}
    for extra in ([], ["-p", "sneaky_plugin"]):
        proc = subprocess.run([sys.executable, "-m", "harness.cli", *extra, "plugins"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert not marker.exists(), "a module off the allow-list was imported"
        assert "sneaky_plugin" in proc.stdout and "not in --plugins allow-list" in proc.stdout
    allowed = subprocess.run([sys.executable, "-m", "harness.cli", "plugins"], cwd=ROOT, capture_output=True,
                             text=True, timeout=120, env={**env, "ZOO_ALLOWED_PLUGINS": "zoo-torch,sneaky_plugin"})
    assert allowed.returncode == 0 and marker.exists()  # on the list, it loads


@pytest.mark.slow
def test_a_chatty_plugin_gets_a_capped_log_and_its_cell_still_counts(tmp_path):
    limit = 1 << 16
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": FAULTY, "ZOO_LOG_LIMIT_BYTES": str(limit)}
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "-p", "faulty_plugin", "bench", "-f", "chatty",
                           "-m", "mlp", "--epochs", "1", "--windows", "1", "--results-dir", str(tmp_path),
                           "--run-id", "chat"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (log,) = (tmp_path / "chat" / "logs").iterdir()
    text = log.read_text()
    assert log.stat().st_size <= limit + 512  # printed: about 20 MB
    assert "bytes of this cell's output left out here" in text
    assert "the last line of the chatty cell" in text  # the end of the output is kept
    record = json.loads((tmp_path / "chat" / "results.jsonl").read_text())
    assert record["status"] == "ok"
