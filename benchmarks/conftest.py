"""Large results directories for the harness's own micro-benchmarks, built from the real recorded
runs in tests/data/results: each recorded cell is repeated under new model names (keeping its real
samples) until a run has the wanted number of cells."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
RECORDED = ROOT / "tests" / "data" / "results"


def scale_timings(record: dict, factor: float) -> dict:
    """The record as if the cell ran ``factor`` times slower (samples and medians)."""
    for name in ("train_throughput", "infer_throughput", "latency_p50_ms"):
        m = record["metrics"].get(name)
        if m and m["samples"]:
            s = np.asarray(m["samples"], float)
            m["samples"] = (s / factor if name.endswith("throughput") else s * factor).tolist()
            m["value"] = float(np.median(m["samples"]))
    return record


def build_run(src: Path, dst: Path, cells: int, slow_every: int = 0) -> Path:
    """``dst`` = run ``src`` with ``cells`` cells; every ``slow_every``-th one is 10 % slower."""
    dst.mkdir(parents=True)
    manifest = json.loads((src / "manifest.json").read_text())
    records = [json.loads(line) for line in (src / "results.jsonl").read_text().splitlines()]
    lines, keys = [], []
    for i in range(cells):
        rec = json.loads(json.dumps(records[i % len(records)]))
        rec["cell"]["model"] = f"m{i // len(records)}"
        rec["cell"]["key"] = key = "-".join([rec["cell"]["framework"], rec["cell"]["model"], rec["cell"]["key"].split("-", 2)[2]])
        if slow_every and i % slow_every == 0:
            scale_timings(rec, 1.10)
        lines.append(json.dumps(rec))
        keys.append(key)
    (dst / "results.jsonl").write_text("\n".join(lines) + "\n")
    (dst / "manifest.json").write_text(json.dumps({**manifest, "run_id": dst.name, "cells": keys}))
    return dst


@pytest.fixture(scope="session")
def big_runs(tmp_path_factory) -> tuple[Path, Path]:
    """(baseline, candidate) with 10,000 cells each; 1 % of the candidate's cells are slower."""
    root = tmp_path_factory.mktemp("big")
    return (build_run(RECORDED / "aa-1", root / "base", 10_000),
            build_run(RECORDED / "aa-2", root / "cand", 10_000, slow_every=100))
