"""``zoo report RUN...``: the frameworks side by side, as a terminal table, Markdown, HTML with
plots, CSV or Parquet."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console

from harness.commands.common import split_csv
from harness.render.terminal import print_error

FORMATS = ("table", "markdown", "html", "csv", "parquet")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="tables and plots of stored runs: frameworks side by side, ratios to a reference",
        description="Show stored runs with the frameworks side by side and each value's ratio to a reference "
        "framework. RUN is a run directory, a results directory (every run in it) or a run id under "
        "--results-dir. HTML adds plots (the latest run; history over runs) and opens offline.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directory, results directory or run id")
    p.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
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
    from harness.results.loader import LoadError, load_results, resolve_runs
    from harness.results.records import SchemaError
    from harness.analysis.side_by_side import side_by_side

    err = Console(stderr=True)
    try:
        from harness.analysis.side_by_side import DEFAULT_METRICS

        metrics = split_csv(args.metrics) or list(DEFAULT_METRICS)
        # csv and parquet carry every metric unless some were asked for
        wanted = None if args.format in ("csv", "parquet") and not args.metrics else metrics
        rs = load_results(resolve_runs(args.runs, args.results_dir), wanted)
        sbs = side_by_side(rs, args.reference, metrics)
    except (LoadError, SchemaError, ValueError, OSError) as exc:
        print_error(err, str(exc))
        return 2
    if args.format == "parquet" and not args.output:
        print_error(err, "--format parquet writes a file: add -o FILE.parquet")
        return 2
    try:
        if args.format == "table":
            return _table(sbs, rs, args.output)
        if args.format == "parquet":
            return _parquet(rs, args.output, err)
        text = _render(args.format, rs, sbs)
    except OSError as exc:
        print_error(err, str(exc))
        return 2
    _write(text, args.output)
    return 0


def _render(fmt: str, rs, sbs) -> str:
    if fmt == "markdown":
        from harness.render.markdown import side_by_side_markdown

        return side_by_side_markdown(sbs, title="zoo report · " + ", ".join(rs.runs["run"]))
    if fmt == "html":
        from harness.analysis.history import build_history
        from harness.render.html import html_report

        return html_report(rs, sbs, build_history(rs) if len(rs.runs) > 1 else None)
    frame = rs.metrics.drop(columns=["run_order"]).copy()
    frame["samples"] = [json.dumps(list(map(float, s))) for s in frame["samples"]]
    return frame.to_csv(index=False)


def _table(sbs, rs, output: Path | None) -> int:
    from harness.render.terminal import side_by_side_table, wide_console

    console = wide_console(file=output.open("w")) if output else wide_console()
    runs = ", ".join(rs.runs["run"])
    console.print(side_by_side_table(sbs, title=f"zoo report · {runs}"))
    for f in sbs.failures.itertuples():
        console.print(f"{f.cell_key} ({f.run}) {f.status} in {f.error_phase}: {f.error_type}: {f.error_message}",
                      markup=False, highlight=False)
    return 0


def _parquet(rs, output: Path, err: Console) -> int:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        print_error(err, "writing Parquet needs pyarrow: pip install 'zoo-bench[parquet]' (or use --format csv)")
        return 2
    rs.metrics.drop(columns=["run_order"]).to_parquet(output, index=False)
    print(f"wrote {output}")
    return 0


def _write(text: str, output: Path | None) -> None:
    if output:
        output.write_text(text, encoding="utf-8")
        print(f"wrote {output}")
    else:
        sys.stdout.write(text)
