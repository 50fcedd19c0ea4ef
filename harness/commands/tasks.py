"""``zoo tasks``: the classification tasks and their default recipes."""

from __future__ import annotations

import argparse

from rich.table import Table

from harness.render.terminal import plain_row, wide_console
from harness.commands.common import load_registry, report_problems


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tasks", help="list tasks and their default fine-tuning recipes")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    console = wide_console()
    _, registry = load_registry(args)
    table = Table(header_style="bold")
    for col in ("task", "classes", "input HxWxC", "description", "recipe", "starts from"):
        table.add_column(col)
    for name, provided in sorted(registry.tasks.items()):
        t = provided.item
        r = t.recipe
        recipe = f"{r.epochs} epochs, batch {r.batch_size}, Adam lr {r.learning_rate:g}, freeze {r.freeze}"
        starts = ", ".join(f"{m}: {c}" for m, c in t.pretrained) or "random init"
        table.add_row(*plain_row(name, str(t.num_classes), "x".join(map(str, t.input_shape)), t.description, recipe, starts))
    console.print(table)
    report_problems(registry, console, args.verbose)
    return 0
