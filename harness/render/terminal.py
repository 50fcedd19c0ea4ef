"""Terminal tables of results (rich). Colour follows rich's rules: off for non-terminals and
when ``NO_COLOR`` is set."""

from __future__ import annotations

from typing import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from harness.results.records import CellRecord

#: Metrics that only a training phase produces; shown as "n/a" for inference-only frameworks.
TRAINING_METRICS = {"train_throughput", "train_utilisation", "compile_s", "time_to_accuracy_s", "fine_tune_wall_s"}

#: (metric, column title, format)
COLUMNS = (
    ("accuracy", "accuracy %", "{:.1f}"),
    ("train_throughput", "train samples/s", "{:,.0f}"),
    ("infer_throughput", "infer samples/s", "{:,.0f}"),
    ("latency_p50_ms", "b1 p50 ms", "{:.3f}"),
    ("train_utilisation", "train util %", "{:.1f}"),
    ("compile_s", "compile s", "{:.3f}"),
    ("time_to_accuracy_s", "to target s", "{:.2f}"),
    ("fine_tune_wall_s", "fine-tune s", "{:.2f}"),
    ("peak_rss_mb", "peak MiB", "{:,.0f}"),
)


def plain_row(*values: object) -> list[Text]:
    """Table cells shown literally: names and messages come from plugins and users, and must
    not be read as rich markup."""
    return [Text(str(v)) for v in values]


def _spread(record: CellRecord, metric: str) -> str:
    m = record.metrics.get(metric)
    if m is None or not m.spread:
        return ""
    cv = m.spread.get("robust_cv")
    return f" ±{100 * cv:.0f}%" if cv is not None and cv == cv and cv >= 0.005 else ""


def results_table(records: Sequence[CellRecord], title: str = "") -> Table:
    table = Table(title=title or None, header_style="bold")
    for name in ("framework", "model", "task", "precision", "status"):
        table.add_column(name)
    for _, heading, _ in COLUMNS:
        table.add_column(heading, justify="right")
    for r in records:
        cells = [r.cell.label, r.cell.model, r.cell.task, r.cell.precision, _status(r)]
        for metric, _, fmt in COLUMNS:
            m = r.metrics.get(metric)
            if m is None:
                cells.append("n/a" if metric in TRAINING_METRICS and "fine_tune" in r.not_applicable else "")
            else:
                cells.append(fmt.format(m.value) + _spread(r, metric))
        table.add_row(*plain_row(*cells))
    return table


def _status(record: CellRecord) -> str:
    if record.status == "ok":
        return "ok"
    return f"{record.status}: {record.error.message[:60]}" if record.error else record.status


def wide_console(**kwargs) -> Console:
    """A console that does not squeeze tables to 80 columns when writing to a file or a CI log."""
    console = Console(**kwargs)
    if not console.is_terminal:
        console = Console(width=max(console.width, 200), **kwargs)
    return console


def error_console() -> Console:
    """stderr for messages: long lines stay whole (CI logs, grep) instead of wrapping at 80."""
    return Console(stderr=True, soft_wrap=True)


def print_results(records: Sequence[CellRecord], console: Console | None = None, title: str = "") -> None:
    console = console or wide_console()
    console.print(results_table(records, title))
    for r in records:
        if r.status in ("failed", "timeout") and r.error:
            console.print(f"[bold red]{escape(r.cell.key)}[/] {r.status} in {escape(r.error.phase)}: "
                          f"{escape(r.error.type)}: {escape(r.error.message)}",
                          highlight=False, markup=True)


# --- tables for `zoo report`, `zoo compare` and `zoo history` (names shown as plain text, never markup)


def print_error(console: Console, message: str, kind: str = "error") -> None:
    """``error: MESSAGE`` with the message as plain text (it may quote names from a run)."""
    from rich.text import Text

    console.print(Text.assemble((f"{kind}:", "bold red" if kind == "error" else "yellow"), " ", message))

VERDICT_STYLE = {"regressed": "bold red", "improved": "green", "unstable": "yellow", "missing": "magenta",
                 "new": "cyan", "unchanged": ""}


def side_by_side_table(sbs, title: str = "") -> Table:
    """Rich rendering of :class:`harness.analysis.side_by_side.SideBySide`."""
    from rich.text import Text

    table = Table(title=Text(title) if title else None, header_style="bold")
    keys = sbs.key_columns()
    for k in keys:
        table.add_column(k)
    table.add_column("metric")
    for fw in sbs.frameworks:
        table.add_column(Text(fw + (" (ref)" if fw == sbs.reference else "")), justify="right")
    values = {"run": "run", "model": "model", "task": "task", "setting": "setting"}
    for r in sbs.rows:
        table.add_row(*[Text(str(getattr(r, values[k]))) for k in keys], Text(r.label),
                      *[Text(r.entries[f].text(r.metric)) if f in r.entries else "" for f in sbs.frameworks])
    return table


def comparison_table(cmp, show_all: bool = False, fail_on=()) -> Table:
    """Rich rendering of :class:`harness.analysis.compare.Comparison` (unchanged rows only with ``show_all``)."""
    from rich.text import Text

    from harness.render.markdown import comparison_rows, fmt_change, fmt_ci, fmt_q
    from harness.analysis.side_by_side import fmt_value, label

    table = Table(header_style="bold")
    for col, justify in (("framework", "left"), ("model", "left"), ("task", "left"), ("metric", "left"),
                         ("baseline", "right"), ("candidate", "right"), ("change", "right"),
                         (f"{100 * cmp.settings.confidence:.0f}% CI", "right"), ("q", "right"),
                         ("verdict", "left"), ("note", "left")):
        table.add_column(col, justify=justify)
    for r in comparison_rows(cmp, show_all).itertuples(index=False):
        gate = " (gates)" if r.verdict == "regressed" and r.metric in fail_on else ""
        table.add_row(Text(r.framework), Text(r.model), Text(r.task), Text(label(r.metric)),
                      fmt_value(r.metric, r.baseline), fmt_value(r.metric, r.candidate), fmt_change(r.change, r.kind),
                      fmt_ci(r.ci_low, r.ci_high, r.kind), fmt_q(r.q_value),
                      Text(r.verdict + gate, style=VERDICT_STYLE[r.verdict]), Text(r.note))
    return table


def history_table(h, last: int = 10) -> Table:
    """Rich rendering of :class:`harness.analysis.history.History`: the last ``last`` runs as columns."""
    from rich.text import Text

    from harness.analysis.history import describe_change
    from harness.analysis.side_by_side import fmt_value, label

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
        cells = ([Text(r["fingerprint"][:8])] if several else []) + [
            Text(r["framework"]), Text(r["model"]), Text(r["task"]), Text(label(r["metric"]))]
        for run in runs:
            v = r[run]
            text = Text(fmt_value(r["metric"], v) if v == v else str(h.status.at[i, run]))
            c = marks.get((i, run))
            if c is not None:
                text.append(" ▲" if c.better else " ▼", style="green" if c.better else "bold red")
                if not c.sustained:
                    text.append("?")
            cells.append(text)
        cps = h.changes[h.changes["row"] == i]
        cells.append(Text("; ".join(f"{'▲' if c.better else '▼'} {describe_change(c.change, c.kind)} at {c.run}"
                                    + ("" if c.sustained else " (latest)") for c in cps.itertuples(index=False))))
        table.add_row(*cells)
    return table
