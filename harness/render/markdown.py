"""Markdown (GitHub-flavoured) renderings of the side-by-side table, a comparison and a history,
e.g. for a CI job summary. Every name that comes from a run (framework, model, task, run id,
error message) goes through :func:`md_escape`, so it is shown as text and never as markup."""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Sequence

from harness.analysis.compare import VERDICTS, Comparison
from harness.analysis.formatting import fmt_change, fmt_ci, fmt_q, fmt_value
from harness.analysis.history import History
from harness.analysis.side_by_side import SideBySide

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~$])")  # what can start markup inside a table cell
VERDICT_MARK = {"regressed": "🔴 regressed", "improved": "🟢 improved", "unstable": "🟡 unstable",
                "unchanged": "unchanged", "new": "new", "missing": "⚪ missing"}


@lru_cache(maxsize=65536)
def _escape(s: str) -> str:
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    s = re.sub(r"[\r\n\t]+", " ", s)
    return _MD_SPECIAL.sub(r"\\\1", s)


def md_escape(text: object) -> str:
    """``text`` as literal Markdown table content: HTML special characters become entities,
    Markdown punctuation is backslash-escaped, newlines become spaces."""
    return _escape(str(text))


def md_table(headers: Sequence[str], rows: Sequence[Sequence[str]], align: Sequence[str] | None = None) -> str:
    """A pipe table; cells must already be escaped."""
    align = align or ["l"] * len(headers)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def side_by_side_markdown(sbs: SideBySide, title: str = "") -> str:
    out = [f"### {md_escape(title)}", ""] if title else []
    keys = sbs.key_columns()
    headers = [*keys, "metric", *[md_escape(f) + (" (ref)" if f == sbs.reference else "") for f in sbs.frameworks]]
    rows = []
    for r in sbs.rows:
        rows.append([md_escape(getattr(r, k)) for k in keys] + [md_escape(r.label)]
                    + [md_escape(r.text(f)) if f in r.entries else "" for f in sbs.frameworks])
    out.append(md_table(headers, rows, ["l"] * (len(keys) + 1) + ["r"] * len(sbs.frameworks)))
    out.append("")
    out.append(f"Values are medians; ± is the robust CV across timing windows; (×) is the ratio to "
               f"{md_escape(sbs.reference)} in the same run. ↑ higher is better, ↓ lower is better.")
    if len(sbs.failures):
        out += ["", "**Cells that did not finish**", ""]
        out.append(md_table(["run", "cell", "status", "error"], [
            [md_escape(f.run), md_escape(f.cell_key), md_escape(f.status),
             md_escape(f"{f.error_phase}: {f.error_type}: {f.error_message}")] for f in sbs.failures.itertuples()]))
    return "\n".join(out) + "\n"


def comparison_markdown(cmp: Comparison, show_all: bool = False, fail_on: Sequence[str] = ()) -> str:
    counts = cmp.counts()
    b, c = cmp.baseline, cmp.candidate
    out = [f"### zoo compare: {md_escape(b['run'])} → {md_escape(c['run'])}", ""]
    gpu = f", {md_escape(c['gpu_model'])}" if c.get("gpu_model") else ""
    out.append(f"Machine {md_escape(c['fingerprint'] or 'unknown')} ({md_escape(c['cpu_model'])}{gpu}); "
               + ", ".join(f"**{counts[v]}** {v}" for v in VERDICTS if counts[v]) + ".")
    for w in cmp.warnings:
        out += ["", f"> warning: {md_escape(w)}"]
    rows = cmp.shown(show_all)
    catalogue = cmp.settings.catalogue
    out.append("")
    if not len(rows):
        out.append(f"All {len(cmp.rows)} compared metrics are unchanged.")
    else:
        table = []
        for r in rows.itertuples(index=False):
            d = catalogue.definition(r.metric)
            gate = " ⛔" if r.verdict == "regressed" and r.metric in fail_on else ""
            table.append([md_escape(r.framework), md_escape(r.model), md_escape(r.task), md_escape(d.title),
                          md_escape(fmt_value(d, r.baseline)), md_escape(fmt_value(d, r.candidate)),
                          md_escape(fmt_change(r.change, r.kind)), md_escape(fmt_ci(r.ci_low, r.ci_high, r.kind)),
                          md_escape(fmt_q(r.q_value)), VERDICT_MARK[r.verdict] + gate, md_escape(r.note)])
        out.append(md_table(["framework", "model", "task", "metric", "baseline", "candidate", "change",
                             f"{100 * cmp.settings.confidence:.0f}% CI", "q", "verdict", "note"], table,
                            ["l"] * 4 + ["r"] * 5 + ["l", "l"]))
        if not show_all and counts["unchanged"]:
            out += ["", f"{counts['unchanged']} unchanged metrics not shown."]
    s = cmp.settings
    out += ["", f"Rule: thresholds per metric, Mann-Whitney test of \"beyond the threshold\" on raw samples, "
                f"Benjamini-Hochberg at {s.alpha:g}, unstable above {100 * s.max_cv:g}% robust CV "
                "(see docs/results.md)."]
    return "\n".join(out) + "\n"


def history_markdown(h: History, last: int = 10) -> str:
    runs = list(h.runs["run"])[-last:]
    several = h.values["fingerprint"].nunique() > 1
    marks = {(c.row, c.run): ("▲" if c.better else "▼") + ("" if c.sustained else "?")
             for c in h.changes.itertuples(index=False)}
    headers = (["machine"] if several else []) + ["framework", "model", "task", "metric"] + [md_escape(r) for r in runs]
    headers.append("change points")
    rows = []
    for i, r in h.values.iterrows():
        d = h.catalogue.definition(r["metric"])
        cells = ([md_escape(r["fingerprint"][:8])] if several else []) + [
            md_escape(r["framework"]), md_escape(r["model"]), md_escape(r["task"]), md_escape(d.title)]
        for run in runs:
            v = r[run]
            text = fmt_value(d, v) if not (isinstance(v, float) and math.isnan(v)) else h.status.at[i, run]
            cells.append(md_escape(text) + (" " + marks[(i, run)] if (i, run) in marks else ""))
        cps = h.changes[h.changes["row"] == i]
        cells.append(md_escape("; ".join(f"{'▲' if c.better else '▼'} {fmt_change(c.change, c.kind)} at {c.run}"
                                         + ("" if c.sustained else " (latest, unconfirmed)")
                                         for c in cps.itertuples(index=False))))
        rows.append(cells)
    n_fixed = 5 if several else 4
    out = [f"### zoo history: {len(h.runs)} runs, {len(h.changes)} change points", "",
           md_table(headers, rows, ["l"] * n_fixed + ["r"] * len(runs) + ["l"]), "",
           "▼ worse, ▲ better from that run on (a change beyond the metric's threshold and 3× the "
           "night-to-night noise); ? = only the latest run so far."]
    return "\n".join(out) + "\n"


# --- the `markdown` renderer (harness.render.registry)


def render_report(view) -> str:
    return side_by_side_markdown(view.table, title=view.title)


def render_comparison(view) -> str:
    return comparison_markdown(view.comparison, view.show_all, view.fail_on)


def render_history(view) -> str:
    return history_markdown(view.history, view.last)
