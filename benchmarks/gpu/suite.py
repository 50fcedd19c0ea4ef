"""The GPU suite: ResNet-50 and EfficientNet-Lite0 at 224 px on ``synthetic-imagenet-224``,
batch 256, bf16 and fp32, in torch, torch:compile, tf, tf:xla and jax, as one ``zoo bench`` run
on the GPU, then its ``zoo report`` table (``benchmarks/gpu/suite.sh``; what it runs, how long it
should take and what has not been measured: ``benchmarks/gpu/README.md``).

The suite is thin on purpose: it builds one ``zoo bench`` command and one ``zoo report``
command from :class:`SuiteSettings` and runs them, so every number comes from the harness's
normal cells and records. The models start from random weights (``--init scratch``: a
throughput suite needs no trained weights, and the synthetic task has no checkpoint).

``--dry-run`` runs the same suite on the CPU at tiny sizes (:data:`DRY_RUN`): the tiny task,
batch 4, one precision, small stand-in models, short timing windows, one thread, any GPU
hidden, so CI proves the commands, the variants and the report work before a GPU minute is
spent. ``--print`` shows the two commands without running them.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from harness.measure import gpu_info  # noqa: E402

#: Every framework and variant the suite runs (``zoo bench --help``; the adapters' ``variants``).
FRAMEWORKS = ("torch", "torch:compile", "tf", "tf:xla", "jax")
DRY_NOTE = " (dry run on the CPU: no GPU was measured)"


@dataclass(frozen=True)
class SuiteSettings:
    """What one suite run asks ``zoo bench`` for; ``options`` are further ``zoo bench`` flags."""

    device: str
    task: str
    models: tuple[str, ...]
    precisions: tuple[str, ...]
    batch_size: int
    options: tuple[str, ...] = ()
    frameworks: tuple[str, ...] = FRAMEWORKS

    @property
    def cells(self) -> int:
        return len(self.frameworks) * len(self.models) * len(self.precisions)


#: The suite on one GPU: the task's recipe (3 epochs, Adam 1e-3), the harness's timing defaults,
#: a generous per-cell timeout (compiling ResNet-50's training step takes minutes in some variants).
GPU: SuiteSettings = SuiteSettings(
    device="gpu", task="synthetic-imagenet-224", models=("resnet50", "efficientnet-lite0"),
    precisions=("bf16", "fp32"), batch_size=256, options=("--timeout", "1800"))
#: The same suite on the CPU at tiny sizes: the tiny task (10 classes, 40 / 20 images at 224 px),
#: batch 4, fp32, the small 224-px-capable ``cnn`` in place of both models (ResNet-50 and
#: EfficientNet-Lite0 at 224 px would take minutes a cell on a CI CPU, torch.compile's
#: inductor more), one epoch, two timing windows of two steps, one thread.
DRY_RUN: SuiteSettings = SuiteSettings(
    device="cpu", task="synthetic-imagenet-224-tiny", models=("cnn",), precisions=("fp32",), batch_size=4,
    options=("--epochs", "1", "--threads", "1", "--windows", "2", "--window-steps", "2", "--warmup-cap", "2",
             "--timeout", "300"))


def zoo(*args: str) -> list[str]:
    """The ``zoo`` command line under this interpreter (what the ``zoo`` script runs)."""
    return [sys.executable, "-m", "harness.cli", *args]


def bench_command(settings: SuiteSettings, results_dir: Path, run_id: str, extra: tuple[str, ...] = ()) -> list[str]:
    """The one ``zoo bench`` run of the suite; ``extra`` flags go last (they may override)."""
    return zoo("bench", "-f", ",".join(settings.frameworks), "-m", ",".join(settings.models), "-t", settings.task,
               "--device", settings.device, "--precision", ",".join(settings.precisions),
               "--batch-size", str(settings.batch_size), "--init", "scratch", "--trigger", "gpu-suite",
               "--results-dir", str(results_dir), "--run-id", run_id, *settings.options, *extra)


def report_command(results_dir: Path, run_id: str) -> list[str]:
    """The side-by-side table of the suite's run."""
    return zoo("report", str(results_dir / run_id))


