"""One place per concept, checked on the source of harness, zoo and the plugins: the contract
checks live in zoo.checks, the thread-pool environment in zoo.threads, number formatting in
harness.analysis.formatting, the metric definitions in the catalogue. A copy elsewhere fails."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [p for d in ("harness", "zoo", "plugins", "examples") for p in (ROOT / d).rglob("*.py")
           if "tests" not in p.relative_to(ROOT).parts and "templates" not in p.parts]


def _defined(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}


def _where(pattern: str) -> list[str]:
    rx = re.compile(pattern)
    return sorted(str(p.relative_to(ROOT)) for p in SOURCES if any(rx.fullmatch(n) for n in _defined(p)))


def test_contract_checks_are_defined_once_in_zoo_checks():
    assert _where(r"ContractViolation") == ["zoo/checks.py"]
    assert _where(r"check_(logits|losses|step_count|epoch_ends|exported_weights|task_inputs|task_data)") == [
        "zoo/checks.py"]


def test_the_thread_environment_is_built_in_one_place():
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    spelled = sorted(str(p.relative_to(ROOT)) for p in SOURCES
                     if any(f'"{n}"' in p.read_text() or f"'{n}'" in p.read_text() for n in names))
    assert spelled == ["zoo/threads.py"], spelled


def test_number_formatting_lives_in_analysis_formatting():
    assert _where(r"fmt_(value|cv|ratio|change|ci|q|noise)") == ["harness/analysis/formatting.py"]


def test_metric_units_are_not_spelled_out_where_metrics_are_made():
    """The worker and its trackers name metrics; the catalogue gives their units."""
    offenders = []
    for path in (ROOT / "harness" / "worker").rglob("*.py"):
        for call in re.finditer(r"Metric(?:\.from_samples)?\(([^)]*)\)", path.read_text()):
            if re.search(r'"(samples/s|ms|s|MiB|%|GFLOP/s|count)"', call.group(1)):
                offenders.append(f"{path.relative_to(ROOT)}: {call.group(0)[:60]}")
    assert not offenders, offenders
