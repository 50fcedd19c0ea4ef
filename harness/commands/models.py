"""``zoo models``: every model spec, which frameworks can run it, and its checkpoints (shipped ones and
those ``zoo import``/``zoo fetch`` wrote to the user's checkpoint directory)."""

from __future__ import annotations

import argparse
import json

from rich.table import Table

from zoo.checkpoints import BUILTIN_DIR, CheckpointEntry, CheckpointError, read_manifest, user_checkpoint_dir

from harness.render.terminal import plain_row, wide_console
from harness.commands.common import load_registry, report_problems


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list model specs, supporting frameworks and checkpoints")
    p.add_argument("--cards", action="store_true", help="also print every checkpoint's model card")
    p.set_defaults(run=run)


def _label(entry: CheckpointEntry, where: str) -> str:
    acc = "accuracy not measured" if entry.accuracy is None else f"{100 * entry.accuracy:.1f}%"
    return f"{entry.name} ({entry.source_task}, {acc}{where})"


def run(args: argparse.Namespace) -> int:
    console = wide_console()
    _, registry = load_registry(args)
    checkpoints: list[tuple[CheckpointEntry, str]] = [(e, "") for e in read_manifest().values()]
    user_dir = user_checkpoint_dir()
    try:
        checkpoints += [(e, f"; {user_dir}") for e in read_manifest(user_dir).values()] if user_dir != BUILTIN_DIR else []
    except (CheckpointError, ValueError, OSError) as exc:
        console.print(f"[yellow]warning:[/] cannot read {user_dir}: {exc}", markup=True, highlight=False)
    table = Table(header_style="bold")
    for col in ("model", "family", "description", "frameworks (cpu, fp32)", "checkpoints", "provided by"):
        table.add_column(col)
    for name, provided in sorted(registry.models.items()):
        spec = provided.item
        frameworks = [f for f, p in sorted(registry.frameworks.items()) if p.item.supports(spec, "cpu", "fp32").ok]
        ckpts = [_label(c, where) for c, where in checkpoints if c.model == name]
        table.add_row(*plain_row(name, spec.family, spec.description, ", ".join(frameworks) or "none installed",
                                 "\n".join(ckpts) or "-", provided.origin.distribution))
    console.print(table)
    if args.cards:
        for entry, _ in checkpoints:
            card = {"sha256": entry.sha256, "source_task": entry.source_task, "accuracy": entry.accuracy, **entry.card}
            console.print(f"\n{entry.name} ({entry.model})", markup=False, highlight=False)
            console.print(json.dumps(card, indent=2), markup=False, highlight=False)
    report_problems(registry, console, args.verbose)
    return 0
