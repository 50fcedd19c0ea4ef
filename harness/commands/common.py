"""What several commands share: loading plugins into a registry, reporting plugin problems, and
warning about stored runs that could not be read."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.markup import escape

from zoo.plugin_host import PluginHost, load_plugins
from harness.plugins.registry import Registry, build_registry


def load_registry(args: argparse.Namespace) -> tuple[PluginHost, Registry]:
    host = load_plugins(explicit=getattr(args, "plugins", []), allowed=split_csv(getattr(args, "allow", None)) or None)
    return host, build_registry(host)


def report_problems(registry: Registry, console: Console, verbose: bool = False) -> None:
    """One line per broken plugin (its traceback under ``-v``); the others still work."""
    for p in registry.problems:
        console.print(f"[yellow]warning:[/] plugin [bold]{escape(p.name)}[/] ({escape(p.distribution)}): {escape(p.error)}",
                      highlight=False)
        if verbose and p.traceback:
            console.print(p.traceback, markup=False, highlight=False)
    if registry.problems and not verbose:
        console.print("[dim](run with -v for tracebacks; ZOO_STRICT_PLUGINS=1 re-raises)[/]")


def split_csv(values: list[str] | None) -> list[str]:
    """``["a,b", "c"]`` -> ``["a", "b", "c"]``: options accept commas and repetition."""
    out: list[str] = []
    for value in values or []:
        out += [v.strip() for v in value.split(",") if v.strip()]
    return out


def warn_disturbed(results: Any, console: Console) -> None:
    """One warning per disturbed cell, and per run whose quietness probe moved, of the runs shown:
    their timings are suspect (docs/measurement.md)."""
    from harness.results.store import disturbed_cells

    for row in results.runs.itertuples(index=False):
        if getattr(row, "quiet", None) is False:
            console.print(f"[yellow]warning:[/] run {escape(str(row.run))} was not quiet (its matmul probe moved "
                          "by more than 5 % during the run)", highlight=False)
        try:
            cells = disturbed_cells(row.path)
        except (OSError, ValueError):
            continue  # the loader already said what is wrong with the run
        for key, reasons in sorted(cells.items()):
            console.print(f"[yellow]warning:[/] run {escape(str(row.run))}: cell {escape(key)} was disturbed: "
                          f"{escape('; '.join(reasons))}", highlight=False)


def warn_skipped(results: Any, console: Console) -> None:
    """One warning per run a results directory held that could not be read (it was left out)."""
    for line in getattr(results, "skipped", ()):
        console.print(f"[yellow]warning:[/] skipped run {escape(line)}", highlight=False)
