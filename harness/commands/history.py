"""``zoo history RESULTS_DIR``: the nightly table over many runs, with change points flagged."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from harness.commands.common import split_csv
from harness.render.terminal import print_error

FORMATS = ("table", "markdown", "html", "csv")


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
    p.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    p.add_argument("-o", "--output", type=Path, help="write to this file (default: standard output)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from harness.analysis.history import build_history
    from harness.results.loader import LoadError, load_results
    from harness.results.records import SchemaError

    err = Console(stderr=True)
    if args.last < 1 or args.window < 1:
        print_error(err, "--last and --window must be at least 1")
        return 2
    try:
        from harness.analysis.side_by_side import DEFAULT_METRICS

        metrics = split_csv(args.metrics) or list(DEFAULT_METRICS)
        rs = load_results(args.paths, metrics)
        h = build_history(rs, metrics, window=args.window)
    except (LoadError, SchemaError, ValueError, OSError) as exc:
        print_error(err, str(exc))
        return 2
    if args.format == "table":
        from harness.render.terminal import history_table, wide_console

        console = wide_console(file=args.output.open("w")) if args.output else wide_console()
        console.print(history_table(h, args.last))
        console.print(f"{len(h.runs)} runs, {len(h.changes)} change points (▼ worse, ▲ better, ? latest run only)",
                      highlight=False)
        return 0
    if args.format == "markdown":
        from harness.render.markdown import history_markdown

        text = history_markdown(h, args.last)
    elif args.format == "html":
        from harness.render.html import html_report
        from harness.analysis.side_by_side import side_by_side

        latest = rs.subset([rs.runs["run"].iloc[-1]])
        text = html_report(rs, side_by_side(latest), h, title="zoo-bench history")
    else:
        text = h.values.merge(h.changes.groupby("row").size().rename("change_points"), left_index=True,
                              right_index=True, how="left").fillna({"change_points": 0}).to_csv(index=False)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
