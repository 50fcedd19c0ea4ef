"""``zoo bench``: run the benchmark matrix and print the comparison table."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from rich.markup import escape

from zoo.models.spec import FREEZE_HELP

from harness.commands.common import load_registry, report_problems, split_csv
from harness.plugins.registry import UnknownName
from harness.render.terminal import error_console, print_results, wide_console
from harness.plan.request import DEFAULT_MODELS, DEFAULT_TASK, BenchRequest, PlanError
from harness.run.executors.base import ExecutorError
from harness.run.orchestrate import CellEvent, run_bench
from harness.run.processes import become_subreaper
from harness.run.resume import request_from_manifest
from harness.results.store import StoreError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="fine-tune and evaluate models in each framework and compare them",
        description="Run every (framework, model, task) cell in its own subprocess: load the zoo "
        "checkpoint, replace the head, fine-tune with Adam in the host's batch order, evaluate, and "
        "measure throughput, latency, compile time and memory. Records go to "
        "RESULTS_DIR/RUN_ID/results.jsonl as each cell finishes.",
    )
    p.add_argument("-f", "--frameworks", action="append", metavar="LIST",
                   help="comma-separated frameworks, aliases or framework:variant (default: every installed one), "
                        "e.g. torch,torch:compile,tf:xla,jax; NAME@LABEL (torch@2.12, torch@2.12:compile) is the "
                        "framework in another environment, named by --python NAME@LABEL=PATH: a cell of its own")
    p.add_argument("-m", "--models", action="append", metavar="LIST",
                   help=f"comma-separated models (default: {','.join(DEFAULT_MODELS)})")
    p.add_argument("-t", "--tasks", action="append", metavar="LIST", help=f"comma-separated tasks (default: {DEFAULT_TASK})")
    p.add_argument("--device", default="cpu", choices=("cpu", "gpu"), help="device (default: cpu)")
    p.add_argument("--precision", action="append", metavar="LIST",
                   help="comma-separated precisions: fp32, tf32 (GPU only: float32 with TF32 matmuls and convolutions), "
                        "bf16 (bf16 compute, fp32 weights and logits); default fp32")
    p.add_argument("--feed", action="append", metavar="LIST",
                   help="comma-separated feeds, one cell each: device (default: the split staged on the device once "
                        "per phase, each batch gathered there by the host's indices) or host (an input pipeline "
                        "in host memory: each batch gathered on the host and copied by the framework's own "
                        "overlapped mechanism: torch pinned memory and a side CUDA stream, tf.data prefetch to the "
                        "device, JAX device_put one step ahead); e.g. --feed device,host")
    p.add_argument("--batch-size", type=int, help="training and inference batch size (default: the task's recipe)")
    p.add_argument("--epochs", type=int, help="fine-tuning epochs (default: the task's recipe)")
    p.add_argument("--lr", type=float, help="Adam learning rate (default: the task's recipe)")
    p.add_argument("--freeze", help=f"freeze policy: {FREEZE_HELP} (default: the task's recipe)")
    p.add_argument("--init", choices=("pretrained", "scratch"), default="pretrained",
                   help="start from the zoo checkpoint with a new head (default) or from random weights")
    p.add_argument("--threads", type=int, help="intra-op threads per cell, the same for every framework "
                   "(default: the CPUs this process may use)")
    p.add_argument("--seed", type=int, default=0, help="seed of the batch order and new head (default: 0)")
    p.add_argument("--windows", type=int, default=5, help="timing windows per throughput phase (default: 5)")
    p.add_argument("--window-steps", type=int, default=0,
                   help="steps per timing window (default: enough for a window of at least 50 ms on a CPU, 1 s on a GPU, at least 5)")
    p.add_argument("--warmup-cap", type=int, default=50,
                   help="most warm-up steps before the windows on a CPU (a GPU warms up for at least 3 s of whole "
                        "windows); the steady point is detected (default: 50)")
    p.add_argument("--repeats", type=int, default=1,
                   help="worker processes per cell, run back to back and merged into one record: the CI then "
                        "covers process-to-process noise (default: 1; use 3 or more for baselines)")
    p.add_argument("--retry-disturbed", type=int, default=0, metavar="N",
                   help="run a cell again, up to N times, when another process took its CPU during a timing "
                        "window or the device peak drifted (docs/measurement.md); default 0: mark it disturbed")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds before a cell is killed (default: 900)")
    p.add_argument("--results-dir", type=Path, default=Path("results"), help="where runs are stored (default: results)")
    p.add_argument("--run-id", default="", help="name of this run (default: a timestamp)")
    p.add_argument("--trigger", default="manual", help="why this run happened, recorded in the manifest "
                   "(e.g. nightly, pr, manual; default: manual)")
    p.add_argument("--resume", metavar="RUN_ID", default="",
                   help="continue run RUN_ID in --results-dir with its own settings: re-run only its missing, "
                        "failed and timed-out cells")
    p.add_argument("--executor", default="local", help="where cells run: local (default: one worker subprocess "
                   "per cell on this machine) or an executor a plugin adds; see docs/architecture.md")
    p.add_argument("--ray-address", metavar="auto|HOST:PORT",
                   help="with --executor ray: the cluster to use (default: $RAY_ADDRESS, else auto)")
    p.add_argument("--executor-option", action="append", metavar="KEY=VALUE",
                   help="a setting of the executor, repeatable, e.g. cells_per_node=0 or "
                        "resources='{\"h200\": 1}' for ray (docs/ray.md)")
    p.add_argument("--python", action="append", metavar="FRAMEWORK[@LABEL]=PATH", dest="python",
                   help="run FRAMEWORK's cells under the interpreter PATH (its own virtual environment, e.g. "
                        "for a CUDA build whose nvidia-* wheels conflict with another framework's), repeatable; "
                        "checked before any cell runs (it must import harness, zoo and the plugin: "
                        "PATH -m pip install -e . -e plugins/zoo-torch). With -f torch@2.12,torch and --python "
                        "torch@2.12=/envs/t212/bin/python two versions run side by side as distinct cells. "
                        "Default: every cell runs under this zoo's interpreter")
    p.add_argument("--gpus", action="append", metavar="LIST",
                   help="with --device gpu: the GPUs to use, as CUDA_VISIBLE_DEVICES takes them (nvidia-smi "
                        "indices or GPU- UUIDs), e.g. 0,1; each GPU cell's worker sees exactly one of them "
                        "(default: this process's CUDA_VISIBLE_DEVICES, else every GPU nvidia-smi lists). "
                        "CPU cells always get CUDA_VISIBLE_DEVICES=''")
    p.add_argument("--parallel-gpus", action="store_true",
                   help="run up to one GPU cell per --gpus GPU at the same time, each on its own GPU and its own "
                        "--threads CPUs (so --threads x GPUs must fit this process's CPUs); CPU cells always run "
                        "one at a time, because they share the CPUs they are timed on")
    p.add_argument("--checkpoint-dir", default="", help="directory with zoo checkpoints and their manifest.json, "
                   "searched before the user's ($ZOO_CACHE_DIR/checkpoints) and the shipped ones")
    p.add_argument("--checkpoint", default="", help="start from this checkpoint (from `zoo import`, `zoo fetch` or "
                   "`zoo pretrain`) instead of the task's; cells of other models are skipped")
    # what --resume compares against: every option a user could have changed, with its flag
    p.set_defaults(run=run, bench_options={a.dest: (a.option_strings[-1], a.default) for a in p._actions
                                           if a.option_strings and a.dest not in ("help", "resume", "results_dir")})


def changed_options(args: argparse.Namespace) -> list[str]:
    """The flags given a value other than their default (``--resume`` refuses them)."""
    return [flag for dest, (flag, default) in args.bench_options.items() if getattr(args, dest, default) != default]


def executor_options(args: argparse.Namespace) -> dict[str, str]:
    """``--executor-option KEY=VALUE`` (and ``--ray-address``) as the executor's settings."""
    options = {}
    for item in args.executor_option or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise PlanError(f"--executor-option {item!r}: write KEY=VALUE, e.g. cells_per_node=0")
        options[key.strip()] = value.strip()
    if args.ray_address:
        options["address"] = args.ray_address
    return options


