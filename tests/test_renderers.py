"""Output formats are renderers: every command with ``--format`` offers every renderer that has its
view, the built-in ones and those a plugin registers with ``zoo_renderers``, and writes what the
renderer returns (text, a binary file, files in a directory, a terminal table)."""

from __future__ import annotations

import types

import pytest

import zoo
from zoo.renderers import Renderer

from harness.plugins.registry import build_registry
from harness.render.registry import Renderers, renderers_for
from results_helpers import RECORDED, plugin_module, zoo as zoo_cli
from zoo.plugin_host import load_plugins

LINES_PLUGIN = '''
import zoo
from zoo.renderers import Renderer


def report_lines(view):
    """One line per row of the side-by-side table, labels from the metric catalogue."""
    t = view.table
    return "".join(f"{r.label}: " + "; ".join(f"{fw}={r.text(fw)}" for fw in t.frameworks) + "\\n" for r in t.rows)


def compare_lines(view):
    counts = view.comparison.counts()
    shown = [f"{r.framework} {view.catalogue.definition(r.metric).title}: {r.verdict}"
             for r in view.rows.itertuples(index=False)]
    return "\\n".join([f"{counts['regressed']} regressed", *shown]) + "\\n"


def report_blob(view):
    return b"ZOO\\x00" + str(len(view.results.metrics)).encode()


@zoo.hookimpl
def zoo_renderers():
    return [Renderer("lines", {"report": report_lines, "compare": compare_lines}, description="one line per row"),
            Renderer("blob", {"report": report_blob}, output="file", suffix=".blob")]
'''


@pytest.fixture
def lines_plugin(tmp_path, monkeypatch):
    return plugin_module(tmp_path / "site", "zoo_lines_plugin", LINES_PLUGIN, monkeypatch)


def test_the_built_in_formats_of_each_command():
    r = Renderers()
    assert r.formats("report") == ("table", "markdown", "html", "csv", "parquet")
    assert r.formats("compare") == ("table", "markdown", "json", "csv")
    assert r.formats("history") == ("table", "markdown", "html", "csv")
    assert r.formats("export") == ("pytest-benchmark", "github-action-benchmark", "bencher")
    help_text = zoo_cli("report", "--help")
    assert help_text.returncode == 0 and "table, markdown, html, csv, parquet" in help_text.stdout


def test_a_plugin_renderer_is_a_format_choice_of_report_and_compare(lines_plugin):
    bad = zoo_cli("-p", lines_plugin, "report", str(RECORDED / "aa-1"), "--format", "nope")
    assert bad.returncode == 2
    assert "unknown format 'nope'; choose from table, markdown, html, csv, parquet, lines, blob" in bad.stderr
    bad = zoo_cli("-p", lines_plugin, "compare", str(RECORDED / "aa-1"), str(RECORDED / "aa-2"), "--format", "nope")
    assert bad.returncode == 2 and "choose from table, markdown, json, csv, lines" in bad.stderr
    wrong_view = zoo_cli("-p", lines_plugin, "history", str(RECORDED), "--format", "lines")
    assert wrong_view.returncode == 2
    assert "format 'lines' cannot render zoo history; choose from table, markdown, html, csv" in wrong_view.stderr
    without = zoo_cli("report", str(RECORDED / "aa-1"), "--format", "lines")  # the plugin is not loaded
    assert without.returncode == 2 and "unknown format 'lines'" in without.stderr


def test_a_plugin_renderer_renders_the_report_and_the_comparison(lines_plugin, tmp_path):
    proc = zoo_cli("-p", lines_plugin, "report", str(RECORDED / "aa-1"), "--format", "lines")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("accuracy % ↑: torch=76.1 (1.00×); jax=76.1 (1.00×)")
    assert any(line.startswith("b1 p50 ms ↓: torch=0.035 ±2% (1.00×)") for line in lines)
    out = tmp_path / "report.txt"
    proc = zoo_cli("-p", lines_plugin, "report", str(RECORDED / "aa-1"), "--format", "lines", "-o", str(out))
    assert proc.returncode == 0 and f"wrote {out}" in proc.stdout and out.read_text().splitlines() == lines
    proc = zoo_cli("-p", lines_plugin, "compare", str(RECORDED / "aa-1"), str(RECORDED / "aa-2"), "--format", "lines")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "0 regressed"
    assert all(line.endswith(": unstable") for line in proc.stdout.splitlines()[1:])  # the noisy torch cell


def test_a_binary_renderer_needs_an_output_file(lines_plugin, tmp_path):
    proc = zoo_cli("-p", lines_plugin, "report", str(RECORDED / "aa-1"), "--format", "blob")
    assert proc.returncode == 2 and "--format blob writes a file: add -o FILE.blob" in proc.stderr
    out = tmp_path / "r.blob"
    proc = zoo_cli("-p", lines_plugin, "report", str(RECORDED / "aa-1"), "--format", "blob", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes().startswith(b"ZOO\x00") and int(out.read_bytes()[4:]) > 20


def test_a_plugin_cannot_take_a_built_in_format_name_and_the_first_plugin_wins(fake_distribution):
    fake_distribution("zoo-md", {"md": "md_renderer"}, {"md_renderer": '''
        import zoo
        from zoo.renderers import Renderer

        @zoo.hookimpl
        def zoo_renderers():
            return [Renderer("markdown", {"report": str}), Renderer("fancy", {"report": str}), object()]
        '''})
    host = load_plugins(autoload=True, allowed=["zoo-md"])
    other = types.SimpleNamespace(zoo_renderers=zoo.hookimpl(lambda: [Renderer("fancy", {"compare": str})]))
    host.pm.register(other, name="other-fancy")
    try:
        registry = build_registry(host)
    finally:
        host.pm.unregister(other)
    problems = [p.error for p in registry.problems]
    assert any("format 'markdown' from zoo-md is built into zoo-bench" in e for e in problems), problems
    assert any("not a zoo.renderers.Renderer" in e for e in problems)
    assert any("format 'fancy' is provided by both" in e and "zoo-md" in e for e in problems)
    renderers = renderers_for(registry)
    assert renderers.formats("report").count("markdown") == 1 and renderers.get("report", "markdown").suffix == ".md"


@pytest.mark.parametrize("kwargs,message", [
    (dict(name="Fancy"), "lower-case letters"),
    (dict(views={"dashboard": str}), "keys from report, compare, history, export"),
    (dict(views={"report": "not callable"}), "maps to a function"),
    (dict(output="pdf"), "output must be one of"),
])
def test_a_renderer_checks_itself(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Renderer(**{"name": "fancy", "views": {"report": str}, **kwargs})
