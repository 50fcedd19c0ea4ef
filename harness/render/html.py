"""A self-contained HTML report: tables and inline-SVG plots in one file that opens offline.

No JavaScript and no external resources; a Content-Security-Policy forbids both, so even a
mistake in escaping could not run a script or fetch anything. Every string from the runs
(framework, model, task, run id, error message) is escaped with :func:`html.escape`."""

from __future__ import annotations

from html import escape
from typing import Sequence

from harness.analysis.formatting import fmt_change
from harness.analysis.history import History
from harness.analysis.side_by_side import SideBySide, side_by_side
from harness.render.svg import bar_chart, color, line_chart
from harness.results.loader import ResultSet
from harness.results.metrics import Catalogue

DASHES = ("", "6 3", "2 2", "8 3 2 3")
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; }
table { border-collapse: collapse; margin: 8px 0 16px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; } th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
svg { background: #fff; border: 1px solid #ddd; }
svg .grid { stroke: #eee; } svg .tick, svg .legend { font-size: 10px; fill: #444; }
svg .chart-title { font-size: 12px; font-weight: bold; } svg .err { stroke: #222; stroke-width: 1; }
svg .cp-worse { fill: #d62728; } svg .cp-better { fill: #2ca02c; }
.worse { color: #d62728; font-weight: bold; } .better { color: #2ca02c; }
.note { color: #666; }
"""


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool] | None = None) -> str:
    """Headers and cells must already be escaped HTML."""
    numeric = numeric or [False] * len(headers)
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f'<td class="num">{c}</td>' if n else f"<td>{c}</td>"
                                    for c, n in zip(r, numeric)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _runs_table(rs: ResultSet) -> str:
    rows = []
    for r in rs.runs.itertuples(index=False):
        commit = (r.commit or "")[:10] + (" (dirty)" if r.dirty else "")
        started = "" if r.started_at is None or r.started_at != r.started_at else r.started_at.isoformat()
        peak = r.device_peak or ""
        n = int((rs.cells["run"] == r.run).sum())
        rows.append([escape(str(x)) for x in (r.run, started, r.trigger, commit, r.fingerprint, r.cpu_model,
                                               r.run_status, n, peak)])
    return _table(["run", "started", "trigger", "harness commit", "machine", "CPU", "status", "cells",
                   "device peak"], rows)


def _side_by_side(sbs: SideBySide) -> str:
    keys = sbs.key_columns()
    headers = [escape(k) for k in keys] + ["metric"] + [
        escape(f) + (" (ref)" if f == sbs.reference else "") for f in sbs.frameworks]
    rows = []
    for r in sbs.rows:
        cells = [escape(str(getattr(r, k))) for k in keys] + [escape(r.label)]
        cells += [escape(r.text(f)) if f in r.entries else "" for f in sbs.frameworks]
        rows.append(cells)
    note = (f'<p class="note">Medians; ± is the robust CV across timing windows; (×) is the ratio to '
            f"{escape(sbs.reference)} in the same run. ↑ higher is better, ↓ lower is better.</p>")
    return _table(headers, rows, [False] * (len(keys) + 1) + [True] * len(sbs.frameworks)) + note


def _colours(rs: ResultSet) -> dict[str, str]:
    """One colour per framework (label), the same in every chart of the page."""
    return {fw: color(i) for i, fw in enumerate(dict.fromkeys(rs.cells["label"]))}


def _bar_charts(rs: ResultSet, run: str, catalogue: Catalogue) -> str:
    m = rs.metrics[(rs.metrics["run"] == run) & (rs.metrics["status"] == "ok")]
    frameworks = list(dict.fromkeys(rs.cells.loc[rs.cells["run"] == run, "label"]))
    styles = {fw: (c, "") for fw, c in _colours(rs).items()}
    charts = []
    for metric in catalogue.plotted():
        sub = m[m["metric"] == metric]
        if not len(sub):
            continue
        groups = list(dict.fromkeys(sub["model"] + "/" + sub["task"]))
        values = {(f"{r.model}/{r.task}", r.label): (r.value, r.ci_low, r.ci_high) for r in sub.itertuples()}
        title = catalogue.definition(metric).title
        charts.append(bar_chart(title, groups, frameworks, values, sub["unit"].iloc[0], styles))
    return '<div class="charts">' + "".join(charts) + "</div>"


def _history_charts(h: History, colours: dict[str, str]) -> str:
    runs = list(h.runs["run"])
    charts = []
    setups = list(dict.fromkeys(h.values["model"] + "/" + h.values["task"]))  # one dash pattern each
    for metric in h.catalogue.plotted():
        sub = h.values[h.values["metric"] == metric]
        if not len(sub):
            continue
        several = sub["fingerprint"].nunique() > 1
        series, marks, styles = {}, {}, {}
        for i, r in sub.iterrows():
            setup = f"{r['model']}/{r['task']}"
            name = f"{r['framework']} {setup}" + (f" @{r['fingerprint'][:6]}" if several else "")
            series[name] = [float(r[run]) for run in runs]
            styles[name] = (colours.get(r["framework"], "#444"), DASHES[setups.index(setup) % len(DASHES)])
            for c in h.changes[h.changes["row"] == i].itertuples(index=False):
                marks[(name, runs.index(c.run))] = "better" if c.better else "worse"
        title = h.catalogue.definition(metric).title + " over runs"
        charts.append(line_chart(title, runs, series, sub["unit"].iloc[0], marks, styles))
    return '<div class="charts">' + "".join(charts) + "</div>"


def _changes_table(h: History) -> str:
    if not len(h.changes):
        return '<p class="note">No change points.</p>'
    rows = []
    for c in h.changes.itertuples(index=False):
        cls = "better" if c.better else "worse"
        title = h.catalogue.definition(c.metric).title
        rows.append([escape(c.framework), escape(c.model), escape(c.task), escape(title), escape(c.run),
                     f'<span class="{cls}">{escape(fmt_change(c.change, c.kind))}</span>',
                     "yes" if c.sustained else "latest run only"])
    return _table(["framework", "model", "task", "metric", "from run", "change", "sustained"], rows)


def _failures(sbs: SideBySide) -> str:
    if not len(sbs.failures):
        return ""
    rows = [[escape(f.run), escape(f.cell_key), escape(f.status),
             escape(f"{f.error_phase}: {f.error_type}: {f.error_message}")] for f in sbs.failures.itertuples()]
    return "<h2>Cells that did not finish</h2>" + _table(["run", "cell", "status", "error"], rows)


def html_report(rs: ResultSet, sbs: SideBySide, history: History | None = None, title: str = "zoo-bench report") -> str:
    """The whole page. The side-by-side table shows every run in ``sbs``; the bar charts show the
    latest run; with two runs or more, ``history`` adds line charts and change points."""
    latest = rs.runs["run"].iloc[-1] if len(rs.runs) else ""
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>", "<h2>Runs</h2>", _runs_table(rs),
        "<h2>Frameworks side by side</h2>", _side_by_side(sbs),
        f"<h2>Latest run: {escape(str(latest))}</h2>", _bar_charts(rs, latest, sbs.catalogue),
    ]
    if history is not None and len(rs.runs) > 1:
        parts += ["<h2>History</h2>", _history_charts(history, _colours(rs)), "<h2>Change points</h2>", _changes_table(history)]
    parts += [_failures(sbs), '<p class="note">Made by zoo-bench (zoo report --format html).</p>', "</body></html>"]
    return "\n".join(parts) + "\n"


# --- the `html` renderer (harness.render.registry)


def render_report(view) -> str:
    return html_report(view.results, view.table, view.history)


def render_history(view) -> str:
    rs = view.results
    latest = rs.subset([rs.runs["run"].iloc[-1]])
    return html_report(rs, side_by_side(latest, catalogue=view.catalogue), view.history, title="zoo-bench history")
