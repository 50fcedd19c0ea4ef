"""Names from plugins and users are data: printed literally, never markup; one name, one cell
key; file names bounded and contained; names that cannot be used are refused at registration."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, needs_plugin
from harness.plan.cells import MAX_KEY_LENGTH, Cell

FAULTY = str(ROOT / "tests" / "faulty")

ODD_PLUGIN = '''
import zoo
from faulty_plugin import Healthy

def named(name):
    return type("Odd", (Healthy,), {"name": name})()

@zoo.hookimpl
def zoo_frameworks():
    return [named(n) for n in NAMES]
'''


def run_odd(tmp_path, names, *args, env=None):
    (tmp_path / "odd_names.py").write_text(f"NAMES = {names!r}\n" + ODD_PLUGIN)
    full = {**os.environ, "NO_COLOR": "1", **(env or {}),
            "PYTHONPATH": os.pathsep.join([str(tmp_path), FAULTY, os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "harness.cli", "-p", "odd_names", *args], cwd=ROOT, env=full,
                          capture_output=True, text=True, timeout=300)


def test_keys_are_one_to_one_and_bounded():
    cells = [Cell("a/b", "m", "t"), Cell("a_b", "m", "t"), Cell("a", "b-c", "t"), Cell("a-b", "c", "t"),
             Cell("a", "b~c", "t"), Cell("torch:x", "m", "t"), Cell("torch", "m", "t", variant="x"),
             Cell("x" * 100, "y" * 100, "z" * 100), Cell("x" * 100, "y" * 100, "z" * 99)]
    keys = [c.key for c in cells]
    assert len(set(keys)) == len(keys), keys
    assert all(len(k) <= MAX_KEY_LENGTH and "/" not in k and not k.startswith(".") for k in keys)
    assert Cell("torch", "mlp", "digits").key == "torch-mlp-digits-cpu-fp32-b32-freeze_none-pretrained"


@pytest.mark.slow
def test_markup_long_and_colliding_names_run_and_print_literally(tmp_path):
    names = ["[/]", "[bold]x", "x/y", "x_y", "n" * 100]
    proc = run_odd(tmp_path, names, "bench", "-f", ",".join(names), "-m", "mlp", "--epochs", "1", "--windows", "1",
                   "--results-dir", str(tmp_path / "r"), "--run-id", "odd", env={"FORCE_COLOR": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    records = [json.loads(line) for line in (tmp_path / "r" / "odd" / "results.jsonl").read_text().splitlines()]
    assert sorted(r["cell"]["framework"] for r in records) == sorted(names)  # no record lost to a shared key
    assert all(r["status"] == "ok" for r in records)
    assert len({r["cell"]["key"] for r in records}) == len(names)
    assert len(list((tmp_path / "r" / "odd" / "logs").iterdir())) == len(names)
    assert "MarkupError" not in proc.stderr  # the progress bar on a terminal showed them as text
    report = run_odd(tmp_path, names, "report", str(tmp_path / "r" / "odd"))
    assert report.returncode == 0, report.stderr
    assert "[bold]x" in report.stdout and "[/]" in report.stdout


def test_names_that_cannot_be_used_are_refused_and_the_others_load(tmp_path):
    proc = run_odd(tmp_path, ["ok_one", "ev\x1bil", "with space", "a,b", "a:b", "z" * 101], "plugins")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    assert "ok_one" in out
    for fragment in ("whitespace or control characters", "',' or ':'", "longer than 100"):
        assert fragment in out
    assert "\x1b" not in out  # never echoed raw to the terminal


@needs_plugin("zoo-torch")
def test_a_plugin_cannot_take_over_a_built_in_framework_name(tmp_path):
    proc = run_odd(tmp_path, ["torch"], "plugins")
    out = " ".join((proc.stdout + proc.stderr).split())
    assert "framework 'torch' is provided by both zoo-torch and (explicit); using zoo-torch (it is built into " \
           "zoo-bench)" in out


def test_import_name_cannot_leave_the_output_directory(tmp_path):
    out = tmp_path / "out"
    for name in ("../escaped", "/abs/path", ".hidden", "a/b"):
        proc = subprocess.run([sys.executable, "-m", "harness.cli", "import", "torchvision", str(tmp_path / "x.pth"),
                               "--name", name, "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                              env={**os.environ, "NO_COLOR": "1"}, timeout=120)
        assert proc.returncode == 2 and "invalid checkpoint name" in proc.stdout + proc.stderr
    assert not (tmp_path / "escaped.safetensors").exists() and not out.exists()
