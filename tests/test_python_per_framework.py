"""One environment per framework (issue 17, defect 8): ``zoo bench --python FRAMEWORK[@LABEL]=PATH``
runs that framework's workers under another interpreter, checked before any cell runs, and a
label (``torch@alt``) runs a second environment of one framework beside the first as a distinct
cell, while an unlabelled cell keeps exactly the key it always had.

The second interpreter is a real virtual environment made here, which sees this environment's
packages through a ``.pth`` file (so nothing is installed) and says in every process it starts
that it is the second one; the cells are real torch cells on tiny settings."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import needs_plugin, run_zoo
from harness.plan.cells import Cell
from harness.plan.request import BenchRequest, PlanError

MARK = "zoo-test: the second interpreter"
TINY = ("-m", "mlp", "-t", "digits", "--init", "scratch", "--epochs", "1", "--threads", "1", "--windows", "1",
        "--window-steps", "1", "--warmup-cap", "1")

#: A plugin whose answers depend on the environment it is imported in (``ZOO_TEST_ENV``, which
#: the second interpreter sets at start-up): the planner must ask the cell's own environment.
ENV_AWARE = '''
import os
import zoo
from zoo.contract import Framework, Support


class EnvAware(Framework):
    name = "envaware"
    contract_version = 2

    def supports(self, spec, device, precision):
        here = os.environ.get("ZOO_TEST_ENV", "main")
        return Support.yes() if here == "second" else Support.no(f"not built for this environment ({here})")

    def subprocess_env(self, runtime):
        return {"ZOO_TEST_PLANNED_IN": os.environ.get("ZOO_TEST_ENV", "main")}

    # planned only, never run: the rest of the contract is not what this plugin is for
    def prepare(self, runtime):
        raise NotImplementedError("envaware is only planned")

    info = load_pretrained = fine_tune = evaluate = export_weights = prepare


@zoo.hookimpl
def zoo_frameworks():
    return [EnvAware()]
'''


def make_venv(where: Path, sees_this_environment: bool = True) -> Path:
    """A new virtual environment (no pip); with ``sees_this_environment``, one whose start-up
    adds this environment's site-packages (editable installs included) and announces itself."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=120)
    python = where / "bin" / "python"
    if sees_this_environment:
        site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   capture_output=True, text=True, check=True).stdout.strip())
        here = sysconfig.get_paths()["purelib"]
        (site / "zoo_test_second.pth").write_text(
            f"import os, site, sys; site.addsitedir({here!r}); os.environ['ZOO_TEST_ENV'] = 'second'; "
            f"sys.stderr.write({MARK!r} + ' ' + sys.executable + chr(10))\n")
    return python


@pytest.fixture(scope="module")
def second_python(tmp_path_factory) -> Path:
    return make_venv(tmp_path_factory.mktemp("envs") / "second")


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]


# -- planning: checked before anything runs ------------------------------------------------------------


def test_an_unlabelled_cell_keeps_its_key_and_a_label_makes_another_cell():
    plain = Cell("torch", "mlp", "digits", "cpu", "fp32", 32, "none", "scratch")
    assert plain.key == "torch-mlp-digits-cpu-fp32-b32-freeze_none-scratch"  # what every stored run holds
    labelled = Cell("torch", "mlp", "digits", "cpu", "fp32", 32, "none", "scratch", env_label="2.12")
    compiled = Cell("torch", "mlp", "digits", "cpu", "fp32", 32, "none", "scratch", "compile", "2.12")
    assert labelled.key == "torch@2.12-mlp-digits-cpu-fp32-b32-freeze_none-scratch"
    assert compiled.key == "torch@2.12+compile-mlp-digits-cpu-fp32-b32-freeze_none-scratch"
    assert (labelled.label, compiled.label) == ("torch@2.12", "torch@2.12:compile")
    odd = Cell("torch", "mlp", "digits", env_label="a b")  # not plain: hashed, still apart from the others
    assert len({plain.key, labelled.key, compiled.key, odd.key, Cell("torch", "mlp", "digits").key}) == 5


