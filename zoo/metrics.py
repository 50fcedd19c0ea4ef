"""Metric definitions: everything the host needs to know about one metric, in one record.

Every metric a benchmark cell records (``accuracy``, ``train_throughput``, a tracker's
``gpu_energy_j``, ...) is described by one :class:`MetricDef`: its unit, which direction is
better, how reports label and format it, how ``zoo compare`` judges a change and whether that
fails CI, how ``zoo history`` finds change points, whether the HTML report plots it and shows it
as a default column, which phase of a cell produces it, how ``zoo bench --repeats`` merges the
repeats' values, and how exports see it. Nothing else in zoo-bench lists metrics.

The host's own definitions live in ``harness.results.metrics``; a plugin adds definitions for
the metrics its trackers or adapters record with the ``zoo_metrics`` hook
(:func:`zoo.hookspecs.zoo_metrics`)::

    from zoo.metrics import MetricDef, Rule

    GPU_ENERGY = MetricDef("gpu_energy_j", "J", "lower", label="GPU energy J", format="{:,.1f}",
                           phase="train_throughput", compare=Rule("relative", 0.05, tested=False),
                           gates=True, plotted=True, column=95)

A metric a cell records without a definition is still stored, loaded and shown (by its name,
four significant digits, its record's unit and direction); it is not compared or plotted.

Importing this module imports no framework and nothing of the host.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

DIRECTIONS = ("higher", "lower", "info")
RULE_KINDS = ("relative", "absolute")
#: How ``zoo bench --repeats`` merges the repeats' values of one metric (see :class:`MetricDef`).
MERGES = ("auto", "pooled", "median", "first", "percentile", "scaled")
#: Timing conversions for pytest-benchmark exports (see :class:`Timing`).
TIMING_SAMPLES = ("rate", "ms", "s")
#: Phases that only a framework that trains has: their metrics are "n/a" for inference-only adapters.
TRAINING_PHASES = ("fine_tune", "train_throughput")

_NAME = re.compile(r"^[a-z*][a-z0-9_*]*$")


@dataclass(frozen=True)
class Rule:
    """How a change of one metric between two runs is judged.

    ``kind`` is ``"relative"`` (``threshold`` a fraction: 0.05 = 5 %) or ``"absolute"``
    (``threshold`` in the metric's unit, e.g. 0.5 accuracy points). For a relative rule the absolute
    change must also exceed ``min_abs`` (e.g. 32 MiB of memory). ``tested``: raw samples, when a
    record has them, are tested (Mann-Whitney) rather than the threshold alone deciding.
    """

    kind: str
    threshold: float
    min_abs: float = 0.0
    tested: bool = True

    def __post_init__(self) -> None:
        if self.kind not in RULE_KINDS:
            raise ValueError(f"Rule kind must be one of {', '.join(RULE_KINDS)}, got {self.kind!r}")
        if not (self.threshold >= 0 and self.min_abs >= 0):  # also refuses NaN
            raise ValueError(f"Rule threshold and min_abs must be >= 0, got {self.threshold!r}, {self.min_abs!r}")


#: The history rule of a metric that names none and has no compare rule.
DEFAULT_HISTORY_RULE = Rule("relative", 0.10, tested=False)


@dataclass(frozen=True)
class Timing:
    """How a metric's raw samples become pytest-benchmark rounds (seconds per operation).

    ``samples``: ``"rate"`` (operations per second, a throughput: 1/x), ``"ms"`` (milliseconds per
    operation: x/1000) or ``"s"`` (seconds per operation). ``operation`` names one operation
    (``"sample"``, ``"call"``); the export's unit is ``s/<operation>``.
    """

    samples: str
    operation: str = "sample"

    def __post_init__(self) -> None:
        if self.samples not in TIMING_SAMPLES:
            raise ValueError(f"Timing samples must be one of {', '.join(TIMING_SAMPLES)}, got {self.samples!r}")

    @property
    def unit(self) -> str:
        return f"s/{self.operation}"

    def seconds(self, samples: Any) -> Any:
        """Seconds per operation of ``samples`` (a float or a NumPy array)."""
        if self.samples == "rate":
            return 1.0 / samples
        if self.samples == "ms":
            return samples / 1000.0
        return samples


@dataclass(frozen=True)
class MetricDef:
    """The one description of a metric.

    :param name: the metric's name in records (``[a-z][a-z0-9_]*``). A name with ``*`` is a
        pattern (``framework_*_mb``) describing every metric it matches; a pattern cannot be
        compared, gate, be plotted or be a default column.
    :param unit: the unit the worker records (``"samples/s"``, ``"ms"``, ``"MiB"``, ``"%"``).
    :param direction: ``"higher"`` or ``"lower"`` is better, or ``"info"`` (neither).
    :param label: column title in reports (default: the name).
    :param format: :meth:`str.format` pattern of a value (default ``"{:.4g}"``).
    :param phase: the cell phase that produces it (``"prepare"``, ``"load"``, ``"fine_tune"``,
        ``"evaluate"``, ``"inference_throughput"``, ``"latency"``, ``"train_throughput"``,
        ``"memory"``, or a tracker's). Metrics of :data:`TRAINING_PHASES` show "n/a" for
        frameworks that cannot train.
    :param compare: how ``zoo compare`` judges a change; ``None``: not compared.
    :param gates: a regression fails ``zoo compare`` by default (part of ``--fail-on all``);
        needs ``compare``. Any compared metric can be named in ``--fail-on``.
    :param history: the change-point rule of ``zoo history`` (default: ``compare``, else
        :data:`DEFAULT_HISTORY_RULE`).
    :param plotted: the HTML report draws a bar chart (latest run) and a line chart (history).
    :param column: position among the default columns of ``zoo report``, ``zoo history``, the
        ``zoo bench`` table and the github-action-benchmark/Bencher exports (lower first; the
        built-ins use 10 to 90); ``None``: shown only when asked for with ``--metrics``.
    :param merge: how ``zoo bench --repeats`` merges the repeats' values: ``"pooled"`` (raw
        samples of all repeats pooled, when records have several; otherwise as ``"median"``),
        ``"median"`` (median of the repeats' values, which become its samples), ``"first"`` (the
        first repeat's, e.g. a curve), ``"percentile"`` (``merge_q`` percentile of the pooled raw
        samples of ``merge_of``), ``"scaled"`` (proportional to ``merge_of``: its merged value
        times the median ratio over the repeats), ``"auto"`` (``"first"`` for an ``info`` metric
        with samples, else ``"pooled"``).
    :param merge_of: the metric a ``"percentile"`` or ``"scaled"`` merge derives from.
    :param merge_q: the percentile (0 to 100) of a ``"percentile"`` merge.
    :param timing: the metric's samples are timings: exported to pytest-benchmark JSON.
    :param description: one line for documentation.
    """

    name: str
    unit: str = ""
    direction: str = "info"
    label: str = ""
    format: str = "{:.4g}"
    phase: str = ""
    compare: Rule | None = None
    gates: bool = False
    history: Rule | None = None
    plotted: bool = False
    column: int | None = None
    merge: str = "auto"
    merge_of: str = ""
    merge_q: float = 0.0
    timing: Timing | None = None
    description: str = ""

    def __post_init__(self) -> None:
        where = f"metric {self.name!r}"
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(f"{where}: a metric name is lower-case letters, digits and _ (and * in a pattern)")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"{where}: direction must be one of {', '.join(DIRECTIONS)}, got {self.direction!r}")
        try:
            self.format.format(1.5)
        except (ValueError, TypeError, IndexError, KeyError) as exc:
            raise ValueError(f"{where}: format {self.format!r} cannot format a number: {exc}") from None
        for attr in ("compare", "history"):
            if getattr(self, attr) is not None and not isinstance(getattr(self, attr), Rule):
                raise ValueError(f"{where}: {attr} must be a zoo.metrics.Rule or None")
        if self.timing is not None and not isinstance(self.timing, Timing):
            raise ValueError(f"{where}: timing must be a zoo.metrics.Timing or None")
        if self.gates and self.compare is None:
            raise ValueError(f"{where}: gates=True needs a compare rule")
        if self.merge not in MERGES:
            raise ValueError(f"{where}: merge must be one of {', '.join(MERGES)}, got {self.merge!r}")
        if self.merge in ("percentile", "scaled") and not self.merge_of:
            raise ValueError(f"{where}: merge={self.merge!r} needs merge_of (the metric it derives from)")
        if self.merge == "percentile" and not 0 < self.merge_q < 100:
            raise ValueError(f"{where}: merge='percentile' needs 0 < merge_q < 100, got {self.merge_q!r}")
        if self.is_pattern and (self.compare or self.gates or self.plotted or self.column is not None):
            raise ValueError(f"{where}: a pattern cannot be compared, gate, be plotted or be a default column")

    @property
    def is_pattern(self) -> bool:
        return "*" in self.name

    @property
    def title(self) -> str:
        """The column title: ``label``, or the name."""
        return self.label or self.name

    @property
    def history_rule(self) -> Rule:
        return self.history or self.compare or DEFAULT_HISTORY_RULE

    @property
    def needs_training(self) -> bool:
        """Only a framework that trains produces it."""
        return self.phase in TRAINING_PHASES


__all__ = ["DEFAULT_HISTORY_RULE", "DIRECTIONS", "MERGES", "MetricDef", "RULE_KINDS", "Rule", "TRAINING_PHASES",
           "Timing"]
