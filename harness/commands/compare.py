"""``zoo compare BASELINE CANDIDATE``: per cell and metric the change, its CI and a verdict; exit
status 1 when a gating metric regressed (for CI)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from rich.console import Console

from harness.commands.common import split_csv
from harness.render.terminal import print_error

FORMATS = ("table", "markdown", "json", "csv")
GATES = ("train_throughput", "infer_throughput", "latency_p50_ms", "peak_rss_mb", "accuracy")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare", help="compare two runs: changes, confidence intervals and verdicts; exit 1 on a regression",
        description="Compare CANDIDATE with BASELINE cell by cell (same machine fingerprint and cell key). "
        "Verdicts: regressed, improved, unchanged, unstable, new, missing. Thresholds: throughput and "
        "latency 5%%, peak memory 2%% and 32 MiB, accuracy 0.5 points; a Mann-Whitney test of the raw "
        "samples with Benjamini-Hochberg control across all cells and metrics; 'unstable' when a cell's "
        "robust CV is above --max-cv. See docs/results.md. Exit status: 0 no regression in a gating "
        "metric, 1 regression, 2 the runs cannot be read or compared.",
    )
    p.add_argument("baseline", metavar="BASELINE", help="run directory or run id")
    p.add_argument("candidate", metavar="CANDIDATE", help="run directory or run id")
    p.add_argument("--fail-on", action="append", metavar="LIST",
                   help=f"metrics whose regression fails the command, comma-separated, or 'all'/'none' "
                        f"(default: all = {','.join(GATES)})")
    p.add_argument("--fail-on-missing", action="store_true", help="also fail when a baseline cell is missing "
                   "or failed in the candidate")
    p.add_argument("--history", type=Path, metavar="RESULTS_DIR", help="earlier runs: a change must also exceed "
                   "3x that cell's run-to-run noise over them (needs 3 runs on the same machine)")
    p.add_argument("--alpha", type=float, default=0.05, help="false discovery rate (default: 0.05)")
    p.add_argument("--max-cv", type=float, default=0.10, help="robust CV above which a cell is unstable "
                   "(default: 0.10)")
    p.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    p.add_argument("-o", "--output", type=Path, help="write to this file (default: standard output)")
    p.add_argument("--all", action="store_true", help="show unchanged metrics too")
    p.add_argument("--allow-machine-mismatch", action="store_true",
                   help="compare runs from different machines anyway (their timings are not comparable)")
    p.add_argument("--results-dir", type=Path, default=Path("results"), help="where run ids are looked up "
                   "(default: results)")
    p.set_defaults(run=run)


def fail_on_metrics(values: list[str] | None) -> list[str]:
    names = split_csv(values) or ["all"]
    if names == ["none"]:
        return []
    if "all" in names:
        return list(GATES)
    unknown = [n for n in names if n not in GATES]
    if unknown:
        raise ValueError(f"--fail-on: unknown metric {', '.join(map(repr, unknown))}; choose from "
                         f"{', '.join(GATES)}, all or none")
    return names


def run(args: argparse.Namespace) -> int:
    from harness.analysis.compare import CompareSettings, NotComparable, compare_results
    from harness.results.loader import LoadError, load_results, resolve_runs
    from harness.results.records import SchemaError

    err = Console(stderr=True)
    try:
        fail_on = fail_on_metrics(args.fail_on)
        b_path, c_path = resolve_runs([args.baseline, args.candidate], args.results_dir)
        settings = CompareSettings(alpha=args.alpha, max_cv=args.max_cv)
        names = list(settings.rules)  # only what the rule reads: big runs load much faster
        history = load_results([args.history], names) if args.history else None
        both = load_results([b_path, c_path], names)  # one call: big runs are parsed in parallel
        by_path = dict(zip(both.runs["path"], both.runs["run"]))
        if str(b_path) not in by_path or str(c_path) not in by_path:
            raise NotComparable("BASELINE and CANDIDATE must each be one run (a run directory or run id), "
                                "not a results directory")
        baseline, candidate = (both.subset([by_path[str(p)]]) for p in (b_path, c_path))
        cmp = compare_results(baseline, candidate, settings, args.allow_machine_mismatch, history)
    except (LoadError, SchemaError, NotComparable, ValueError, OSError) as exc:
        print_error(err, str(exc))
        return 2
    failures = cmp.failures(fail_on, args.fail_on_missing)
    text = _render(args.format, cmp, args.all, fail_on, len(failures))
    if text is None:
        _print_table(cmp, args.all, fail_on, failures, args.output)
    elif args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    for w in cmp.warnings:
        print_error(err, w, "warning")
    return 1 if len(failures) else 0


def _render(fmt: str, cmp, show_all: bool, fail_on: list[str], n_failures: int) -> str | None:
    if fmt == "markdown":
        from harness.render.markdown import comparison_markdown

        return comparison_markdown(cmp, show_all, fail_on)
    if fmt == "csv":
        return cmp.rows.to_csv(index=False)
    if fmt == "json":
        rows = cmp.rows if show_all else cmp.rows[cmp.rows["verdict"] != "unchanged"]
        doc = {"baseline": _run_info(cmp.baseline), "candidate": _run_info(cmp.candidate),
               "settings": {"alpha": cmp.settings.alpha, "max_cv": cmp.settings.max_cv,
                            "confidence": cmp.settings.confidence, "fail_on": fail_on},
               "counts": cmp.counts(), "failures": n_failures, "warnings": cmp.warnings,
               "rows": [{k: _clean(v) for k, v in r.items()} for r in rows.to_dict("records")]}
        return json.dumps(doc, indent=2) + "\n"
    return None


def _run_info(run: dict) -> dict:
    keys = ("run", "path", "started_at", "trigger", "commit", "dirty", "fingerprint", "cpu_model")
    return {k: _clean(run.get(k)) for k in keys}


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if hasattr(v, "item"):
        return v.item()
    return v


def _print_table(cmp, show_all: bool, fail_on: list[str], failures, output: Path | None) -> None:
    from harness.analysis.compare import VERDICTS
    from harness.render.terminal import comparison_table, wide_console

    console = wide_console(file=output.open("w")) if output else wide_console()
    b, c = cmp.baseline, cmp.candidate
    console.print(f"zoo compare {b['run']} -> {c['run']} on machine {c['fingerprint']} ({c['cpu_model']})",
                  markup=False, highlight=False)
    counts = cmp.counts()
    shown = cmp.rows if show_all else cmp.rows[cmp.rows["verdict"] != "unchanged"]
    if len(shown):
        console.print(comparison_table(cmp, show_all, fail_on))
    console.print(", ".join(f"{counts[v]} {v}" for v in VERDICTS if counts[v]) or "nothing to compare",
                  highlight=False)
    if len(failures):
        console.print(f"FAIL: {len(failures)} regression(s) in gating metrics ({', '.join(fail_on)})",
                      style="bold red", highlight=False)
