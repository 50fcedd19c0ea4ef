"""``zoo compare --confirm``: measure again the cells a comparison could not settle.

A flagged cell (a gating metric ``regressed`` or ``unstable``) of the candidate is run again with
more worker processes (``repeats``), from this install, and — where the baseline was measured by
this same install too — the baseline's cell is run again right after it, so both sides sample the
same spell of the machine (interleaved, A then B, round by round). The comparison of the new
measurements replaces the old verdicts of those cells. It stops when nothing gating is flagged,
or after ``rounds`` rounds; a cell still unstable then is *unsettled*, and fails the gate unless
the user allows it.

Re-running the candidate only makes sense when this install *is* the candidate: a candidate
measured by another commit or other plugin versions is refused, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import pandas as pd

from zoo.plugin_host import PluginHost

from harness.analysis.compare import CompareSettings, Comparison, NotComparable, compare_results
from harness.measure import machine
from harness.plugins.registry import Registry
from harness.results.loader import load_results
from harness.results.manifest import read_manifest
from harness.results.store import MANIFEST_FILE
from harness.run.orchestrate import run_bench
from harness.run.resume import request_from_manifest

FLAGGED = ("regressed", "unstable")


@dataclass
class Confirmation:
    """The comparison after confirming, the runs made for it, and what did not settle."""

    comparison: Comparison
    runs: list[str] = field(default_factory=list)  # the confirmation run directories, in order
    unsettled: list[str] = field(default_factory=list)  # cell keys still unstable in a gating metric


def _same_install(manifest: dict) -> str:
    """Why this install cannot re-run a run measured with ``manifest`` (``""``: it can)."""
    here = machine.harness_commit()
    there = manifest.get("harness", {})
    same = here.get("commit") is not None and all(there.get(k) == here.get(k) for k in ("commit", "dirty", "diff_sha256"))
    if not same:
        return (f"it was measured by harness commit {str(there.get('commit'))[:12]}{' with changes' if there.get('dirty') else ''}"
                f", this install is {str(here.get('commit'))[:12]}{' with changes' if here.get('dirty') else ''}")
    if manifest.get("machine", {}).get("fingerprint") != machine.fingerprint():
        return "it was measured on another machine"
    return ""


def _flagged(cmp: Comparison, fail_on: Sequence[str]) -> list[str]:
    rows = cmp.rows[cmp.rows["verdict"].isin(FLAGGED) & cmp.rows["metric"].isin(list(fail_on))]
    return sorted(set(rows["cell_key"]))


def _rerun(run_dir: Path, keys: Sequence[str], repeats: int, suffix: str, registry: Registry,
           host: PluginHost) -> Path:
    """The cells ``keys`` of the run in ``run_dir`` measured again into a sibling run."""
    request = request_from_manifest(run_dir.parent, run_dir.name)
    new_id = f"{run_dir.name}.{suffix}"
    request = replace(request, run_id=new_id, only_cells=tuple(keys), repeats=repeats, trigger="confirm")
    outcome = run_bench(request, registry, host)
    if outcome.interrupted or outcome.store_error:
        raise KeyboardInterrupt if outcome.interrupted else OSError(outcome.store_error)
    return outcome.store.dir


def confirm(baseline: Path, candidate: Path, cmp: Comparison, settings: CompareSettings, fail_on: Sequence[str],
            registry: Registry, host: PluginHost, repeats: int = 3, rounds: int = 2) -> Confirmation:
    """Re-measure the flagged cells of ``cmp`` until they settle or ``rounds`` run out."""
    if repeats < 2 or rounds < 1:
        raise ValueError("--confirm-repeats must be at least 2 and --confirm-rounds at least 1")
    c_manifest = read_manifest(Path(candidate) / MANIFEST_FILE)
    why = _same_install(c_manifest)
    if why:
        raise NotComparable(f"--confirm re-runs the candidate's cells from this install, but {why}; check out and "
                            "install the candidate's code, or compare without --confirm")
    b_manifest = read_manifest(Path(baseline) / MANIFEST_FILE)
    rerun_baseline = not _same_install(b_manifest)
    out = Confirmation(cmp)
    for k in range(rounds):
        keys = _flagged(out.comparison, fail_on)
        if not keys:
            break
        c_dir = _rerun(candidate, keys, repeats, f"confirm{k + 1}", registry, host)
        b_dir = _rerun(baseline, keys, repeats, f"confirm{k + 1}", registry, host) if rerun_baseline else baseline
        out.runs += [str(c_dir)] + ([str(b_dir)] if rerun_baseline else [])
        names = list(settings.rules)
        again = compare_results(load_results([b_dir], names), load_results([c_dir], names), settings)
        redone = again.rows[again.rows["cell_key"].isin(keys)]
        rest = out.comparison.rows[~out.comparison.rows["cell_key"].isin(keys)]
        rows = pd.concat([rest, redone.assign(note=redone["note"].where(redone["note"] != "", f"confirmed ({k + 1})"))],
                         ignore_index=True)
        out.comparison = replace(out.comparison, rows=rows, warnings=out.comparison.warnings + again.warnings)
    still = out.comparison.rows
    out.unsettled = sorted(set(still[(still["verdict"] == "unstable") & still["metric"].isin(list(fail_on))]
                               ["cell_key"]))
    return out
