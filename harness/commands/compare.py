"""``zoo compare BASELINE CANDIDATE``: per cell and metric the change, its CI and a verdict; exit
status 1 when a gating metric regressed (for CI). Which metrics are compared, their thresholds
and which gate come from the metric catalogue; the output is any format that renders the
comparison view (built in: table, Markdown, JSON, CSV)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from harness.commands.common import load_registry, report_problems, split_csv, warn_skipped
from harness.render.registry import format_help
from harness.render.terminal import error_console, print_error
from harness.results.metrics import BUILTIN, Catalogue


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare", help="compare two runs: changes, confidence intervals and verdicts; exit 1 on a regression",
        description="Compare CANDIDATE with BASELINE cell by cell (same machine fingerprint and cell key). "
        "Verdicts: regressed, improved, unchanged, unstable, new, missing. Thresholds (the metric "
        f"catalogue's; plugins may add metrics): {_thresholds(BUILTIN)}; a Mann-Whitney test of the raw "
        "samples with Benjamini-Hochberg control across all cells and metrics; 'unstable' when a cell's "
        "robust CV is above --max-cv. See docs/results.md. Exit status: 0 no regression in a gating "
        "metric, 1 regression, 2 the runs cannot be read or compared.",
    )
    p.add_argument("baseline", metavar="BASELINE", help="run directory or run id")
    p.add_argument("candidate", metavar="CANDIDATE", help="run directory or run id")
    p.add_argument("--fail-on", action="append", metavar="LIST",
                   help=f"metrics whose regression fails the command, comma-separated, or 'all'/'none' "
                        f"(default: all = {','.join(BUILTIN.gates())} and a plugin's gating metrics)")
    p.add_argument("--fail-on-missing", action="store_true", help="also fail when a baseline cell is missing "
                   "or failed in the candidate")
    p.add_argument("--history", type=Path, metavar="RESULTS_DIR", help="earlier runs: a change must also exceed "
                   "3x that cell's run-to-run noise over them (needs 3 runs on the same machine)")
    p.add_argument("--alpha", type=float, default=0.05, help="false discovery rate (default: 0.05)")
    p.add_argument("--max-cv", type=float, default=0.10, help="robust CV above which a cell is unstable "
                   "(default: 0.10)")
    p.add_argument("--format", default="table", metavar="FORMAT", help=format_help("compare"))
    p.add_argument("-o", "--output", type=Path, help="write to this file (default: standard output)")
    p.add_argument("--all", action="store_true", help="show unchanged metrics too")
    p.add_argument("--allow-machine-mismatch", action="store_true",
                   help="compare runs from different machines anyway (their timings are not comparable)")
    p.add_argument("--results-dir", type=Path, default=Path("results"), help="where run ids are looked up "
                   "(default: results)")
    p.add_argument("--threshold", action="append", metavar="METRIC=VALUE",
                   help="a gate's threshold instead of the catalogue's, repeatable: a percentage for relative "
                        "rules (train_throughput=3%%), the metric's unit for absolute ones (accuracy=1)")
    p.add_argument("--confirm", action="store_true",
                   help="measure the candidate's regressed or unstable gating cells again with more repeats, from "
                        "this install (and the baseline's right after, when this install measured it too), until "
                        "the verdict settles or the rounds run out; a cell still unstable then fails the gate")
    p.add_argument("--confirm-repeats", type=int, default=3, metavar="R",
                   help="worker processes per cell in each confirmation round (default: 3)")
    p.add_argument("--confirm-rounds", type=int, default=2, metavar="N", help="confirmation rounds at most (default: 2)")
    p.add_argument("--allow-unstable", action="store_true",
                   help="with --confirm: cells that stay unstable do not fail the gate (they are still reported)")
    p.set_defaults(run=run)


def _thresholds(catalogue: Catalogue) -> str:
    def one(name: str, rule) -> str:
        unit = catalogue[name].unit
        if rule.kind == "absolute":
            return f"{name} {rule.threshold:g} {'points' if unit == '%' else unit}"
        return f"{name} {100 * rule.threshold:g}%" + (f" and {rule.min_abs:g} {unit}" if rule.min_abs else "")
    return ", ".join(one(n, r) for n, r in catalogue.compare_rules().items())


def fail_on_metrics(values: Sequence[str] | None, catalogue: Catalogue = BUILTIN) -> list[str]:
    """The gating metrics ``--fail-on`` names: ``all`` (the default) = the catalogue's gates,
    ``none``, or any compared metrics."""
    names = split_csv(values) or ["all"]
    if names == ["none"]:
        return []
    if "all" in names:
        return list(catalogue.gates())
    compared = list(catalogue.compare_rules())
    unknown = [n for n in names if n not in compared]
    if unknown:
        raise ValueError(f"--fail-on: unknown metric {', '.join(map(repr, unknown))}; choose from "
                         f"{', '.join(compared)}, all or none")
    return names


def _check_machine_known(side: str, rs) -> None:
    """A run without a manifest (or a manifest without the machine's fingerprint) is reported as
    such, not as a run "from a different machine"."""
    from harness.analysis.compare import NotComparable

    row = rs.runs.iloc[0]
    if row["run_status"] == "no manifest":
        raise NotComparable(f"{side} {row['path']} has no manifest.json, so the machine that measured it is "
                            "unknown and its timings cannot be checked against the other run's; restore the "
                            "manifest, or pass --allow-machine-mismatch to compare anyway")
    if not row["fingerprint"]:
        raise NotComparable(f"{side} {row['path']}: its manifest.json has no machine fingerprint, so the machine "
                            "that measured it is unknown; pass --allow-machine-mismatch to compare anyway")


def run(args: argparse.Namespace) -> int:
    from harness.analysis.compare import (CompareSettings, NotComparable, compare_results, disturbance_warnings,
                                          parse_threshold)
    from harness.results.store import disturbed_cells
    from harness.render.registry import check_output, renderers_for, write_output
    from harness.render.views import CompareView
    from harness.results.loader import LoadError, load_results, resolve_runs
    from harness.results.records import SchemaError
    from harness.results.store import StoreError

    err = error_console()
    host, registry = load_registry(args)
    report_problems(registry, err, getattr(args, "verbose", False))
    catalogue = registry.catalogue
    unsettled: list[str] = []
    try:
        renderer = renderers_for(registry).get("compare", args.format)
        check_output(renderer, args.output)
        _check_numbers(args)
        catalogue = catalogue.with_thresholds(dict(parse_threshold(t, catalogue) for t in split_csv(args.threshold)))
        fail_on = fail_on_metrics(args.fail_on, catalogue)
        b_path, c_path = resolve_runs([args.baseline, args.candidate], args.results_dir)
        settings = CompareSettings(alpha=args.alpha, max_cv=args.max_cv, catalogue=catalogue)
        names = list(settings.rules)  # only what the rule reads: big runs load much faster
        history = load_results([args.history], names) if args.history else None
        if history is not None:
            warn_skipped(history, err)
        both = load_results([b_path, c_path], names)  # one call: big runs are parsed in parallel
        warn_skipped(both, err)  # a results directory given as a run is refused just below
        by_path = dict(zip(both.runs["path"], both.runs["run"]))
        if str(b_path) not in by_path or str(c_path) not in by_path:
            raise NotComparable("BASELINE and CANDIDATE must each be one run (a run directory or run id), "
                                "not a results directory")
        baseline, candidate = (both.subset([by_path[str(p)]]) for p in (b_path, c_path))
        if not args.allow_machine_mismatch:
            for side, rs in (("BASELINE", baseline), ("CANDIDATE", candidate)):
                _check_machine_known(side, rs)
        cmp = compare_results(baseline, candidate, settings, args.allow_machine_mismatch, history)
        cmp.warnings.extend(w for side, path, rs in (("baseline", b_path, baseline), ("candidate", c_path, candidate))
                            for w in disturbance_warnings(side, rs, disturbed_cells(path)))
        if args.confirm:
            from harness.run.confirm import confirm

            confirmed = confirm(b_path, c_path, cmp, settings, fail_on, registry, host, args.confirm_repeats,
                                args.confirm_rounds)
            cmp, unsettled = confirmed.comparison, confirmed.unsettled
            for run_dir in confirmed.runs:
                print_error(err, f"measured again in {run_dir}", "confirm")
        failures = cmp.failures(fail_on, args.fail_on_missing)
        view = CompareView(cmp, args.all, tuple(fail_on), failures, catalogue)
        write_output(renderer, renderer.views["compare"](view), args.output)
    except (LoadError, SchemaError, NotComparable, ValueError, OSError, StoreError) as exc:
        print_error(err, str(exc))
        return 2
    for w in cmp.warnings:
        print_error(err, w, "warning")
    if unsettled and not args.allow_unstable:
        print_error(err, f"still unstable after confirming: {', '.join(unsettled)}; the gate fails (pass "
                         "--allow-unstable to let it pass, or confirm with more --confirm-repeats)")
        return 1
    return 1 if len(failures) else 0


def _check_numbers(args: argparse.Namespace) -> None:
    """The statistical settings are numbers the rule can use: NaN or 0 would silence the gate."""
    if not (0 < args.alpha < 1):
        raise ValueError(f"--alpha must be between 0 and 1 (a false discovery rate), got {args.alpha}")
    if not (args.max_cv > 0 and args.max_cv < float("inf")):
        raise ValueError(f"--max-cv must be a finite number above 0, got {args.max_cv}")
    if args.confirm_repeats < 2 or args.confirm_rounds < 1:
        raise ValueError("--confirm-repeats must be at least 2 and --confirm-rounds at least 1")
