"""`zoo report` in every format from real recorded runs: the side-by-side table with ratios,
Markdown and HTML that escape every name, CSV/Parquet that round-trip, and HTML that renders in
headless Chromium (when it is installed)."""

import json
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from conftest import needs_plugin
from harness.analysis.history import build_history
from harness.render.html import html_report
from harness.results.loader import load_results
from harness.render.markdown import comparison_markdown, history_markdown, side_by_side_markdown
from harness.analysis.compare import compare_results
from harness.analysis.side_by_side import side_by_side
from results_helpers import HOSTILE, RECORDED, copy_run, live_run, zoo


def test_side_by_side_puts_frameworks_in_columns_with_ratios_to_the_reference():
    sbs = side_by_side(load_results([RECORDED / "aa-1"]), reference="torch")
    assert sbs.frameworks[:1] == ["torch"] and set(sbs.frameworks) == {"torch", "jax", "tf"}
    row = next(r for r in sbs.rows if r.metric == "infer_throughput")
    assert row.entries["torch"].ratio == pytest.approx(1.0)
    assert row.entries["jax"].ratio == pytest.approx(row.entries["jax"].value / row.entries["torch"].value)
    assert "×" in row.entries["jax"].text(row.metric)
    with pytest.raises(ValueError, match="unknown reference framework 'mxnet'; in these runs: torch, jax, tf"):
        side_by_side(load_results([RECORDED / "aa-1"]), reference="mxnet")


def _hostile_run(tmp_path: Path) -> Path:
    """A real run whose names, run id and error message are hostile strings."""
    def edit(r):
        r["cell"].update(framework=r["cell"]["framework"] + HOSTILE, model="m" + HOSTILE, task="<b>t</b>")
        r["cell"]["key"] = r["cell"]["key"] + HOSTILE
        if r["cell"]["framework"].startswith("tf"):
            r.update(status="failed", error={"phase": "fine_tune", "type": "<script>", "message": HOSTILE, "detail": ""})
        return r
    return copy_run(RECORDED / "aa-1", tmp_path / "x<i>y", edit, manifest=lambda m: {**m, "trigger": HOSTILE})


class _Elements(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attrs, self.text = set(), [], []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attrs += attrs

    def handle_data(self, data):
        self.text.append(data)


def test_html_escapes_every_name_and_loads_nothing(tmp_path):
    rs = load_results([_hostile_run(tmp_path), RECORDED / "aa-2"])
    page = html_report(rs, side_by_side(rs), build_history(rs))
    parser = _Elements()
    parser.feed(page)
    assert not parser.tags & {"img", "script", "b", "i", "iframe", "a", "link"}
    assert not {"onerror", "src", "href"} & {name for name, _ in parser.attrs}
    assert [v for name, v in parser.attrs if "//" in (v or "")] == ["http://www.w3.org/2000/svg"] * page.count("<svg")
    text = "".join(parser.text)
    assert HOSTILE in text and "<b>t</b>" in text and "x<i>y" in text
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert page.count("<svg") >= 5


def test_markdown_escapes_every_name(tmp_path):
    hostile = load_results([_hostile_run(tmp_path)])
    texts = [side_by_side_markdown(side_by_side(hostile)),
             comparison_markdown(compare_results(load_results([RECORDED / "aa-2"]), hostile)),
             history_markdown(build_history(load_results([RECORDED / "aa-2", _hostile_run(tmp_path)])))]
    for text in texts:
        assert "<img" not in text and "<b>" not in text and "<script>" not in text
        assert "&lt;img src=x onerror=alert(1)&gt;" in text
        for line in text.splitlines():
            if line.startswith("|"):  # a table row: every cell's own pipes are escaped
                assert line.count("|") - line.count("\\|") == line.count(" | ") + 2


def test_csv_and_parquet_round_trip_the_metrics_frame(tmp_path):
    rs = load_results([RECORDED])
    proc = zoo("report", str(RECORDED), "--format", "csv", "-o", str(tmp_path / "r.csv"))
    assert proc.returncode == 0, proc.stderr
    back = pd.read_csv(tmp_path / "r.csv")
    assert len(back) == len(rs.metrics) and set(back["run"]) == {"aa-1", "aa-2"}
    assert json.loads(back.loc[back["metric"] == "latency_p50_ms", "samples"].iloc[0])[:3] == \
        list(rs.metrics.loc[rs.metrics["metric"] == "latency_p50_ms", "samples"].iloc[0][:3])
    pytest.importorskip("pyarrow", reason="parquet needs pip install 'zoo-bench[parquet]'")
    proc = zoo("report", str(RECORDED), "--format", "parquet", "-o", str(tmp_path / "r.parquet"))
    assert proc.returncode == 0, proc.stderr
    table = pd.read_parquet(tmp_path / "r.parquet")
    assert len(table) == len(rs.metrics) and len(table.loc[table["metric"] == "latency_p50_ms", "samples"].iloc[0]) == 100
    assert zoo("report", str(RECORDED), "--format", "parquet").returncode == 2  # needs -o


def test_report_table_and_markdown_from_the_command():
    proc = zoo("report", "aa-1", "--results-dir", str(RECORDED), "--reference", "jax")
    assert proc.returncode == 0, proc.stderr
    assert "jax (ref)" in proc.stdout and "1.00×" in proc.stdout and "infer samples/s" in proc.stdout
    proc = zoo("report", str(RECORDED / "aa-1"), str(RECORDED / "aa-2"), "--format", "markdown")
    assert proc.returncode == 0 and "| run | model | task | metric |" in proc.stdout
    proc = zoo("report", "aa-1", "--results-dir", str(RECORDED), "--reference", "mxnet")
    assert proc.returncode == 2 and "unknown reference framework" in proc.stderr


CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--enable-logging=stderr", "--v=0"]


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (apt-get install chromium); "
                                             "see docs/results.md for the manual check")
def test_html_report_renders_in_headless_chromium_without_errors(tmp_path):
    page = tmp_path / "report.html"
    proc = zoo("report", str(_hostile_run(tmp_path)), str(RECORDED / "aa-2"), "--format", "html", "-o", str(page))
    assert proc.returncode == 0, proc.stderr
    with tempfile.TemporaryDirectory() as profile:
        shown = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
                               capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr[-2000:]
    dom = shown.stdout
    assert "<svg" in dom and "Frameworks side by side" in dom
    assert "&lt;img src=x onerror=alert(1)&gt;" in dom and "<img" not in dom
    console_errors = [line for line in shown.stderr.splitlines()
                      if "CONSOLE" in line or "Uncaught" in line or "Refused to" in line]
    assert not console_errors, console_errors


@pytest.mark.slow
@needs_plugin("zoo-torch")
def test_every_command_reads_a_fresh_live_run(tmp_path):
    root = live_run()
    for fmt in ("table", "markdown", "html", "csv"):
        out = tmp_path / f"report.{fmt}"
        proc = zoo("report", str(root), "--format", fmt, "-o", str(out))
        assert proc.returncode == 0, proc.stderr
        assert "live-1" in out.read_text()
    proc = zoo("compare", "live-1", "live-1", "--results-dir", str(root), "--all")
    assert proc.returncode == 0 and "unchanged" in proc.stdout and "regressed" not in proc.stdout
    proc = zoo("history", str(root), str(RECORDED), "--format", "markdown")
    assert proc.returncode == 0 and "live-1" in proc.stdout and "aa-2" in proc.stdout
    for fmt in ("pytest-benchmark", "bencher"):
        proc = zoo("export", str(root / "live-1"), "--format", fmt)
        assert proc.returncode == 0 and json.loads(proc.stdout)
