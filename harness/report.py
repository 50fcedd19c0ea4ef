"""Terminal tables of results (rich). Colour follows rich's rules: off for non-terminals and
when ``NO_COLOR`` is set."""

from __future__ import annotations

from typing import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from harness.records import CellRecord

#: Metrics that only a training phase produces; shown as "n/a" for inference-only frameworks.
TRAINING_METRICS = {"train_throughput", "compile_s", "fine_tune_wall_s"}

#: (metric, column title, format)
COLUMNS = (
    ("accuracy", "accuracy %", "{:.1f}"),
    ("train_throughput", "train samples/s", "{:,.0f}"),
    ("infer_throughput", "infer samples/s", "{:,.0f}"),
    ("latency_p50_ms", "b=1 latency p50 ms", "{:.3f}"),
    ("compile_s", "compile s", "{:.3f}"),
    ("fine_tune_wall_s", "fine-tune s", "{:.2f}"),
    ("peak_rss_mb", "peak mem MiB", "{:,.0f}"),
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
    for name in ("framework", "model", "task", "status"):
        table.add_column(name)
    for _, heading, _ in COLUMNS:
        table.add_column(heading, justify="right")
    for r in records:
        cells = [r.cell.framework, r.cell.model, r.cell.task, _status(r)]
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
        console = Console(width=max(console.width, 180), **kwargs)
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
