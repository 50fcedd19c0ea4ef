"""The third-party plugin kit, end to end as a newcomer uses it: the example plugin
(examples/zoo-numpy) is installed from its own directory and passes the conformance suite, its
own tests and `zoo bench`; `zoo new-plugin` writes a distribution that installs and passes its
generated test; docs/writing-plugins.md shows exactly the tested example files.

Plugins are installed with pip into a private directory (never into this environment) that
the subprocesses get on PYTHONPATH, so discovery goes through real entry points.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from conftest import ROOT, plugin_installed, run_zoo
from harness.scaffold import FILES, ScaffoldError, check_name, create_plugin
from zoo.testing import CHECKS

EXAMPLE = ROOT / "examples" / "zoo-numpy"
GUIDE = ROOT / "docs" / "writing-plugins.md"
#: pytest's summary for an inference-only plugin: every check passes, fine-tune does not apply.
ALL_BUT_FINE_TUNE = f"{len(CHECKS) - 1} passed, 1 skipped"


def install_plugin(source: Path, into: Path) -> Path:
    """Install the distribution at ``source`` into ``into``/site and return that directory.
    pip builds it offline from a copy (no build isolation, no index, no dependencies); where pip
    cannot build (no setuptools in the environment) the same files are laid out by hand."""
    src, site = into / "src", into / "site"
    shutil.copytree(source, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(site), str(src)], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        lay_out_by_hand(src, site)
    return site


def lay_out_by_hand(src: Path, site: Path) -> None:
    project = tomllib.loads((src / "pyproject.toml").read_text())["project"]
    packages = tomllib.loads((src / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    entry_points = "".join(f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items())
                           for group, eps in project["entry-points"].items())
    (info / "entry_points.txt").write_text(entry_points)
    for package in packages:
        shutil.copytree(src / package, site / package, dirs_exist_ok=True)


def env_with(site: Path) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


def pytest_in(directory: Path, site: Path, *args: str) -> subprocess.CompletedProcess:
    """A plugin author's `pytest`, run in the plugin's directory."""
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=directory,
                          capture_output=True, text=True, timeout=600, env={**os.environ, **env_with(site)})


# -- the example plugin ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Path:
    return install_plugin(EXAMPLE, tmp_path_factory.mktemp("zoo-numpy"))


def test_example_passes_its_own_conformance_tests(example):
    proc = pytest_in(example.parent / "src", example, "-q", "tests")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert ALL_BUT_FINE_TUNE in proc.stdout, proc.stdout[-2000:]  # fine-tune: not applicable


def test_example_is_discovered_and_shows_training_as_not_applicable(example):
    proc = run_zoo("check-plugin", "numpy", "--checks", "discovery,plan,fine-tune", "--json", env=env_with(example))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] and report["checks"] == {"discovery": "passed", "plan": "passed", "fine-tune": "not applicable"}
    assert report["origin"] == "zoo-numpy 0.1.0, entry point numpy -> zoo_numpy"


def test_pytest_option_runs_the_suite_against_an_installed_framework(example, tmp_path):
    proc = pytest_in(tmp_path, example, "--zoo-framework", "numpy", "-k", "discovery or plan or fine-tune", "-v")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "zoo-conformance::numpy::discovery PASSED" in proc.stdout
    assert "zoo-conformance::numpy::fine-tune SKIPPED" in proc.stdout
    assert f"{len(CHECKS) - 3} deselected" in proc.stdout


def test_pytest_option_reports_what_failed_and_why(tmp_path):
    proc = pytest_in(tmp_path, tmp_path, "-p", "zoo.testing.pytest_plugin", "--zoo-framework", "not-installed",
                     "-k", "discovery")
    assert proc.returncode == 1
    assert "FAIL discovery: unknown framework 'not-installed'" in proc.stdout
    assert "[project.entry-points.zoo]" in proc.stdout


@pytest.mark.slow
def test_bench_runs_the_example_and_shows_training_as_not_applicable(example, tmp_path):
    proc = run_zoo("bench", "-f", "numpy", "-m", "mlp", "--epochs", "2", "--windows", "2",
                   "--results-dir", str(tmp_path), "--run-id", "numpy", env=env_with(example))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    row = next(line for line in proc.stdout.splitlines() if "│ numpy" in line)
    cells = [c.strip() for c in row.strip("│ ").split("│")]
    # The status reads "ok, disturbed" when other processes took the CPU meanwhile (harness.measure.contention).
    status_ok = any(c.split(",")[0] == "ok" for c in cells)
    assert cells[:3] == ["numpy", "mlp", "digits"] and status_ok and "n/a" in cells, row
    (record,) = [json.loads(line) for line in (tmp_path / "numpy" / "results.jsonl").read_text().splitlines()]
    assert record["status"] == "ok" and record["not_applicable"] == ["fine_tune"]
    assert "train_throughput" not in record["metrics"] and record["metrics"]["infer_throughput"]["value"] > 0
    assert record["environment"]["plugin"]["distribution"] == "zoo-numpy"


def test_guide_shows_the_example_files_exactly():
    """Every ```block in the guide that follows a `<!-- file: PATH -->` marker is that file."""
    guide = GUIDE.read_text()
    shown = re.findall(r"<!-- file: (\S+) -->\n```[a-z]*\n(.*?)```", guide, re.S)
    assert {path for path, _ in shown} >= {"examples/zoo-numpy/pyproject.toml",
                                           "examples/zoo-numpy/zoo_numpy/__init__.py",
                                           "examples/zoo-numpy/zoo_numpy/adapter.py",
                                           "examples/zoo-numpy/tests/test_conformance.py"}
    for path, text in shown:
        assert text == (ROOT / path).read_text(), f"docs/writing-plugins.md shows an outdated {path}"


def test_guide_names_every_hook_check_and_contract_method():
    from zoo import hookspecs
    from zoo.contract import Framework

    guide = GUIDE.read_text()
    for hook in [name for name in vars(hookspecs) if name.startswith("zoo_")]:
        assert f"`{hook}(" in guide, f"hook {hook} is not described"
    for check in CHECKS:
        assert f"`{check}`" in guide, f"check {check} is not described"
    methods = [m for m in vars(Framework) if not m.startswith("_") and callable(getattr(Framework, m))]
    for method in methods:
        assert f"`{method}" in guide, f"Framework.{method} is not described"


# -- zoo new-plugin ------------------------------------------------------------------------------

def test_new_plugin_writes_a_distribution_that_installs_and_passes_its_generated_test(tmp_path):
    proc = run_zoo("new-plugin", "demo_rt", "--directory", str(tmp_path / "zoo-demo-rt"))
    assert proc.returncode == 0, proc.stderr
    assert "pip install -e ." in proc.stdout and "zoo check-plugin demo_rt" in proc.stdout
    root = tmp_path / "zoo-demo-rt"
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == "zoo-demo-rt"
    assert pyproject["project"]["entry-points"]["zoo"] == {"demo_rt": "zoo_demo_rt"}
    assert "class DemoRtFramework(Framework)" in (root / "zoo_demo_rt" / "adapter.py").read_text()

    site = install_plugin(root, tmp_path / "install")
    proc = pytest_in(tmp_path / "install" / "src", site, "-q")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert ALL_BUT_FINE_TUNE in proc.stdout


def test_a_scaffold_method_left_unimplemented_is_reported_not_crashed(tmp_path):
    root = tmp_path / "zoo-todo"
    create_plugin("todo", root)
    adapter = root / "zoo_todo" / "adapter.py"
    source = adapter.read_text()
    body = "        outputs = []\n        for x in data.batches():"
    assert body in source
    adapter.write_text(source.replace(body, "        raise NotImplementedError\n" + body, 1))
    site = install_plugin(root, tmp_path / "install")
    proc = run_zoo("check-plugin", "todo", "--checks", "discovery,load,evaluate,export", env=env_with(site))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "not implemented yet: TodoFramework.evaluate raised NotImplementedError" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "does NOT conform" in proc.stdout


def test_new_plugin_refuses_bad_names_taken_names_and_non_empty_directories(tmp_path):
    for name in ("Torch", "2fast", "with-dash", "class"):
        with pytest.raises(ScaffoldError, match="plugin name"):
            check_name(name)
    assert check_name("onnx_rt").distribution == "zoo-onnx-rt"
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("")
    with pytest.raises(ScaffoldError, match="not empty"):
        create_plugin("fine", tmp_path / "taken")
    written = create_plugin("fine", tmp_path / "taken", force=True)
    assert {p.relative_to(tmp_path / "taken").as_posix() for p in written} == {
        target.replace("$package", "zoo_fine") for target in FILES.values()}
    if plugin_installed("zoo-torch"):
        proc = run_zoo("new-plugin", "torch", "--directory", str(tmp_path / "t"))
        assert proc.returncode == 2 and "already provided by zoo-torch" in proc.stderr
