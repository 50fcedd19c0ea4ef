"""The regression rule: which changes between two runs are real.

Only like is compared with like: the two runs must share the machine fingerprint (which holds
the GPU model and driver; a GPU model mismatch is named as such), and rows pair
cells with the same cell key. For each metric whose definition in the metric catalogue has a
compare :class:`~zoo.metrics.Rule` (``catalogue.compare_rules()``):

1. ``change`` is ``candidate / baseline - 1`` (relative rules) or ``candidate - baseline``
   (absolute rules: accuracy, in points), from the records' aggregate values.
2. With raw samples on both sides (at least 2 each) the samples decide. A cell is ``unstable``
   when any of its sampled metrics, in either run, has a spread above ``max_cv`` (the larger of
   the MAD- and IQR-based robust CVs); then all its sampled metrics are ``unstable`` — except a
   change whose whole confidence interval lies past :data:`WIDE_MARGIN` times the threshold and
   :data:`NOISE_MARGIN` times that spread: it is ``regressed``/``improved`` however noisy the
   cell (noise cannot hide a change larger than any noise seen). Otherwise a
   one-sided Mann-Whitney U test asks whether the candidate is beyond the threshold in either
   direction (the baseline samples shifted by the threshold; exact for up to 20 samples a side
   without ties, normal approximation with tie and continuity correction otherwise), giving
   ``p = 2 * min(p_worse, p_better)``. These p-values, across *all* cells and metrics tested, are
   adjusted with Benjamini-Hochberg; ``regressed``/``improved`` needs q below ``alpha``, else
   ``unchanged``. The reported interval is the distribution-free (Moses) confidence interval of
   the shift, on log values for relative rules.
3. A metric without samples (accuracy, peak memory; a sampled metric with one sample) has no test
   and no interval: the threshold alone decides.
4. With a history of earlier runs on the machine, a change must also exceed ``noise_k`` times the
   cell's run-to-run noise (see :func:`night_noise`).

Cells only in the candidate (or failed in the baseline) are ``new``; cells missing from the
candidate, failed there, or lacking the metric are ``missing``. docs/results.md explains why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from zoo.metrics import Rule

from harness.analysis.formatting import fmt_noise
from harness.measure.ranktests import benjamini_hochberg, mann_whitney, mann_whitney_rows, robust_cv_rows, sample_tests
from harness.results.loader import ResultSet
from harness.results.metrics import BUILTIN, Catalogue

__all__ = ["VERDICTS", "CompareSettings", "Comparison", "NotComparable", "Rule", "benjamini_hochberg",
           "compare_results", "gpu_software_warnings", "machine_mismatch", "mann_whitney", "mann_whitney_rows",
           "night_noise", "robust_cv_rows"]

VERDICTS = ("regressed", "improved", "unchanged", "unstable", "new", "missing")
#: An unstable cell's change still counts when its whole CI is beyond this many thresholds ...
WIDE_MARGIN = 3.0
#: ... and beyond this many times the larger robust CV of the two runs.
NOISE_MARGIN = 5.0
#: Request settings that change what is measured; a difference between the runs is warned about.
REQUEST_KEYS = ("threads", "epochs", "windows", "window_steps", "batch_size", "learning_rate", "seed", "warmup_cap")


def parse_threshold(text: str, catalogue: Catalogue = BUILTIN) -> tuple[str, float]:
    """``"train_throughput=3%"`` -> ``("train_throughput", 0.03)``; ``"accuracy=1"`` -> 1 point.
    A relative rule takes a percentage (``%``) or a fraction; an absolute one the metric's unit."""
    name, sep, value = text.partition("=")
    name, value = name.strip(), value.strip()
    if not sep or not name or not value:
        raise ValueError(f"--threshold {text!r}: write METRIC=VALUE, e.g. train_throughput=3% or accuracy=1")
    definition = catalogue.definition(name)
    rule = definition.compare
    if rule is None:
        raise ValueError(f"--threshold {text!r}: {name!r} is not a compared metric")
    percent = value.endswith("%")
    try:
        number = float(value.rstrip("%"))
    except ValueError:
        raise ValueError(f"--threshold {text!r}: {value!r} is not a number") from None
    if not np.isfinite(number) or number <= 0:
        raise ValueError(f"--threshold {text!r}: the threshold must be a finite number above 0")
    if rule.kind == "relative":
        return name, number / 100 if percent else number
    if percent and definition.unit != "%":
        raise ValueError(f"--threshold {text!r}: {name} is compared in {definition.unit or 'its unit'}, not percent")
    return name, number


