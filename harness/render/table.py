"""The ``table`` format of ``zoo report``, ``zoo compare`` and ``zoo history``: rich tables, names
shown as plain text, never markup; labels and formats from the metric catalogue."""

from __future__ import annotations

from typing import Sequence

from rich.table import Table
from rich.text import Text

from harness.analysis.compare import VERDICTS
from harness.analysis.formatting import fmt_change, fmt_ci, fmt_q, fmt_value

VERDICT_STYLE = {"regressed": "bold red", "improved": "green", "unstable": "yellow", "missing": "magenta",
                 "new": "cyan", "unchanged": ""}


def side_by_side_table(sbs, title: str = "") -> Table:
    """Rich rendering of :class:`harness.analysis.side_by_side.SideBySide`."""
    table = Table(title=Text(title) if title else None, header_style="bold")
    keys = sbs.key_columns()
    for k in keys:
        table.add_column(k)
    table.add_column("metric")
    for fw in sbs.frameworks:
        table.add_column(Text(fw + (" (ref)" if fw == sbs.reference else "")), justify="right")
    for r in sbs.rows:
        table.add_row(*[Text(str(getattr(r, k))) for k in keys], Text(r.label),
                      *[Text(r.text(f)) if f in r.entries else "" for f in sbs.frameworks])
    return table


def comparison_table(cmp, show_all: bool = False, fail_on: Sequence[str] = ()) -> Table:
    """Rich rendering of :class:`harness.analysis.compare.Comparison` (unchanged rows only with ``show_all``)."""
    catalogue = cmp.settings.catalogue
    table = Table(header_style="bold")
    for col, justify in (("framework", "left"), ("model", "left"), ("task", "left"), ("metric", "left"),
                         ("baseline", "right"), ("candidate", "right"), ("change", "right"),
                         (f"{100 * cmp.settings.confidence:.0f}% CI", "right"), ("q", "right"),
                         ("verdict", "left"), ("note", "left")):
        table.add_column(col, justify=justify)
    for r in cmp.shown(show_all).itertuples(index=False):
        d = catalogue.definition(r.metric)
        gate = " (gates)" if r.verdict == "regressed" and r.metric in fail_on else ""
        table.add_row(Text(r.framework), Text(r.model), Text(r.task), Text(d.title),
                      fmt_value(d, r.baseline), fmt_value(d, r.candidate), fmt_change(r.change, r.kind),
                      fmt_ci(r.ci_low, r.ci_high, r.kind), fmt_q(r.q_value),
                      Text(r.verdict + gate, style=VERDICT_STYLE[r.verdict]), Text(r.note))
    return table


def history_table(h, last: int = 10) -> Table:
    """Rich rendering of :class:`harness.analysis.history.History`: the last ``last`` runs as columns."""
    runs = list(h.runs["run"])[-last:]
    several = h.values["fingerprint"].nunique() > 1
    table = Table(header_style="bold")
    for col in (["machine"] if several else []) + ["framework", "model", "task", "metric"]:
        table.add_column(col)
    for run in runs:
        table.add_column(Text(run), justify="right")
    table.add_column("change points")
    marks = {(c.row, c.run): c for c in h.changes.itertuples(index=False)}
    for i, r in h.values.iterrows():
        d = h.catalogue.definition(r["metric"])
        cells = ([Text(r["fingerprint"][:8])] if several else []) + [
            Text(r["framework"]), Text(r["model"]), Text(r["task"]), Text(d.title)]
        for run in runs:
            v = r[run]
            text = Text(fmt_value(d, v) if v == v else str(h.status.at[i, run]))
            c = marks.get((i, run))
            if c is not None:
                text.append(" ▲" if c.better else " ▼", style="green" if c.better else "bold red")
                if not c.sustained:
                    text.append("?")
            cells.append(text)
        cps = h.changes[h.changes["row"] == i]
        cells.append(Text("; ".join(f"{'▲' if c.better else '▼'} {fmt_change(c.change, c.kind)} at {c.run}"
                                    + ("" if c.sustained else " (latest)") for c in cps.itertuples(index=False))))
        table.add_row(*cells)
    return table


# --- the `table` renderer (harness.render.registry): what each command prints


def render_report(view) -> list:
    out: list = [side_by_side_table(view.table, title=view.title)]
    out += [Text(f"{f.cell_key} ({f.run}) {f.status} in {f.error_phase}: {f.error_type}: {f.error_message}")
            for f in view.table.failures.itertuples()]
    return out


def render_comparison(view) -> list:
    cmp = view.comparison
    b, c = cmp.baseline, cmp.candidate
    gpu = f", {c['gpu_model']}" if c.get("gpu_model") else ""
    out: list = [Text(f"zoo compare {b['run']} -> {c['run']} on machine {c['fingerprint']} ({c['cpu_model']}{gpu})")]
    if len(view.rows):
        out.append(comparison_table(cmp, view.show_all, view.fail_on))
    counts = cmp.counts()
    out.append(Text(", ".join(f"{counts[v]} {v}" for v in VERDICTS if counts[v]) or "nothing to compare"))
    if len(view.failures):
        out.append(Text(f"FAIL: {len(view.failures)} regression(s) in gating metrics ({', '.join(view.fail_on)})",
                        style="bold red"))
    return out


def render_history(view) -> list:
    h = view.history
    return [history_table(h, view.last),
            Text(f"{len(h.runs)} runs, {len(h.changes)} change points (▼ worse, ▲ better, ? latest run only)")]
