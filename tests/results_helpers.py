"""Shared by the results tests: the checked-in recorded runs, a live run, and ways to
derive variants of real records (a slowed-down cell, hostile names) without inventing samples."""

from __future__ import annotations

import contextlib
import functools
import io
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from conftest import run_zoo

#: Two real A/A runs of one configuration (torch, jax, tf; mlp; digits; 1 epoch; 10 windows; 1 thread),
#: recorded interleaved on the project's 2-core development VM so that both see the same machine:
#: ``zoo bench -f FW -m mlp --epochs 1 --windows 10 --threads 1 --run-id aa-SIDE-FW`` for FW in torch,
#: jax, tf and SIDE in 1, 2 alternately, each side's three records then joined into one run
#: directory (manifest of its first part, cell list of all). Recorded while the VM's one-minute load
#: average was below 2.5; the torch cell is still unstable (spread over 10 %), jax and tf are not.
RECORDED = Path(__file__).parent / "data" / "results"
TIMED = ("train_throughput", "infer_throughput", "latency_p50_ms")
HOSTILE = '<img src=x onerror=alert(1)>|*x*_[l](http://e)'


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def zoo(*args: str) -> Result:
    """Run ``zoo ARGS`` in this process (the same ``main`` the console script calls): the commands
    that only read stored runs need no subprocess, and starting Python is most of their time."""
    from harness.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
    return Result(code, out.getvalue(), err.getvalue())


@functools.lru_cache(maxsize=None)
def live_run() -> Path:
    """A results directory with one real run (torch, mlp, 1 epoch), made once per test session."""
    root = Path(tempfile.mkdtemp(prefix="zoo-live-"))
    proc = run_zoo("bench", "-f", "torch", "-m", "mlp", "--epochs", "1", "--results-dir", str(root),
                   "--run-id", "live-1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root


def copy_run(src: Path, dst: Path, edit: Callable[[dict], dict | None] = lambda r: r,
             manifest: Callable[[dict], dict] = lambda m: m) -> Path:
    """Copy a run directory as run ``dst.name``, passing each record (and the manifest) through
    ``edit``; a record for which ``edit`` returns None is dropped."""
    dst.mkdir(parents=True, exist_ok=True)
    m = manifest({**json.loads((src / "manifest.json").read_text()), "run_id": dst.name})
    (dst / "manifest.json").write_text(json.dumps(m, indent=2))
    lines = []
    for line in (src / "results.jsonl").read_text().splitlines():
        rec = edit({**json.loads(line), "run_id": dst.name})
        if rec is not None:
            lines.append(json.dumps(rec))
    (dst / "results.jsonl").write_text("\n".join(lines) + "\n")
    return dst


def scale_timings(record: dict, factor: float, metrics=TIMED) -> dict:
    """The record as if the cell ran ``factor`` times slower: throughput samples divided, latency
    samples multiplied, aggregates recomputed the way the worker computes them (the median)."""
    for name in metrics:
        m = record["metrics"].get(name)
        if not m or not m["samples"]:
            continue
        s = np.asarray(m["samples"], float)
        s = s / factor if name.endswith("throughput") else s * factor
        m["samples"] = s.tolist()
        m["value"] = float(np.median(s))
    return record


def spread_samples(record: dict, metric: str, cv: float) -> dict:
    """Spread a metric's real samples around their median so that their robust CV is ``cv``."""
    m = record["metrics"][metric]
    s = np.asarray(m["samples"], float)
    med = np.median(s)
    z = np.linspace(-1.5, 1.5, s.size)  # evenly spread standard scores: MAD of them is ~0.75
    mad_z = np.median(np.abs(z - np.median(z)))
    m["samples"] = (med * (1 + cv * z / (1.4826 * mad_z))).tolist()
    m["value"] = float(np.median(m["samples"]))
    return record


def fresh_copy(tmp: Path) -> Path:
    """The recorded results directory copied under ``tmp``."""
    return Path(shutil.copytree(RECORDED, tmp / "results"))


def with_metric(record: dict, name: str, unit: str, direction: str, value: float | None = None,
                samples=()) -> dict:
    """The record with one more metric in the layout the worker writes (from samples: value = their
    median, with spread), as a plugin's tracker would have recorded it."""
    from dataclasses import asdict

    from harness.results.records import Metric

    m = Metric.from_samples(list(samples), unit, direction) if len(samples) else Metric(float(value), unit, direction)
    record["metrics"][name] = {**asdict(m), "samples": list(m.samples)}
    return record


def plugin_module(directory: Path, name: str, source: str, monkeypatch) -> str:
    """Write the plugin module ``name`` into ``directory`` and make it importable for this test, for
    ``zoo -p NAME`` (the module is forgotten again when the test ends)."""
    import importlib
    import sys
    import textwrap

    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(directory))
    monkeypatch.delitem(sys.modules, name, raising=False)
    importlib.invalidate_caches()
    return name