@dataclass(frozen=True)
class CompareSettings:
    alpha: float = 0.05  # false discovery rate (Benjamini-Hochberg)
    max_cv: float = 0.10  # robust CV above which a sampled metric is "unstable"
    confidence: float = 0.95  # of the reported interval of the change
    noise_k: float = 3.0  # with a history: a change must exceed this many times the run-to-run noise
    catalogue: Catalogue = BUILTIN  # which metrics are compared, and their rules

    @property
    def rules(self) -> dict[str, Rule]:
        return self.catalogue.compare_rules()


class NotComparable(ValueError):
    """The two runs must not be compared (different machines, or not one run each)."""


# ---------------------------------------------------------------------------------------------
# verdicts over two runs


@dataclass
class Comparison:
    """One row per (cell, metric): values, change, CI, p and q, robust CVs, verdict, note."""

    rows: pd.DataFrame
    baseline: dict
    candidate: dict
    settings: CompareSettings
    warnings: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        c = self.rows["verdict"].value_counts()
        return {v: int(c.get(v, 0)) for v in VERDICTS}

    def shown(self, show_all: bool = False) -> pd.DataFrame:
        """The rows a rendering shows: everything but ``unchanged`` unless ``show_all``."""
        return self.rows if show_all else self.rows[self.rows["verdict"] != "unchanged"]

    def failures(self, fail_on: Sequence[str], fail_on_missing: bool = False) -> pd.DataFrame:
        """Rows that make the comparison fail: regressions in the gating metrics (and, if asked,
        missing cells)."""
        bad = (self.rows["verdict"] == "regressed") & self.rows["metric"].isin(list(fail_on))
        if fail_on_missing:
            bad |= self.rows["verdict"] == "missing"
        return self.rows[bad]


def _single_run(rs: ResultSet, side: str) -> dict:
    if len(rs.runs) != 1:
        raise NotComparable(f"the {side} must be exactly one run, got {len(rs.runs)}: "
                            f"{', '.join(rs.runs['run'])}")
    return rs.runs.iloc[0].to_dict()


def night_noise(history: ResultSet, fingerprint: str, exclude: Sequence[str] = (),
                rules: Mapping[str, Rule] | None = None, min_runs: int = 3) -> pd.DataFrame:
    """Run-to-run noise of each (cell, metric) over the runs of ``history`` on one machine (the
    runs named in ``exclude``, by label or path, left out): 1.4826 x the MAD of the aggregate
    values, relative to their median for relative rules (``rules``: default the built-in compare
    rules). Only pairs with at least ``min_runs`` ok runs; columns ``cell_key``, ``metric``,
    ``noise``, ``runs``."""
    rules = BUILTIN.compare_rules() if rules is None else rules
    where = history.runs["path"].map(lambda p: str(Path(p).resolve()))
    gone = set(exclude) | {str(Path(e).resolve()) for e in exclude}
    runs = history.runs[(history.runs["fingerprint"] == fingerprint) & ~history.runs["run"].isin(gone)
                        & ~where.isin(gone)]
    m = history.metrics[history.metrics["run"].isin(list(runs["run"])) & (history.metrics["status"] == "ok")
                        & history.metrics["metric"].isin(list(rules))]
    out = []
    for (key, metric), g in m.groupby(["cell_key", "metric"], sort=False):
        v = g["value"].dropna().to_numpy(float)
        if v.size < min_runs:
            continue
        med = float(np.median(v))
        mad = 1.4826 * float(np.median(np.abs(v - med)))
        noise = mad / abs(med) if rules[metric].kind == "relative" and med else mad
        out.append((key, metric, noise, v.size))
    return pd.DataFrame(out, columns=["cell_key", "metric", "noise", "runs"])


