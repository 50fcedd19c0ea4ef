"""``zoo plugins``: what is installed, where it comes from, and what it registers."""

from __future__ import annotations

import argparse
from collections import defaultdict

from rich.table import Table

from harness.render.terminal import plain_row, wide_console
from harness.commands.common import load_registry, report_problems


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plugins", help="list plugins, their distributions and what they register")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    console = wide_console()
    host, registry = load_registry(args)
    provides: dict[str, list[str]] = defaultdict(list)
    for kind, items in (("framework", registry.frameworks), ("model", registry.models), ("task", registry.tasks)):
        for name, provided in items.items():
            provides[provided.origin.module].append(f"{kind} {name}")
    table = Table(header_style="bold")
    for col in ("plugin", "distribution", "version", "registers", "location"):
        table.add_column(col)
    for module, origin in host.origins.items():
        table.add_row(*plain_row(origin.name, origin.distribution, origin.version, ", ".join(provides[module]) or "-", origin.path))
    for origin in host.not_allowed:
        table.add_row(*plain_row(origin.name, origin.distribution, origin.version, "not loaded: not in --plugins allow-list", origin.module))
    console.print(table)
    report_problems(registry, console, args.verbose)
    return 0
