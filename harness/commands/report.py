"""``zoo report RUN...``: the frameworks side by side, in any format that renders the report view
(built in: a terminal table, Markdown, HTML with plots, CSV, Parquet; plugins add more)."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.commands.common import load_registry, report_problems, split_csv, warn_disturbed, warn_skipped
from harness.render.registry import format_help
from harness.render.terminal import error_console, print_error


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="tables and plots of stored runs: frameworks side by side, ratios to a reference",
        description="Show stored runs with the frameworks side by side and each value's ratio to a reference "
        "framework. RUN is a run directory, a results directory (every run in it) or a run id under "
        "--results-dir. HTML adds plots (the latest run; history over runs) and opens offline.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directory, results directory or run id")
    p.add_argument("--format", default="table", metavar="FORMAT", help=format_help("report"))
    p.add_argument("-o", "--output", type=Path, help="write to this file (default: standard output; "
                   "parquet needs a file)")
    p.add_argument("--reference", metavar="FRAMEWORK", help="framework the ratios are relative to "
                   "(default: the first framework of the runs)")
    p.add_argument("--metrics", action="append", metavar="LIST", help="comma-separated metrics to show "
                   "(default: accuracy, throughputs, latency, compile, fine-tune time, peak memory)")
    p.add_argument("--results-dir", type=Path, default=Path("results"), help="where run ids are looked up "
                   "(default: results)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from harness.analysis.side_by_side import side_by_side
    from harness.render.registry import check_output, renderers_for, write_output
    from harness.render.views import ReportView
    from harness.results.loader import LoadError, load_results, resolve_runs
    from harness.results.records import SchemaError

    err = error_console()
    _, registry = load_registry(args)
    report_problems(registry, err, getattr(args, "verbose", False))
    catalogue = registry.catalogue
    try:
        renderer = renderers_for(registry).get("report", args.format)
        check_output(renderer, args.output)  # before loading: a bad -o costs nothing
        metrics = split_csv(args.metrics) or list(catalogue.columns())
        # tabular formats carry every metric unless some were asked for
        wanted = None if renderer.every_metric and not args.metrics else metrics
        rs = load_results(resolve_runs(args.runs, args.results_dir), wanted)
        warn_skipped(rs, err)
        warn_disturbed(rs, err)
        sbs = side_by_side(rs, args.reference, metrics, catalogue)
        view = ReportView(rs, sbs, title="zoo report · " + ", ".join(rs.runs["run"]), catalogue=catalogue)
        write_output(renderer, renderer.views["report"](view), args.output, announce=True)
    except (LoadError, SchemaError, ValueError, OSError) as exc:
        print_error(err, str(exc))
        return 2
    return 0