def python_options(values: list[str] | None) -> dict[str, str]:
    """``--python FRAMEWORK[@LABEL]=PATH`` (repeatable) as ``{FRAMEWORK[@LABEL]: PATH}``."""
    out: dict[str, str] = {}
    for item in values or []:
        key, sep, path = item.partition("=")
        if not sep or not key.strip() or not path.strip():
            raise PlanError(f"--python {item!r}: write FRAMEWORK=PATH or FRAMEWORK@LABEL=PATH, e.g. "
                            "--python torch=/envs/torch/bin/python")
        key, path = key.strip(), os.path.abspath(os.path.expanduser(path.strip()))  # the manifest keeps it
        if key in out and out[key] != path:
            raise PlanError(f"--python {key} is given twice ({out[key]} and {path}); one environment runs "
                            f"{key}'s cells: give the other a label (-f {key}@other --python {key}@other=PATH)")
        out[key] = path
    return out


def request_from_args(args: argparse.Namespace) -> BenchRequest:
    fields = dict(
        frameworks=split_csv(args.frameworks), models=split_csv(args.models) or list(DEFAULT_MODELS),
        tasks=split_csv(args.tasks) or [DEFAULT_TASK], device=args.device,
        precisions=split_csv(args.precision) or ["fp32"], feeds=split_csv(args.feed) or ["device"],
        batch_size=args.batch_size, epochs=args.epochs, learning_rate=args.lr, freeze=args.freeze,
        init=args.init, seed=args.seed, windows=args.windows, window_steps=args.window_steps,
        warmup_cap=args.warmup_cap, repeats=args.repeats, timeout_s=args.timeout,
        results_dir=args.results_dir, run_id=args.run_id, checkpoint_dir=args.checkpoint_dir,
        checkpoint=args.checkpoint, trigger=args.trigger, executor=args.executor,
        retry_disturbed=args.retry_disturbed, executor_options=executor_options(args),
        pythons=python_options(args.python), gpus=split_csv(args.gpus), parallel_gpus=args.parallel_gpus,
    )
    if args.threads is not None:
        fields["threads"] = args.threads
    return BenchRequest(**fields)