def test_the_cells_environment_decides_support_and_worker_variables(second_python, tmp_path, monkeypatch):
    from harness.plan.planner import plan_cells
    from harness.plugins.registry import build_registry
    from zoo.plugin_host import worker_host

    (tmp_path / "env_aware.py").write_text(ENV_AWARE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # the probe imports it in the other interpreter too
    monkeypatch.delenv("ZOO_TEST_ENV", raising=False)
    sys.modules.pop("env_aware", None)
    registry = build_registry(worker_host(["env_aware"]))
    here = plan_cells(BenchRequest(frameworks=["envaware"], models=["mlp"], threads=1), registry, "r")
    assert here[0].plan is None and "not built for this environment (main)" in here[0].skip_reason
    (there,) = plan_cells(BenchRequest(frameworks=["envaware"], models=["mlp"], threads=1,
                                       pythons={"envaware": str(second_python)}), registry, "r")
    assert there.plan is not None and there.plan.python == str(second_python)
    assert there.plan.env["ZOO_TEST_PLANNED_IN"] == "second" and there.plan.env["CUDA_VISIBLE_DEVICES"] == ""
    assert there.cell.key == here[0].cell.key  # no label: the same cell as before
    assert there.interpreter.executable == str(second_python)


@pytest.mark.parametrize("pythons, frameworks, message", [
    ({"torch@alt": "/usr/bin/python3"}, ["torch"], "this run has no torch@alt cells"),
    ({}, ["torch@alt"], "say which interpreter runs it: --python torch@alt=/path/to/that/env/bin/python"),
    ({"torch:compile": "/usr/bin/python3"}, ["torch"], "not a variant"),
    ({}, ["torch@a/b"], "the environment label after '@' must be letters"),
    ({}, ["torch:eager@alt"], "write the environment label before the variant, e.g. torch@alt:eager"),
])
@needs_plugin("zoo-torch")
def test_labels_and_pythons_must_match(pythons, frameworks, message):
    from harness.plan.planner import plan_cells
    from harness.commands.common import load_registry
    import argparse

    _, registry = load_registry(argparse.Namespace(plugins=[], allow=None))
    with pytest.raises(PlanError) as err:
        plan_cells(BenchRequest(frameworks=frameworks, models=["mlp"], threads=1, pythons=pythons), registry, "r")
    assert message in str(err.value)


@needs_plugin("zoo-torch")
def test_interpreters_that_cannot_run_workers_are_refused_with_the_fix(tmp_path):
    bare = make_venv(tmp_path / "bare", sees_this_environment=False)  # Python, but no numpy, no zoo-bench
    script = tmp_path / "not-python"
    script.write_text("#!/bin/sh\nexit 0\n")
    plain_file = tmp_path / "plain"
    plain_file.write_text("")
    cases = [
        (tmp_path / "missing" / "bin" / "python", "no such file"),
        (plain_file, "not an executable file"),
        (script, "it is not a Python this harness can use"),
        (bare, "that interpreter cannot import"),
    ]
    script.chmod(0o755)
    for path, what in cases:
        proc = run_zoo("bench", "-f", "torch", *TINY, "--python", f"torch={path}", "--results-dir",
                       str(tmp_path / "r"), "--run-id", "bad")
        err = " ".join(proc.stderr.split())
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert f"--python torch={path}" in err and what in err, err
        if what != "not an executable file":
            assert "-m pip install -e . -e plugins/zoo-torch" in err, err
        assert not (tmp_path / "r" / "bad").exists()  # refused before the run existed: nothing measured


# -- real cells ---------------------------------------------------------------------------------------


@pytest.mark.slow
@needs_plugin("zoo-torch")
def test_two_environments_of_one_framework_run_side_by_side(second_python, tmp_path):
    proc = run_zoo("bench", "-f", "torch@alt,torch", *TINY, "--python", f"torch@alt={second_python}",
                   "--results-dir", str(tmp_path / "r"), "--run-id", "two", timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "torch@alt" in proc.stdout  # the label names the cell in the table
    run = tmp_path / "r" / "two"
    by_label = {r["cell"].get("env_label", ""): r for r in records(run)}
    assert set(by_label) == {"alt", ""}
    alt, default = by_label["alt"], by_label[""]
    assert alt["cell"]["key"] == "torch@alt-mlp-digits-cpu-fp32-b32-freeze_none-scratch"
    assert default["cell"]["key"] == "torch-mlp-digits-cpu-fp32-b32-freeze_none-scratch"
    assert alt["status"] == default["status"] == "ok"
    # which interpreter ran each worker, said by the record and by the worker's own output
    assert alt["environment"]["interpreter"] == str(second_python)
    assert default["environment"]["interpreter"] == sys.executable
    alt_log = (run / "logs" / f"{alt['cell']['key']}.log").read_text()
    default_log = (run / "logs" / f"{default['cell']['key']}.log").read_text()
    assert f"{MARK} {second_python}" in alt_log and MARK not in default_log
    # the versions come from the worker's own adapter.info(); the plugin's from that interpreter's probe
    assert "torch" in alt["framework"]["versions"]
    assert alt["environment"]["plugin"]["distribution"] == "zoo-torch" and alt["environment"]["plugin"]["version"]
    assert alt["environment"]["env"]["CUDA_VISIBLE_DEVICES"] == ""  # a CPU cell never touches a GPU
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["interpreters"][str(second_python)]["executable"] == str(second_python)
    assert manifest["request"]["pythons"] == {"torch@alt": str(second_python)}

    # the environment disappears: --resume refuses before touching the run, and every record stays
    before = (run / "results.jsonl").read_bytes()
    moved = second_python.parent.parent.with_name("second-moved")
    shutil.move(second_python.parent.parent, moved)
    try:
        again = run_zoo("bench", "--resume", "two", "--results-dir", str(tmp_path / "r"))
        assert again.returncode == 2, again.stdout + again.stderr
        assert f"--python torch@alt={second_python}: no such file" in " ".join(again.stderr.split())
        assert (run / "results.jsonl").read_bytes() == before
    finally:
        shutil.move(moved, second_python.parent.parent)


@pytest.mark.slow
@needs_plugin("zoo-torch")
def test_a_framework_given_python_runs_there_under_its_usual_key(second_python, tmp_path):
    proc = run_zoo("bench", "-f", "torch", *TINY, "--python", f"torch={second_python}", "--results-dir",
                   str(tmp_path / "r"), "--run-id", "one", timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (record,) = records(tmp_path / "r" / "one")
    assert record["cell"]["key"] == Cell("torch", "mlp", "digits", "cpu", "fp32", 32, "none", "scratch").key
    assert record["environment"]["interpreter"] == str(second_python)
    log = (tmp_path / "r" / "one" / "logs" / f"{record['cell']['key']}.log").read_text()
    assert f"{MARK} {second_python}" in log
