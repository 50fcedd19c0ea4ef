"""``zoo history RESULTS_DIR``: the nightly table over many runs, with change points flagged, in
any format that renders the history view (built in: table, Markdown, HTML, CSV)."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.commands.common import load_registry, report_problems, split_csv, warn_disturbed, warn_skipped
from harness.render.registry import format_help
from harness.render.terminal import error_console, print_error


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "history", help="every metric over many runs, with change points flagged",
        description="Read every run in RESULTS_DIR (or the run directories given) and show each cell's "
        "metrics over the runs in start order, per machine, flagging change points: a lasting change of "
        "level beyond the metric's threshold and 3x the run-to-run noise. See docs/results.md.",
    )
    p.add_argument("paths", nargs="+", metavar="RESULTS_DIR", help="results directory (or run directories)")
    p.add_argument("--metrics", action="append", metavar="LIST", help="comma-separated metrics "
                   "(default: accuracy, throughputs, latency, compile, fine-tune time, peak memory)")
    p.add_argument("--last", type=int, default=10, help="runs shown as columns (default: 10; change points "
                   "are found over all runs)")
    p.add_argument("--window", type=int, default=5, help="runs on each side of a change point that set "
                   "the levels (default: 5)")
    p.add_argument("--format", default="table", metavar="FORMAT", help=format_help("history"))
    p.add_argument("-o", "--output", type=Path, help="write to this file (default: standard output)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from harness.analysis.history import build_history
    from harness.render.registry import check_output, renderers_for, write_output
    from harness.render.views import HistoryView
    from harness.results.loader import LoadError, load_results
    from harness.results.records import SchemaError

    err = error_console()
    if args.last < 1 or args.window < 1:
        print_error(err, "--last and --window must be at least 1")
        return 2
    _, registry = load_registry(args)
    report_problems(registry, err, getattr(args, "verbose", False))
    catalogue = registry.catalogue
    try:
        renderer = renderers_for(registry).get("history", args.format)
        check_output(renderer, args.output)
        metrics = split_csv(args.metrics) or list(catalogue.columns())
        rs = load_results(args.paths, metrics)
        warn_skipped(rs, err)
        warn_disturbed(rs, err)
        h = build_history(rs, metrics, window=args.window, catalogue=catalogue)
        write_output(renderer, renderer.views["history"](HistoryView(h, rs, args.last, catalogue)), args.output)
    except (LoadError, SchemaError, ValueError, OSError) as exc:
        print_error(err, str(exc))
        return 2
    return 0
