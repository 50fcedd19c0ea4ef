"""``zoo pretrain``: (re)produce a shipped checkpoint by training a model from scratch on a
source task in one framework, then saving its canonical weights with a manifest entry."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from rich.markup import escape

from zoo.checkpoints import BUILTIN_DIR

from harness.commands.common import load_registry, report_problems
from harness.plan.pretrain import pretrain_plan
from harness.plugins.registry import UnknownName
from harness.render.terminal import print_results, wide_console
from harness.run.executors.local import run_cell


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pretrain", help="train a model from scratch on a source task and save it as a zoo checkpoint",
        description="Reproduce a shipped checkpoint: random NumPy init (seeded), full training with Adam "
        "in the host's batch order, canonical weights saved as safetensors with sha256 and accuracy in "
        "the manifest. The shipped ones were made with the defaults.",
    )
    p.add_argument("--model", required=True, help="model to pretrain, e.g. cnn")
    p.add_argument("--task", default="digits-0to4", help="source task (default: digits-0to4)")
    p.add_argument("--framework", default="torch", help="framework that trains it (default: torch)")
    p.add_argument("--name", help="checkpoint name (default: MODEL-TASK without dashes, e.g. cnn-digits0to4)")
    p.add_argument("--out", type=Path, default=BUILTIN_DIR, help=f"checkpoint directory (default: {BUILTIN_DIR})")
    p.add_argument("--epochs", type=int, help="epochs (default: the task's recipe)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--card", type=Path, help="JSON file with model-card fields (license, citation, intended_use, "
                   "...) added to the card zoo-bench writes (summary, source data, recipe, accuracy); yours win")
    p.set_defaults(run=run)


def read_card(path: Path | None) -> str:
    """The ``--card`` file as compact JSON text (for the worker's plan), checked: an object of strings."""
    if path is None:
        return ""
    try:
        card = json.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f"cannot read the model card {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"the model card {path} is not valid JSON ({exc}); it must be one JSON object") from None
    if not isinstance(card, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in card.items()):
        raise ValueError(f"the model card {path} must be a JSON object of text fields, e.g. "
                         '{"license": "CC-BY-4.0", "intended_use": "..."}')
    return json.dumps(card)


def run(args: argparse.Namespace) -> int:
    console = wide_console()
    _, registry = load_registry(args)
    report_problems(registry, console, args.verbose)
    try:
        card = read_card(args.card)  # the user's own file first: its error does not depend on plugins
        fw, model, task = registry.framework(args.framework), registry.model(args.model), registry.task(args.task)
    except (UnknownName, ValueError) as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        return 2
    name = args.name or f"{args.model}-{args.task.replace('-', '')}"
    plan = pretrain_plan(fw, model, task, args.out, name, args.epochs, args.seed, args.threads, card)
    with tempfile.TemporaryDirectory() as tmp:
        record = run_cell(plan, Path(tmp), Path(tmp) / "worker.log", timeout_s=3600)
        print_results([record], console, title=f"zoo pretrain {name}", catalogue=registry.catalogue)
        if record.status != "ok":
            console.print((Path(tmp) / "worker.log").read_text()[-3000:], markup=False, highlight=False)
            return 1
    console.print(f"saved {args.out / (name + '.safetensors')} and its manifest entry", highlight=False)
    return 0
