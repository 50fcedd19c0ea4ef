"""The terminal (rich): consoles, error lines, and the ``zoo bench`` results table. Colour follows
rich's rules: off for non-terminals and when ``NO_COLOR`` is set. Names from runs and plugins are
plain text, never rich markup. The table's columns, labels and formats come from the metric
catalogue. (The ``table`` format of the analysis commands is :mod:`harness.render.table`.)

Imported by every command at start-up, so it imports neither pandas nor the analysis."""

from __future__ import annotations

from typing import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from harness.analysis.formatting import fmt_cv, fmt_value
from harness.results.metrics import BUILTIN, Catalogue
from harness.results.records import CellRecord

def plain_row(*values: object) -> list[Text]:
    """Table cells shown literally: names and messages come from plugins and users, and must
    not be read as rich markup."""
    return [Text(str(v)) for v in values]


def wide_console(**kwargs) -> Console:
    """A console that does not squeeze tables to 80 columns when writing to a file or a CI log."""
    console = Console(**kwargs)
    if not console.is_terminal:
        console = Console(width=max(console.width, 200), **kwargs)
    return console


def error_console() -> Console:
    """stderr for messages: long lines stay whole (CI logs, grep) instead of wrapping at 80."""
    return Console(stderr=True, soft_wrap=True)


def print_error(console: Console, message: str, kind: str = "error") -> None:
    """``error: MESSAGE`` with the message as plain text (it may quote names from a run)."""
    console.print(Text.assemble((f"{kind}:", "bold red" if kind == "error" else "yellow"), " ", message))


# --- the `zoo bench` table: one row per cell, the catalogue's default columns


def results_table(records: Sequence[CellRecord], title: str = "", catalogue: Catalogue = BUILTIN) -> Table:
    table = Table(title=title or None, header_style="bold")
    for name in ("framework", "model", "task", "precision", "status"):
        table.add_column(name)
    columns = [catalogue.definition(name) for name in catalogue.columns()]
    for d in columns:
        table.add_column(d.title, justify="right")
    for r in records:
        cells = [r.cell.label, r.cell.model, r.cell.task, r.cell.precision, _status(r)]
        for d in columns:
            m = r.metrics.get(d.name)
            if m is None:
                cells.append("n/a" if catalogue.shown_not_applicable(d.name, r.not_applicable) else "")
            else:
                cells.append(fmt_value(d, m.value) + (fmt_cv(m.spread.get("robust_cv")) if m.spread else ""))
        table.add_row(*plain_row(*cells))
    return table


def disturbance_reasons(record: CellRecord) -> list[str]:
    """Why the cell's numbers are suspect (another process on its cores, thread pools that are not
    the ones it was given), or ``[]``."""
    verdict = record.environment.get("disturbance") or {}
    pools = record.environment.get("thread_pools") or {}
    return (list(verdict.get("reasons", [])) if verdict.get("disturbed") else []) + [
        f"unfair threads: {m}" for m in pools.get("mismatches", [])]


def _status(record: CellRecord) -> str:
    if record.status == "ok":
        return "ok, disturbed" if disturbance_reasons(record) else "ok"
    return f"{record.status}: {record.error.message[:60]}" if record.error else record.status


def print_results(records: Sequence[CellRecord], console: Console | None = None, title: str = "",
                  catalogue: Catalogue = BUILTIN) -> None:
    console = console or wide_console()
    console.print(results_table(records, title, catalogue))
    for r in records:
        for reason in disturbance_reasons(r):
            console.print(f"[yellow]disturbed:[/] {escape(r.cell.key)}: {escape(reason)}; rerun it on a quiet "
                          "machine, or with --retry-disturbed N", highlight=False)
        if r.status in ("failed", "timeout") and r.error:
            console.print(f"[bold red]{escape(r.cell.key)}[/] {r.status} in {escape(r.error.phase)}: "
                          f"{escape(r.error.type)}: {escape(r.error.message)}",
                          highlight=False, markup=True)