def run(args: argparse.Namespace) -> int:
    console = wide_console()
    err = error_console()
    host, registry = load_registry(args)
    report_problems(registry, err, args.verbose)
    try:
        if args.resume:
            changed = changed_options(args)
            if changed:
                raise PlanError(f"--resume reuses the run's own frameworks, models, tasks and settings, so it "
                                f"cannot apply {', '.join(changed)}; drop {'it' if len(changed) == 1 else 'them'}, "
                                "or start a new run with the settings you want")
            request = request_from_manifest(args.results_dir, args.resume)
        else:
            request = request_from_args(args)
    except (PlanError, StoreError, KeyError, TypeError) as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        return 2
    unit = "cells" if request.repeats == 1 else "cell runs"
    progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} " + unit),
                        TimeElapsedColumn(), console=err, transient=True)
    bar = None

    def on_event(event: CellEvent) -> None:
        nonlocal bar
        cell = event.cell
        label = escape(f"{cell.label} {cell.model} {cell.task} {cell.precision}")  # names are data, not markup
        if event.repeats > 1:
            label += f" (repeat {event.repeat}/{event.repeats})"
        if err.is_terminal:
            if bar is None:
                progress.start()
                bar = progress.add_task("", total=event.total)
            progress.update(bar, description=label, completed=event.index + (event.kind == "end"))
        elif event.kind == "end":
            record = event.record
            err.print(f"[{event.index + 1}/{event.total}] {label}: {record.status} ({record.duration_s:.1f} s)",
                      highlight=False)

    become_subreaper()  # processes a plugin starts in a new session come back to us to be killed
    try:
        outcome = run_bench(request, registry, host, on_event, resume=bool(args.resume))
    except (UnknownName, PlanError, StoreError, ExecutorError) as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        return 2
    finally:
        if bar is not None:
            progress.stop()
    for warning in outcome.store.warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    records = outcome.already_done + outcome.records
    print_results(records, console, title=f"zoo bench · run {outcome.store.run_id}", catalogue=registry.catalogue)
    console.print(f"results: {outcome.store.results_path}", highlight=False)
    quiet = outcome.quietness
    if quiet.get("quiet") is False:
        err.print(f"[yellow]warning:[/] this machine's matmul speed changed by {100 * quiet['change']:+.0f}% between "
                  f"the start and the end of the run ({quiet['start_gflops']:.0f} -> {quiet['end_gflops']:.0f} GFLOP/s): "
                  "it was not quiet, so its throughputs moved too. Compare them with care, or rerun on an idle "
                  "machine (docs/measurement.md, 'Is the machine quiet?').", highlight=False)
    if outcome.store_error:
        err.print(f"[bold red]error:[/] {escape(outcome.store_error)}", highlight=False)
        if outcome.unsaved:
            err.print("the record that could not be saved follows, so it is not lost:", highlight=False)
            print(outcome.unsaved, file=sys.stderr)
        return 3
    if outcome.interrupted:
        err.print(f"[yellow]interrupted[/] ({outcome.signal}): finished cells are saved; the run manifest says "
                  "'interrupted'. "
                  f"Continue with: zoo bench --resume {escape(outcome.store.run_id)} "
                  f"--results-dir {escape(str(request.results_dir))}", highlight=False)
        return 128 + signal.Signals[outcome.signal or "SIGINT"].value  # 130 for Ctrl-C, 143 for SIGTERM
    return 0 if all(r.status in ("ok", "skipped") for r in records) else 1
