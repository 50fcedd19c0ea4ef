"""``zoo new-plugin NAME``: scaffold a framework plugin distribution (pyproject with the entry
point, adapter, conformance test) that installs and passes the conformance suite as generated."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from harness.commands.common import load_registry
from harness.scaffold import PluginNames, ScaffoldError, check_name, create_plugin


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "new-plugin", help="create a new framework plugin distribution to start from",
        description="Write a plugin distribution for framework NAME: pyproject.toml with the `zoo` entry "
        "point, an adapter (a working inference-only stand-in on the NumPy reference, with a TODO wherever "
        "your framework takes over) and a test that runs the conformance suite. See docs/writing-plugins.md.",
    )
    p.add_argument("name", metavar="NAME", help="framework name on the command line, e.g. onnx")
    p.add_argument("-d", "--directory", type=Path, help="where to write it (default: ./zoo-NAME)")
    p.add_argument("--force", action="store_true",
                   help="write into a non-empty directory, and use a name an installed plugin already has")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    console = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        names = check_name(args.name)
        directory = args.directory or Path(names.distribution)
        taken = _taken(args, names)
        if taken and not args.force:
            raise ScaffoldError(f"framework {names.name!r} is already provided by {taken}; choose another name "
                                "(or --force)")
        files = create_plugin(names.name, directory, force=args.force)
    except ScaffoldError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        return 2
    console.print(f"created {names.distribution} in {directory}/:")
    for path in files:
        console.print(f"  {path.relative_to(directory)}")
    steps = [
        (f"cd {directory}", ""),
        ("pip install -e .", f"registers entry point {names.name!r} in group 'zoo'"),
        ("pytest", "the conformance suite, one test per check"),
        (f"zoo check-plugin {names.name}", "the same checks as a table"),
        (f"zoo bench -f {names.name}", "benchmark it"),
    ]
    width = max(len(command) for command, _ in steps)
    console.print("next:")
    for command, why in steps:
        console.print(f"  {command:<{width}}  # {why}" if why else f"  {command}")
    console.print("then replace each TODO in the adapter with your framework (see docs/writing-plugins.md)")
    return 0


def _taken(args: argparse.Namespace, names: PluginNames) -> str:
    _, registry = load_registry(args)
    key = registry.aliases.get(names.name, names.name)
    provided = registry.frameworks.get(key)
    return provided.origin.distribution if provided else ""
