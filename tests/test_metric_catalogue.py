"""The metric catalogue: one definition per metric is all a report, ``zoo compare`` (with its gate),
``zoo history``, the exports, the ``zoo bench`` table and the ``--repeats`` merge need. A metric
defined by a plugin (``zoo_metrics``) shows up in all of them with nothing else changed; the
built-in definitions cover every metric the worker writes and reproduce the tables they replaced."""

from __future__ import annotations

import ast
import io
import json
import types
from pathlib import Path

import pytest
from rich.console import Console

import zoo
from zoo.metrics import MetricDef, Rule, Timing

from harness.plugins.registry import build_registry
from harness.render.terminal import print_results
from harness.results.loader import load_results
from harness.results.metrics import BUILTIN, Catalogue
from harness.results.records import record_from_dict
from harness.results.repeats import merge_repeats
from harness.results.store import read_records
from results_helpers import RECORDED, copy_run, plugin_module, with_metric, zoo as zoo_cli
from zoo.plugin_host import load_plugins

ROOT = Path(__file__).resolve().parent.parent

ENERGY_PLUGIN = '''
import zoo
from zoo.metrics import MetricDef, Rule, Timing


@zoo.hookimpl
def zoo_metrics():
    return [
        MetricDef("gpu_energy_j", "J", "lower", label="GPU energy J", format="{:,.1f}", phase="train_throughput",
                  compare=Rule("relative", 0.05, tested=False), gates=True, plotted=True, column=95, merge="median"),
        MetricDef("step_time_ms", "ms", "lower", label="step ms", format="{:.2f}", phase="train_throughput",
                  column=96, merge="pooled", timing=Timing("ms", "step")),
    ]
'''


def _energy_run(dst: Path, src: Path = RECORDED / "aa-1", factor: float = 1.0, only: str = "") -> Path:
    """A real recorded run with the plugin's two metrics added to every ok cell, as its tracker
    would have written them: energy a single value, step times raw samples (from the cell's own
    batch-1 latencies). ``factor`` scales the energy of the cells whose key starts with ``only``."""
    def edit(r):
        if r["status"] != "ok":
            return r
        scale = factor if r["cell"]["key"].startswith(only) else 1.0
        with_metric(r, "gpu_energy_j", "J", "lower", value=1000.0 * scale + len(r["cell"]["framework"]))
        latencies = r["metrics"]["latency_p50_ms"]["samples"]
        with_metric(r, "step_time_ms", "ms", "lower", samples=[10 * s for s in latencies])
        return r
    return copy_run(src, dst, edit)


@pytest.fixture
def energy(tmp_path, monkeypatch):
    """The plugin module on sys.path (for ``zoo -p``) and a results directory with two runs."""
    name = plugin_module(tmp_path / "site", "zoo_energy_plugin", ENERGY_PLUGIN, monkeypatch)
    results = tmp_path / "results"
    _energy_run(results / "e-1")
    _energy_run(results / "e-2", RECORDED / "aa-2")
    return types.SimpleNamespace(module=name, results=results)


def _catalogue(module_source: str = ENERGY_PLUGIN) -> Catalogue:
    """The catalogue a command builds, with the plugin registered in-process."""
    host = load_plugins(autoload=False)
    namespace: dict = {}
    exec(compile(module_source, "<plugin>", "exec"), namespace)
    plugin = types.SimpleNamespace(zoo_metrics=namespace["zoo_metrics"])
    host.pm.register(plugin, name="energy-in-process")
    try:
        registry = build_registry(host)
        assert not registry.problems, registry.problems
        return registry.catalogue
    finally:
        host.pm.unregister(plugin)


# --- a plugin's metric, everywhere


def test_a_plugin_metric_is_a_column_of_the_report_table_markdown_and_html(energy):
    run = str(energy.results / "e-1")
    table = zoo_cli("-p", energy.module, "report", run)
    assert table.returncode == 0, table.stderr
    assert "GPU energy J ↓" in table.stdout and "1,005.0" in table.stdout  # torch: 1000 + len("torch")
    assert "step ms ↓" in table.stdout
    plain = zoo_cli("report", run)  # without the plugin the metric is not a default column
    assert plain.returncode == 0 and "GPU energy J" not in plain.stdout and "gpu_energy_j" not in plain.stdout
    md = zoo_cli("-p", energy.module, "report", run, "--format", "markdown")
    assert md.returncode == 0 and "| GPU energy J ↓ |" in md.stdout and "1,005.0" in md.stdout
    page = zoo_cli("-p", energy.module, "report", str(energy.results), "--format", "html").stdout
    assert "GPU energy J ↓" in page  # the table
    assert 'class="chart-title">GPU energy J</text>' in page  # its bar chart (plotted)
    assert 'class="chart-title">GPU energy J over runs</text>' in page  # and its history chart


