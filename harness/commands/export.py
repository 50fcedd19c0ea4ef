"""``zoo export RUN --format ...``: a run in a format existing benchmark tools read (any format
that renders the export view; built in: pytest-benchmark, github-action-benchmark, bencher)."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.commands.common import load_registry, report_problems, warn_skipped
from harness.render.registry import format_help
from harness.render.terminal import error_console, print_error


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="write a run as pytest-benchmark JSON, github-action-benchmark JSON or Bencher BMF",
        description="Export one stored run for other tools: pytest-benchmark JSON (pytest-benchmark compare, "
        "github-action-benchmark tool 'pytest'), github-action-benchmark custom JSON (two files: "
        "bigger_is_better.json for tool 'customBiggerIsBetter', smaller_is_better.json for "
        "'customSmallerIsBetter'), or Bencher Metric Format (bencher run --adapter json).",
    )
    p.add_argument("run_path", metavar="RUN", help="run directory or run id")
    p.add_argument("--format", required=True, metavar="FORMAT", help=format_help("export", default=None))
    p.add_argument("-o", "--output", type=Path, help="file to write (github-action-benchmark: a directory); "
                   "default: standard output")
    p.add_argument("--results-dir", type=Path, default=Path("results"), help="where run ids are looked up "
                   "(default: results)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from harness.render.registry import check_output, renderers_for, write_output
    from harness.render.views import ExportView
    from harness.results.loader import LoadError, load_results, resolve_runs
    from harness.results.records import SchemaError

    err = error_console()
    _, registry = load_registry(args)
    report_problems(registry, err, getattr(args, "verbose", False))
    try:
        renderer = renderers_for(registry).get("export", args.format)
        check_output(renderer, args.output)  # before loading: a bad -o costs nothing
        rs = load_results(resolve_runs([args.run_path], args.results_dir))
        warn_skipped(rs, err)
        rendered = renderer.views["export"](ExportView(rs, registry.catalogue))
        write_output(renderer, rendered, args.output, announce=True)
    except (LoadError, SchemaError, ValueError, OSError) as exc:
        print_error(err, str(exc))
        return 2
    return 0