def machine_mismatch(b_run: Mapping, c_run: Mapping) -> str:
    """``""`` when the two runs (rows of ``ResultSet.runs``) come from one machine; otherwise what
    differs. Different GPU models are named first and loudly: a GPU run's timings are the GPU's."""
    b_gpu, c_gpu = b_run.get("gpu_model") or "", c_run.get("gpu_model") or ""
    machines = (f"fingerprint {b_run['fingerprint'] or 'unknown'}, {b_run['cpu_model']} vs "
                f"{c_run['fingerprint'] or 'unknown'}, {c_run['cpu_model']}")
    if b_gpu != c_gpu:
        return (f"GPU MISMATCH: the runs come from different machines with different GPUs "
                f"({b_gpu or 'no GPU recorded'} vs {c_gpu or 'no GPU recorded'}; {machines})")
    if b_run["fingerprint"] == c_run["fingerprint"]:
        return ""
    b_driver, c_driver = ((r.get("gpu") or {}).get("driver") for r in (b_run, c_run))
    driver = f"; GPU driver {b_driver} vs {c_driver}" if b_gpu and b_driver != c_driver else ""
    return f"the runs come from different machines ({machines}{driver})"


def gpu_software_warnings(b_run: Mapping, c_run: Mapping) -> list[str]:
    """A warning per CUDA runtime or cuDNN wheel that differs between the runs (these are not in
    the fingerprint: they belong to an environment, and still move GPU timings)."""
    b_sw, c_sw = b_run.get("gpu_software") or {}, c_run.get("gpu_software") or {}
    out = []
    for key in ("cuda_runtime", "cudnn"):
        if (b_run.get("gpu_model") or c_run.get("gpu_model")) and b_sw.get(key) != c_sw.get(key):
            out.append(f"the runs used different {key} wheels: {b_sw.get(key) or 'none'} vs {c_sw.get(key) or 'none'}")
    return out


def disturbance_warnings(side: str, run: ResultSet, disturbed: dict[str, list[str]]) -> list[str]:
    """What made a run's numbers suspect: a run-level probe that moved (``quiet: false`` in its
    manifest) and the cells its records mark disturbed (``disturbed``: cell key -> reasons)."""
    out = []
    if len(run.runs) and run.runs.iloc[0].get("quiet") is False:
        out.append(f"the {side} run was not quiet: its matmul probe moved by more than 5 % between its start and "
                   "end (manifest quietness), so its timings moved too")
    for key, reasons in sorted(disturbed.items()):
        out.append(f"{side} cell {key} was disturbed: {'; '.join(reasons)}")
    return out


def compare_results(baseline: ResultSet, candidate: ResultSet, settings: CompareSettings = CompareSettings(),
                    allow_machine_mismatch: bool = False, history: ResultSet | None = None) -> Comparison:
    """Compare a candidate run with a baseline run (see the module docstring for the rule).

    With ``history`` (earlier runs, e.g. the nightly results directory), a change must also exceed
    ``settings.noise_k`` times that cell's run-to-run noise (:func:`night_noise`), which within-run
    samples cannot show: a machine that is slower on some nights than others."""
    b_run, c_run = _single_run(baseline, "baseline"), _single_run(candidate, "candidate")
    warnings = []
    msg = machine_mismatch(b_run, c_run)
    if msg:
        if not allow_machine_mismatch:
            raise NotComparable(msg + ": their timings say nothing about the code; compare runs from one "
                                "machine, or pass --allow-machine-mismatch to compare anyway")
        warnings.append(msg)
    warnings += gpu_software_warnings(b_run, c_run)
    b_req, c_req = b_run.get("request") or {}, c_run.get("request") or {}
    for key in REQUEST_KEYS:
        if key in b_req and key in c_req and b_req[key] != c_req[key]:
            warnings.append(f"the runs were asked for different {key}: {b_req[key]!r} vs {c_req[key]!r}")
    rules = settings.rules
    names = list(rules)
    b = _ok_metrics(baseline.metrics, names)
    c = _ok_metrics(candidate.metrics, names)
    rows = b.merge(c, on=["cell_key", "metric"], how="outer", suffixes=("_b", "_c"))
    rows = _add_cell_notes(rows, baseline.cells, candidate.cells)
    if history is not None:
        noise = night_noise(history, c_run["fingerprint"], exclude=[c_run["run"], c_run["path"]], rules=rules)
        rows = rows.merge(noise, on=["cell_key", "metric"], how="left")
    else:
        rows["noise"], rows["runs"] = np.nan, 0
    return Comparison(_judge(rows, settings), b_run, c_run, settings, warnings)