def test_a_plugin_metric_that_gates_fails_zoo_compare(energy, tmp_path):
    base = energy.results / "e-1"
    worse = _energy_run(tmp_path / "worse", factor=1.10, only="jax")  # 10 % more energy in the jax cell
    proc = zoo_cli("-p", energy.module, "compare", str(base), str(worse))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    row = next(line for line in proc.stdout.splitlines() if "GPU energy J" in line)
    assert "jax" in row and "+10.0%" in row and "regressed (gates)" in row
    assert "FAIL: 1 regression(s) in gating metrics" in proc.stdout and "gpu_energy_j" in proc.stdout
    doc = json.loads(zoo_cli("-p", energy.module, "compare", str(base), str(worse), "--format", "json").stdout)
    assert "gpu_energy_j" in doc["settings"]["fail_on"] and doc["failures"] == 1
    (regressed,) = [r for r in doc["rows"] if r["verdict"] == "regressed"]
    assert regressed["metric"] == "gpu_energy_j" and regressed["note"] == "no samples: threshold only"
    md = zoo_cli("-p", energy.module, "compare", str(base), str(worse), "--format", "markdown").stdout
    assert "GPU energy J" in md and "⛔" in md
    assert zoo_cli("-p", energy.module, "compare", str(base), str(worse), "--fail-on", "accuracy").returncode == 0
    assert zoo_cli("-p", energy.module, "compare", str(base), str(worse), "--fail-on", "gpu_energy_j").returncode == 1
    assert zoo_cli("compare", str(base), str(worse)).returncode == 0  # without the plugin: not compared
    bad = zoo_cli("compare", str(base), str(worse), "--fail-on", "gpu_energy_j")
    assert bad.returncode == 2 and "unknown metric 'gpu_energy_j'" in bad.stderr


def test_a_plugin_metric_has_a_history_with_its_label(energy):
    proc = zoo_cli("-p", energy.module, "history", str(energy.results), "--format", "markdown")
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if "GPU energy J" in line]
    assert len(rows) == 3 and all("1,00" in r for r in rows)  # one series per framework


