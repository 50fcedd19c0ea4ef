"""``zoo export RUN --format ...``: a run in a format existing benchmark tools read."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console

from harness.render.terminal import print_error

FORMATS = ("pytest-benchmark", "github-action-benchmark", "bencher")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="write a run as pytest-benchmark JSON, github-action-benchmark JSON or Bencher BMF",
        description="Export one stored run for other tools: pytest-benchmark JSON (pytest-benchmark compare, "
        "github-action-benchmark tool 'pytest'), github-action-benchmark custom JSON (two files: "
        "bigger_is_better.json for tool 'customBiggerIsBetter', smaller_is_better.json for "
        "'customSmallerIsBetter'), or Bencher Metric Format (bencher run --adapter json).",
    )
    p.add_argument("run_path", metavar="RUN", help="run directory or run id")
    p.add_argument("--format", choices=FORMATS, required=True, help="what to write")
    p.add_argument("-o", "--output", type=Path, help="file to write (github-action-benchmark: a directory); "
                   "default: standard output")
    p.add_argument("--results-dir", type=Path, default=Path("results"), help="where run ids are looked up "
                   "(default: results)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from harness.render import exports
    from harness.results.loader import LoadError, load_results, resolve_runs
    from harness.results.records import SchemaError

    err = Console(stderr=True)
    try:
        rs = load_results(resolve_runs([args.run_path], args.results_dir))
        if args.format == "github-action-benchmark":
            if not args.output:
                raise ValueError("--format github-action-benchmark writes two files: add -o DIRECTORY")
            bigger, smaller = exports.to_github_action_benchmark(rs)
            args.output.mkdir(parents=True, exist_ok=True)
            for name, entries in (("bigger_is_better.json", bigger), ("smaller_is_better.json", smaller)):
                (args.output / name).write_text(json.dumps(entries, indent=2, allow_nan=False) + "\n")
                print(f"wrote {args.output / name} ({len(entries)} entries)")
            return 0
        doc = exports.to_pytest_benchmark(rs) if args.format == "pytest-benchmark" else exports.to_bencher(rs)
        text = json.dumps(doc, indent=2, allow_nan=False) + "\n"
    except (LoadError, SchemaError, ValueError, OSError) as exc:
        print_error(err, str(exc))
        return 2
    if args.output:
        args.output.write_text(text)
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0