def summary(run_dir: Path) -> tuple[str, bool]:
    """One line per cell that did not finish ``ok`` (with its phase and error), a count line, and
    whether every cell is ``ok``."""
    from harness.results.loader import load_results

    cells = load_results([run_dir]).cells
    counts = cells["status"].value_counts().to_dict()
    lines = [f"{row.status:<8} {row.label} {row.model} {row.precision}: {row.error_phase or ''} "
             f"{(row.error_message or '')[:300]}" for row in cells.itertuples() if row.status != "ok"]
    tally = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    lines.append(f"suite: {tally} of {len(cells)} cells")
    return "\n".join(lines), len(cells) > 0 and set(counts) == {"ok"}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter,
                                allow_abbrev=False,
                                epilog="Arguments after -- go to zoo bench unchanged (they come last, so they "
                                       "override), e.g. -- --repeats 3")
    p.add_argument("--dry-run", action="store_true", default=os.environ.get("DRY_RUN") == "1",
                   help="run the suite on the CPU at tiny sizes (also DRY_RUN=1)")
    p.add_argument("--print", dest="print_only", action="store_true",
                   help="print the zoo bench and zoo report commands and exit")
    p.add_argument("--frameworks", default="", help=f"a subset of {','.join(FRAMEWORKS)} (default: all)")
    p.add_argument("--models", default="", help="other models (default: resnet50,efficientnet-lite0; dry run: cnn)")
    p.add_argument("--precisions", default="", help="a subset of bf16,fp32 (default: both; dry run: fp32)")
    p.add_argument("--results-dir", type=Path, default=ROOT / "results" / "gpu-suite",
                   help="where the run is stored (default: results/gpu-suite)")
    p.add_argument("--run-id", default="", help="the run's name (default: gpu-suite[-dry-run]-UTC time)")
    args, extra = p.parse_known_args(argv)
    if extra and extra[0] == "--":
        extra = extra[1:]
    elif extra:
        p.error(f"unknown arguments {' '.join(extra)}; put zoo bench flags after --")
    args.extra = tuple(extra)
    args.results_dir = args.results_dir.resolve()  # zoo bench runs in the repository root
    return args


def settings_from(args: argparse.Namespace) -> SuiteSettings:
    """:data:`GPU` or :data:`DRY_RUN`, narrowed by ``--frameworks``, ``--models``, ``--precisions``."""
    settings = DRY_RUN if args.dry_run else GPU

    def items(text: str) -> tuple[str, ...]:
        return tuple(s.strip() for s in text.split(",") if s.strip())

    frameworks = items(args.frameworks) or settings.frameworks
    unknown = sorted(set(frameworks) - set(FRAMEWORKS))
    if unknown:
        raise SystemExit(f"suite: --frameworks {','.join(unknown)} is not in the suite; "
                         f"choose from {','.join(FRAMEWORKS)}")
    return replace(settings, frameworks=frameworks, models=items(args.models) or settings.models,
                   precisions=items(args.precisions) or settings.precisions)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    settings = settings_from(args)
    run_id = args.run_id or time.strftime("gpu-suite" + ("-dry-run" if args.dry_run else "") + "-%Y%m%dT%H%M%SZ",
                                          time.gmtime())
    bench = bench_command(settings, args.results_dir, run_id, args.extra)
    report = report_command(args.results_dir, run_id)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    if args.dry_run:
        env["CUDA_VISIBLE_DEVICES"] = ""  # the dry run stays on the CPU even on a GPU machine
    print(f"suite: {settings.cells} cells ({len(settings.frameworks)} frameworks x {len(settings.models)} models x "
          f"{len(settings.precisions)} precisions) on {settings.device}, task {settings.task}, batch "
          f"{settings.batch_size}, random weights" + (" (dry run on the CPU)" if args.dry_run else ""))
    for command in (bench, report):
        print("$ zoo " + shlex.join(command[3:]), flush=True)
    if args.print_only:
        return 0
    if not args.dry_run:
        row, why = gpu_info.visible_gpu()
        if row is None:
            print(f"suite: no usable GPU: {why}. On a machine without one run `benchmarks/gpu/suite.sh --dry-run`",
                  file=sys.stderr)
            return 1
        print(f"suite: GPU {row.index}: {row.name} ({row.memory_total_mib} MiB, driver {row.driver})", flush=True)
    started = time.perf_counter()
    bench_rc = subprocess.run(bench, env=env, cwd=ROOT).returncode
    run_dir = args.results_dir / run_id
    if not (run_dir / "results.jsonl").exists():
        print(f"suite: zoo bench stored no results (exit status {bench_rc}); see its messages above", file=sys.stderr)
        return bench_rc or 1
    report_rc = subprocess.run(report, env=env, cwd=ROOT).returncode
    text, all_ok = summary(run_dir)
    print(text)
    print(f"suite: {time.perf_counter() - started:.0f} s; results in {run_dir}"
          + (DRY_NOTE if args.dry_run else ""))
    return bench_rc or report_rc or (0 if all_ok else 1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