def test_a_plugin_metric_is_exported(energy, tmp_path):
    run = str(energy.results / "e-1")
    bencher = json.loads(zoo_cli("-p", energy.module, "export", run, "--format", "bencher").stdout)
    assert all("gpu-energy-j" in measures and "step-time-ms" in measures for measures in bencher.values())
    out = tmp_path / "gab"
    proc = zoo_cli("-p", energy.module, "export", run, "--format", "github-action-benchmark", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    smaller = json.loads((out / "smaller_is_better.json").read_text())
    energy_entries = [e for e in smaller if e["name"].endswith(" gpu_energy_j")]
    assert len(energy_entries) == 3 and all(e["unit"] == "J" and e["extra"].startswith("GPU energy J;")
                                            for e in energy_entries)
    doc = json.loads(zoo_cli("-p", energy.module, "export", run, "--format", "pytest-benchmark").stdout)
    steps = [b for b in doc["benchmarks"] if b["name"].startswith("step_time_ms[")]
    assert len(steps) == 3 and all(b["group"] == "step ms" and b["extra_info"]["unit"] == "s/step" for b in steps)
    torch = next(b for b in steps if "[torch-" in b["name"])
    rs = load_results([energy.results / "e-1"])
    latency = rs.metrics.query("metric == 'latency_p50_ms' and framework == 'torch'")["value"].iloc[0]
    assert torch["stats"]["median"] == pytest.approx(10 * latency / 1000)  # ms per step -> seconds
    plain = json.loads(zoo_cli("export", run, "--format", "pytest-benchmark").stdout)
    assert not any(b["name"].startswith("step_time_ms[") for b in plain["benchmarks"])


def test_the_bench_table_shows_a_plugin_column_and_otherwise_exactly_the_built_in_columns(energy):
    records = list(read_records(energy.results / "e-1" / "results.jsonl"))

    def headers(catalogue: Catalogue) -> list[str]:
        out = io.StringIO()
        print_results(records, Console(file=out, width=300), catalogue=catalogue)
        return [h.strip() for h in out.getvalue().splitlines()[1].strip("┃").split("┃")]

    builtin = ["framework", "model", "task", "precision", "status", "accuracy %", "train samples/s",
               "infer samples/s", "b1 p50 ms", "train util %", "compile s", "to target s", "fine-tune s", "peak MiB"]
    assert headers(BUILTIN) == builtin
    assert headers(_catalogue()) == builtin + ["GPU energy J", "step ms"]


def test_repeats_merge_a_plugin_metric_as_its_definition_says(energy):
    first, second = (record_from_dict(json.loads((energy.results / run / "results.jsonl").read_text().splitlines()[0]))
                     for run in ("e-1", "e-2"))
    assert first.cell.key == second.cell.key  # the same cell in two processes
    merged = merge_repeats([first, second], catalogue=_catalogue())
    steps = merged.metrics["step_time_ms"]  # "pooled": both processes' samples
    assert len(steps.samples) == len(first.metrics["step_time_ms"].samples) * 2 and steps.spread["groups"] == 2
    energy_j = merged.metrics["gpu_energy_j"]  # "median": the repeats' values become its samples
    assert energy_j.samples == (first.metrics["gpu_energy_j"].value, second.metrics["gpu_energy_j"].value)


def test_the_worker_makes_metrics_with_the_definitions_unit_and_direction():
    catalogue = _catalogue()
    m = catalogue.metric("gpu_energy_j", 12)
    assert (m.value, m.unit, m.direction, m.samples) == (12.0, "J", "lower", ())
    sampled = catalogue.metric("step_time_ms", [3.0, 1.0, 2.0])
    assert sampled.value == 2.0 and sampled.samples == (3.0, 1.0, 2.0) and sampled.spread["n"] == 3
    assert catalogue.from_samples("latency_p50_ms", [1.0, 2.0]).unit == "ms"
    assert (BUILTIN.metric("framework_peak_mb", 3.0).unit, BUILTIN["framework_peak_mb"].direction) == ("MiB", "lower")
    unknown = BUILTIN.metric("never_defined", 1.0)
    assert (unknown.unit, unknown.direction) == ("", "info")
    assert BUILTIN.definition("never_defined").title == "never_defined" and "never_defined" not in BUILTIN


# --- what a plugin may define


def test_a_plugin_cannot_redefine_a_built_in_metric_and_the_first_plugin_wins(fake_distribution):
    fake_distribution("zoo-dup", {"dup": "dup_metrics"}, {"dup_metrics": '''
        import zoo
        from zoo.metrics import MetricDef

        @zoo.hookimpl
        def zoo_metrics():
            return [MetricDef("accuracy", "%", "higher"), MetricDef("framework_gpu_mb", "MiB", "lower"),
                    "not a definition", MetricDef("gpu_energy_j", "J", "lower")]
        '''})
    host = load_plugins(autoload=True, allowed=["zoo-dup"])
    other = types.SimpleNamespace(zoo_metrics=zoo.hookimpl(lambda: [MetricDef("gpu_energy_j", "kJ", "lower")]))
    host.pm.register(other, name="other-energy")
    try:
        registry = build_registry(host)
    finally:
        host.pm.unregister(other)
    problems = [p.error for p in registry.problems]
    assert any("metric 'accuracy' from zoo-dup is built into zoo-bench" in e for e in problems), problems
    assert any("metric 'framework_gpu_mb' from zoo-dup is built into zoo-bench" in e for e in problems)
    assert any("zoo_metrics returned 'not a definition', not a zoo.metrics.MetricDef" in e for e in problems)
    assert any("metric 'gpu_energy_j' is provided by both" in e and "zoo-dup" in e and "(in-process)" in e
               for e in problems)
    assert list(registry.metrics) == ["gpu_energy_j"]
    assert registry.catalogue["accuracy"] is BUILTIN["accuracy"]


@pytest.mark.parametrize("kwargs,message", [
    (dict(direction="up"), "direction must be one of higher, lower, info"),
    (dict(gates=True), "gates=True needs a compare rule"),
    (dict(format="{:d}"), "cannot format a number"),
    (dict(merge="percentile", merge_of="latency_p50_ms"), "needs 0 < merge_q < 100"),
    (dict(merge="scaled"), "needs merge_of"),
    (dict(name="Bad-Name"), "lower-case letters"),
    (dict(name="x_*", plotted=True), "a pattern cannot"),
])
def test_a_definition_checks_itself(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MetricDef(**{"name": "x", **kwargs})
    with pytest.raises(ValueError, match="kind must be one of relative, absolute"):
        Rule("percent", 0.05)
    with pytest.raises(ValueError, match="defined twice"):
        BUILTIN.extended([MetricDef("accuracy")])


# --- the built-in definitions


def _name_of(node: ast.AST) -> str:
    return getattr(node, "attr", getattr(node, "id", ""))


def _names_the_worker_writes() -> dict[str, str]:
    """Metric names in the worker's and the built-in trackers' source (an f-string's fields become
    ``*``): first arguments of ``metric(...)`` calls, keys of dicts of ``metric``/``Metric`` values
    and of subscripts assigned one, keys of ``self.metrics[...]``, keys of dicts a tracker returns."""
    calls = {"metric", "Metric", "from_samples"}

    def func(call: ast.Call) -> str:
        return call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")

    def text(node: ast.AST) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.JoinedStr):
            return "".join(v.value if isinstance(v, ast.Constant) else "*" for v in node.values)
        return None

    found: dict[str, str] = {}
    sources = [*ROOT.glob("harness/worker/*.py"), *ROOT.glob("harness/measure/trackers/*.py")]
    for path in sorted(sources):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str | None] = []
            if isinstance(node, ast.Call) and func(node) == "metric" and node.args:
                names.append(text(node.args[0]))
            elif isinstance(node, ast.Dict):
                names += [text(k) for k, v in zip(node.keys, node.values)
                          if k is not None and isinstance(v, ast.Call) and func(v) in calls]
            elif isinstance(node, ast.Subscript) and _name_of(node.value) == "metrics":
                names.append(text(node.slice))
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and func(node.value) in calls:
                names += [text(t.slice) for t in node.targets if isinstance(t, ast.Subscript)]
            elif isinstance(node, ast.FunctionDef) and node.name in ("stop", "finish") and "trackers" in path.parts:
                names += [text(k) for r in ast.walk(node) if isinstance(r, ast.Return) and isinstance(r.value, ast.Dict)
                          for k in r.value.keys if k is not None]  # what a tracker's stop/finish returns
            for n in names:
                if n:
                    found.setdefault(n, path.relative_to(ROOT).as_posix())
    return found


