"""``zoo models``: every model spec, which frameworks can run it, and its checkpoints."""

from __future__ import annotations

import argparse

from rich.table import Table

from zoo.checkpoints import read_manifest

from harness.report import plain_row, wide_console
from harness.commands.common import load_registry, report_problems


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list model specs, supporting frameworks and shipped checkpoints")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    console = wide_console()
    _, registry = load_registry(args)
    checkpoints = read_manifest()
    table = Table(header_style="bold")
    for col in ("model", "family", "description", "frameworks (cpu, fp32)", "checkpoints", "provided by"):
        table.add_column(col)
    for name, provided in sorted(registry.models.items()):
        spec = provided.item
        frameworks = [f for f, p in sorted(registry.frameworks.items()) if p.item.supports(spec, "cpu", "fp32").ok]
        ckpts = [f"{c.name} ({c.source_task}, {100 * c.accuracy:.1f}%)" for c in checkpoints.values() if c.model == name]
        table.add_row(*plain_row(name, spec.family, spec.description, ", ".join(frameworks) or "none installed",
                                 "\n".join(ckpts) or "-", provided.origin.distribution))
    console.print(table)
    report_problems(registry, console, args.verbose)
    return 0
