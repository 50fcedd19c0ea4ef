"""The ``zoo`` command: parses arguments, calls one library function, renders the result.

Each command lives in its own module under :mod:`harness.commands`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from harness.commands import (
    bench, check_plugin, compare, export, fetch, history, import_weights, models, new_plugin, plugins, pretrain, report,
    tasks,
)

COMMANDS = (bench, report, compare, history, export, plugins, models, tasks, pretrain, import_weights, fetch,
            new_plugin, check_plugin)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zoo",
        description="Benchmark the same classification work across deep-learning frameworks: "
        "load a pretrained model, fine-tune it, evaluate it, and compare accuracy, throughput, "
        "latency, compile time and memory.",
        epilog="Example: zoo bench --frameworks torch,tf,jax --models mlp,cnn --tasks digits",
    )
    parser.add_argument("-p", "--plugin", dest="plugins", action="append", default=[], metavar="MODULE",
                        help="load this plugin module explicitly (repeatable); see also ZOO_PLUGINS and "
                             "ZOO_DISABLE_PLUGIN_AUTOLOAD")
    parser.add_argument("--plugins", dest="allow", action="append", metavar="LIST",
                        help="allow-list of plugins (entry-point or distribution names, comma-separated): "
                             "other installed plugins are not imported; see also ZOO_ALLOWED_PLUGINS")
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks of plugins that fail to load")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
