"""``zoo check-plugin NAME``: run the conformance suite (:mod:`zoo.testing`) against one
installed framework plugin and print what passed, what failed and why."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from zoo.testing import CHECKS, ConformanceReport, run_conformance, run_isolated
from zoo.testing.isolated import DEFAULT_TIMEOUT, PROCESS_SUBJECT
from zoo.testing.report import FAILED, NOT_APPLICABLE, NOT_IMPLEMENTED, PASSED, SKIPPED

from harness.commands.common import split_csv
from harness.render.terminal import wide_console

STYLES = {PASSED: "green", FAILED: "bold red", NOT_IMPLEMENTED: "yellow", NOT_APPLICABLE: "dim", SKIPPED: "dim"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check-plugin", help="run the conformance suite against an installed framework plugin",
        description="Check that framework NAME keeps the zoo contract: it is discovered through its entry "
        "point, importing it imports no framework, it loads every supported zoo model from the canonical "
        "checkpoint with logits matching the NumPy reference, trains one Adam step like torch, evaluates, "
        "exports the canonical layout, reports memory, and synchronises inside its timed steps. "
        "The checks run in a child process, each with --timeout seconds: an adapter that exits, hangs, "
        "crashes or raises KeyboardInterrupt/SystemExit fails the check it was in. "
        "Exit status 0 when it conforms, 1 when not, 2 for a usage error. See docs/writing-plugins.md.",
    )
    p.add_argument("name", metavar="NAME", help="framework name or alias, e.g. numpy")
    p.add_argument("--checks", action="append", metavar="LIST", help=f"only these checks ({', '.join(CHECKS)})")
    p.add_argument("-m", "--models", action="append", metavar="LIST",
                   help="the zoo models to check (default: mlp, cnn and the plugin's own models)")
    p.add_argument("--device", default="cpu", choices=("cpu", "gpu"), help="device (default: cpu)")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads of the runtime (default: 1)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                   help=f"seconds each check may take before the check process is killed (default: {DEFAULT_TIMEOUT:g})")
    p.add_argument("--in-process", action="store_true", help="run the checks in this process, without a child "
                   "process or timeout (for a debugger; an adapter that exits or hangs takes this command with it)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    err = Console(stderr=True, soft_wrap=True)
    if not args.timeout > 0 or args.timeout != args.timeout or args.timeout == float("inf"):
        err.print(f"[bold red]error:[/] --timeout must be a positive number of seconds, got {args.timeout}",
                  highlight=False)
        return 2
    options = dict(checks=split_csv(args.checks) or CHECKS, models=split_csv(args.models), device=args.device,
                   threads=args.threads, plugins=args.plugins)
    try:
        if args.in_process:
            report = run_conformance(args.name, **options)
        else:
            report = run_isolated(args.name, timeout=args.timeout, **options)
    except ValueError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        return 2
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print_report(report, wide_console(), verbose=args.verbose)
    return 0 if report.ok else 1


def print_report(report: ConformanceReport, console: Console, verbose: bool = False) -> None:
    table = Table(title=escape(f"zoo check-plugin {report.framework} · {report.origin}"), header_style="bold")
    for column in ("check", "subject", "result", "details"):
        table.add_column(column, overflow="fold")
    for r in report.results:
        table.add_row(r.check, escape(r.subject), f"[{STYLES[r.status]}]{r.status}[/]", escape(r.message))
    console.print(table)
    tracebacks = [r for r in report.results if r.detail and not r.ok]
    for r in tracebacks:  # how the check process ended is always shown: it is the only trace of it
        if verbose or r.subject == PROCESS_SUBJECT:
            console.print(f"[bold]{escape(r.title)}[/]", highlight=False)
            console.print(r.detail, markup=False, highlight=False)
    if any(r.subject != PROCESS_SUBJECT for r in tracebacks) and not verbose:
        console.print("[dim](tracebacks with zoo -v check-plugin ...)[/]")
    style = "bold green" if report.ok else "bold red"
    console.print(f"[{style}]{escape(report.summary())}[/]", highlight=False)