def test_every_metric_the_worker_writes_has_a_definition():
    found = _names_the_worker_writes()
    assert {"accuracy", "train_throughput", "latency_p99_ms", "accuracy_curve", "peak_rss_mb",
            "framework_*_mb", "import_s"} <= set(found), found  # the scan sees the worker's metrics
    defined = {d.name for d in BUILTIN.definitions}
    missing = {n: where for n, where in found.items() if n not in defined and n not in BUILTIN}
    assert not missing, f"metrics written without a definition in harness/results/metrics.py: {missing}"


def test_recorded_real_records_match_their_definitions():
    m = load_results([RECORDED]).metrics
    for name, unit, direction in m[["metric", "unit", "direction"]].drop_duplicates().itertuples(index=False):
        assert name in BUILTIN, name
        assert (BUILTIN[name].unit, BUILTIN[name].direction) == (unit, direction), name


def test_the_built_in_definitions_reproduce_the_tables_they_replaced():
    assert BUILTIN.columns() == ("accuracy", "train_throughput", "infer_throughput", "latency_p50_ms",
                                 "train_utilisation", "compile_s", "time_to_accuracy_s", "fine_tune_wall_s",
                                 "peak_rss_mb")
    assert BUILTIN.gates() == ("train_throughput", "infer_throughput", "latency_p50_ms", "peak_rss_mb", "accuracy")
    assert BUILTIN.plotted() == BUILTIN.gates()
    assert BUILTIN.compare_rules() == {
        "train_throughput": Rule("relative", 0.05), "infer_throughput": Rule("relative", 0.05),
        "latency_p50_ms": Rule("relative", 0.05), "peak_rss_mb": Rule("relative", 0.02, min_abs=32.0, tested=False),
        "accuracy": Rule("absolute", 0.5, tested=False)}
    assert BUILTIN["compile_s"].history_rule == Rule("relative", 0.10, min_abs=0.05, tested=False)
    assert BUILTIN["fine_tune_wall_s"].history_rule == Rule("relative", 0.10, min_abs=0.1, tested=False)
    assert BUILTIN["load_s"].history_rule == Rule("relative", 0.10, tested=False)
    assert BUILTIN.timings() == {"train_throughput": Timing("rate", "sample"),
                                 "infer_throughput": Timing("rate", "sample"), "latency_p50_ms": Timing("ms", "call")}
    training = {n for n in BUILTIN.columns() if BUILTIN.shown_not_applicable(n, ("fine_tune",))}
    assert training == {"train_throughput", "train_utilisation", "compile_s", "time_to_accuracy_s", "fine_tune_wall_s"}
    assert {n: BUILTIN[n].merge for n in ("latency_p90_ms", "train_gflops", "accuracy_curve")} == {
        "latency_p90_ms": "percentile", "train_gflops": "scaled", "accuracy_curve": "first"}