_KEEP = ["cell_key", "framework", "model", "task", "metric", "value", "unit", "direction", "n", "samples"]


def _ok_metrics(metrics: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    m = metrics[(metrics["status"] == "ok") & metrics["metric"].isin(names) & metrics["value"].notna()]
    return m.assign(framework=m["label"])[_KEEP]  # shown as framework:variant


def _add_cell_notes(rows: pd.DataFrame, b_cells: pd.DataFrame, c_cells: pd.DataFrame) -> pd.DataFrame:
    for col in ("framework", "model", "task", "unit", "direction"):
        rows[col] = rows[f"{col}_b"].fillna(rows[f"{col}_c"])
    rows = rows.drop(columns=[f"{c}_{s}" for c in ("framework", "model", "task", "unit", "direction") for s in "bc"])
    for side, cells in (("b", b_cells), ("c", c_cells)):
        info = cells.drop_duplicates("cell_key", keep="last").set_index("cell_key")
        status = rows["cell_key"].map(info["status"])
        why = (info["status"] + " in " + info["error_phase"].fillna("") + ": " + info["error_message"].fillna(""))
        rows[f"status_{side}"] = status.fillna("absent")
        rows[f"why_{side}"] = rows["cell_key"].map(why).fillna("")
    return rows


def _judge(rows: pd.DataFrame, s: CompareSettings) -> pd.DataFrame:
    n = len(rows)
    metric, rules = rows["metric"], s.rules
    kind = metric.map({m: r.kind for m, r in rules.items()}).to_numpy()
    threshold = metric.map({m: r.threshold for m, r in rules.items()}).to_numpy(float)
    min_abs = metric.map({m: r.min_abs for m, r in rules.items()}).to_numpy(float)
    tested = metric.map({m: r.tested for m, r in rules.items()}).to_numpy(bool)
    vb, vc = rows["value_b"].to_numpy(float), rows["value_c"].to_numpy(float)
    both = ~np.isnan(vb) & ~np.isnan(vc)
    with np.errstate(divide="ignore", invalid="ignore"):
        change = np.where(kind == "relative", vc / vb - 1, vc - vb)
    sign = np.where(rows["direction"].to_numpy() == "lower", -1.0, 1.0)
    gain = change * sign  # > 0: better
    night = rows["noise"].to_numpy(float)
    within_night = np.abs(change) <= s.noise_k * night  # False where there is no history (NaN)
    big = (np.abs(change) > threshold) & (np.abs(vc - vb) > min_abs) & ~within_night
    nb, nc = rows["n_b"].fillna(0).to_numpy(int), rows["n_c"].fillna(0).to_numpy(int)
    sampled = both & tested & (nb >= 2) & (nc >= 2)
    idx = np.flatnonzero(sampled)
    stats = sample_tests(rows["samples_b"].to_numpy()[idx], rows["samples_c"].to_numpy()[idx],
                         kind[idx] == "relative", threshold[idx], s.confidence)
    full = {k: np.full(n, np.nan) for k in stats}
    for k, v in stats.items():
        full[k][idx] = v
    lower_better = sign < 0
    p_worse = np.where(lower_better, full["p_up"], full["p_down"])
    p_better = np.where(lower_better, full["p_down"], full["p_up"])
    p = np.minimum(1.0, 2 * np.fmin(p_worse, p_better))  # two-sided test of "beyond the threshold"
    cv = np.fmax(full["cv_baseline"], full["cv_candidate"])
    noisy = sampled & (cv > s.max_cv)
    # one disturbed timing metric makes the whole cell's timings untrustworthy in that comparison
    keys = rows["cell_key"].to_numpy()
    disturbed = pd.Series(noisy).groupby(keys).transform("any").to_numpy(bool)
    # a change whose whole interval lies far beyond the threshold and beyond any spread seen is real
    # however noisy the cell: noise cannot hide a 190x slowdown (the interval already carries the spread)
    near = np.fmin(np.abs(full["ci_low"]), np.abs(full["ci_high"]))
    one_side = np.sign(full["ci_low"]) == np.sign(full["ci_high"])
    decisive = sampled & disturbed & one_side & (near > WIDE_MARGIN * threshold) & (near > NOISE_MARGIN * cv)
    unstable = sampled & disturbed & ~decisive
    family = sampled & ~unstable & ~decisive
    q = np.full(n, np.nan)
    q[family] = benjamini_hochberg(p[family])
    significant = np.where(sampled & ~decisive, q < s.alpha, True)  # single values: the threshold alone decides
    worse = np.where(sampled, p_worse <= p_better, gain < 0)
    verdict = np.full(n, "unchanged", dtype=object)
    verdict[both & big & significant & worse] = "regressed"
    verdict[both & big & significant & ~worse] = "improved"
    verdict[unstable] = "unstable"
    only_c, only_b = np.isnan(vb) & ~np.isnan(vc), ~np.isnan(vb) & np.isnan(vc)
    verdict[only_c], verdict[only_b] = "new", "missing"
    note = np.full(n, "", dtype=object)
    note[noisy] = [f"robust CV {100 * v:.0f}% > {100 * s.max_cv:.0f}%" for v in cv[noisy]]
    cause = pd.Series(np.where(noisy, rows["metric"].to_numpy(), None)).groupby(keys).transform("first").to_numpy()
    via = unstable & ~noisy
    note[via] = [f"cell disturbed ({c} unstable)" for c in cause[via]]
    note[both & ~sampled] = "no samples: threshold only"
    note[decisive] = [f"spread is high, but the whole CI lies past {WIDE_MARGIN:g}x the threshold and {NOISE_MARGIN:g}x "
                      f"the spread (robust CV {100 * v:.0f}%)" for v in cv[decisive]]
    quiet = both & within_night & (np.abs(change) > threshold) & ~unstable
    note[quiet] = [f"within run-to-run noise (±{fmt_noise(v, k)} over {int(r)} runs)"
                   for v, k, r in zip(night[quiet], kind[quiet], rows["runs"].to_numpy()[quiet])]
    ns = family & big & ~significant
    note[ns] = [f"not significant (q={v:.2g})" for v in q[ns]]
    for mask, status, why, absent in ((only_b, "status_c", "why_c", "not in the candidate run"),
                                      (only_c, "status_b", "why_b", "not in the baseline run")):
        st, wh = rows[status].to_numpy(), rows[why].to_numpy()
        note[mask] = [w if x not in ("ok", "absent") else absent if x == "absent" else "metric not recorded"
                      for x, w in zip(st[mask], wh[mask])]
    out = pd.DataFrame({
        "cell_key": rows["cell_key"], "framework": rows["framework"], "model": rows["model"], "task": rows["task"],
        "metric": rows["metric"], "unit": rows["unit"], "direction": rows["direction"],
        "baseline": vb, "candidate": vc, "change": change, "kind": kind,
        "ci_low": full["ci_low"], "ci_high": full["ci_high"], "p_value": np.where(sampled, p, np.nan), "q_value": q,
        "cv_baseline": full["cv_baseline"], "cv_candidate": full["cv_candidate"],
        "n_baseline": nb, "n_candidate": nc, "verdict": verdict, "note": note,
    })
    order = {v: i for i, v in enumerate(VERDICTS)}
    out["_o"] = out["verdict"].map(order)
    return out.sort_values(["_o", "cell_key", "metric"], kind="stable").drop(columns="_o").reset_index(drop=True)
