"""The metric catalogue: the built-in metric definitions, and :class:`Catalogue`, the one place
reports, ``zoo compare``, ``zoo history``, exports and the ``--repeats`` merge read a metric's
unit, direction, label, format, rules, merge and export mapping from.

A command builds its catalogue from the plugin registry (``registry.catalogue``: the built-ins
plus every plugin's ``zoo_metrics`` definitions) and passes it down; library functions default to
:data:`BUILTIN`. The worker makes record metrics with :meth:`Catalogue.metric` so a metric's unit
and direction come from its definition, not from the call site.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from fnmatch import fnmatchcase
from typing import Iterable, Iterator, Sequence, Union

from zoo.metrics import MetricDef, Rule, Timing

from harness.measure.trackers.phases import PHASE_PREFIX, phase_metric
from harness.results.records import Metric

Value = Union[float, Sequence[float]]
_PLAIN = re.compile(r"^[a-z][a-z0-9_]*$")  # what a concrete MetricDef name may be

_SAMPLED = dict(merge="pooled")
_SINGLE = dict(merge="median")

#: The words each measured phase is described with.
_PHASE_WORDS = {"load": "load_pretrained", "fine_tune": "the fine-tune recipe",
                "inference_throughput": "the inference throughput phase", "latency": "the batch-1 latency phase",
                "train_throughput": "the training throughput phase"}
#: The per-phase GPU figures (one metric per measured phase, named by ``phase_metric``): the
#: allocator tracker, the NVML process tracker and the GPU clocks tracker write them.
_PER_PHASE_GPU = (
    ("device_peak_mb", "MiB", "lower", "the framework allocator's device peak during the phase; reset at its start "
     "where the adapter can (the record's details say since phase start or since process start)"),
    ("nvml_mb", "MiB", "lower", "peak GPU memory the driver (NVML) attributes to the worker process"),
    ("gpu_sm_clock_mhz", "MHz", "info", "median SM clock of the cell's GPU"),
    ("gpu_power_w", "W", "info", "mean board power of the cell's GPU"),
    ("gpu_power_peak_w", "W", "info", "largest board power sample of the cell's GPU"),
    ("gpu_energy_j", "J", "lower", "board energy of the cell's GPU: its power integrated over the phase"),
    ("gpu_temp_max_c", "C", "info", "highest temperature of the cell's GPU"),
    ("gpu_util_pct", "%", "info", "mean utilisation of the cell's GPU (share of time a kernel ran)"),
)

#: The host's metrics, in the order ``zoo compare`` lists its gates and the HTML report its charts.
BUILTIN_DEFINITIONS: tuple[MetricDef, ...] = (
    MetricDef("train_throughput", "samples/s", "higher", "train samples/s", "{:,.0f}", "train_throughput",
              Rule("relative", 0.05), gates=True, plotted=True, column=20, timing=Timing("rate", "sample"),
              description="training samples per second, one sample per timing window", **_SAMPLED),
    MetricDef("infer_throughput", "samples/s", "higher", "infer samples/s", "{:,.0f}", "inference_throughput",
              Rule("relative", 0.05), gates=True, plotted=True, column=30, timing=Timing("rate", "sample"),
              description="inference samples per second at the task's batch size, one sample per window",
              **_SAMPLED),
    MetricDef("latency_p50_ms", "ms", "lower", "b1 p50 ms", "{:.3f}", "latency", Rule("relative", 0.05),
              gates=True, plotted=True, column=40, timing=Timing("ms", "call"),
              description="median batch-1 forward pass; samples are every call", **_SAMPLED),
    MetricDef("peak_rss_mb", "MiB", "lower", "peak MiB", "{:,.0f}", "memory",
              Rule("relative", 0.02, min_abs=32.0, tested=False), gates=True, plotted=True, column=90,
              description="the largest per-phase peak working set over the post-data baseline", **_SINGLE),
    MetricDef("accuracy", "%", "higher", "accuracy %", "{:.1f}", "evaluate", Rule("absolute", 0.5, tested=False),
              gates=True, plotted=True, column=10, description="test accuracy after fine-tuning", **_SINGLE),
    MetricDef("train_utilisation", "%", "higher", "train util %", "{:.1f}", "train_throughput", column=50,
              merge="scaled", merge_of="train_throughput",
              description="achieved training FLOP/s as a share of the measured device peak"),
    MetricDef("compile_s", "s", "lower", "compile s", "{:.3f}", "fine_tune", column=60,
              history=Rule("relative", 0.10, min_abs=0.05, tested=False),
              description="fine_tune call start to the end of its first step, minus a steady step (tracing, optimiser, "
                          "staging, compilation)", **_SINGLE),
    MetricDef("time_to_accuracy_s", "s", "lower", "to target s", "{:.2f}", "fine_tune", column=70,
              description="training time until the task's target accuracy", **_SINGLE),
    MetricDef("fine_tune_wall_s", "s", "lower", "fine-tune s", "{:.2f}", "fine_tune", column=80,
              history=Rule("relative", 0.10, min_abs=0.1, tested=False),
              description="the task's recipe end to end on the training clock", **_SINGLE),
    MetricDef("first_step_s", "s", "lower", phase="fine_tune", description="the first training step", **_SINGLE),
    MetricDef("infer_compile_s", "s", "lower", phase="inference_throughput",
              description="the cell's first evaluate call, from its start to the end of its first step, minus a "
                          "steady step (building, tracing, compiling the forward)", **_SINGLE),
    MetricDef("accuracy_curve", "%", "info", phase="fine_tune", merge="first",
              description="accuracy after each epoch (samples); value: the last epoch's"),
    MetricDef("final_loss", "", "info", phase="fine_tune", description="mean loss of the last epoch", **_SINGLE),
    MetricDef("latency_p90_ms", "ms", "lower", phase="latency", merge="percentile", merge_of="latency_p50_ms",
              merge_q=90.0, description="90th percentile of the batch-1 calls"),
    MetricDef("latency_p99_ms", "ms", "lower", phase="latency", merge="percentile", merge_of="latency_p50_ms",
              merge_q=99.0, description="99th percentile of the batch-1 calls"),
    MetricDef("train_gflops", "GFLOP/s", "higher", phase="train_throughput", merge="scaled",
              merge_of="train_throughput", description="achieved training FLOP/s (analytic FLOPs per sample)"),
    MetricDef("import_s", "s", "lower", phase="prepare", description="the adapter's prepare() and info()",
              **_SINGLE),
    MetricDef("load_s", "s", "lower", phase="load", description="load_pretrained: weights into the framework",
              **_SINGLE),
    MetricDef("baseline_rss_mb", "MiB", "info", phase="memory",
              description="resident memory after prepare() and the task's data, before load", **_SINGLE),
    MetricDef("process_peak_mb", "MiB", "lower", phase="memory",
              description="the worker process's own peak resident set (imports, data and all)", **_SINGLE),
    MetricDef("load_peak_mb", "MiB", "lower", phase="load", description="peak working set of load_pretrained over "
              "the baseline", **_SINGLE),
    MetricDef("fine_tune_peak_mb", "MiB", "lower", phase="fine_tune",
              description="peak working set of the fine-tune recipe over the baseline", **_SINGLE),
    MetricDef("inference_peak_mb", "MiB", "lower", phase="inference_throughput",
              description="peak working set of the inference throughput phase over the baseline", **_SINGLE),
    MetricDef("latency_peak_mb", "MiB", "lower", phase="latency",
              description="peak working set of the batch-1 latency phase over the baseline", **_SINGLE),
    MetricDef("training_peak_mb", "MiB", "lower", phase="train_throughput",
              description="peak working set of the training throughput phase over the baseline", **_SINGLE),
    *(MetricDef(phase_metric(phase, what), unit, direction, phase=phase, description=f"{text} ({_PHASE_WORDS[phase]})",
                **_SINGLE)
      for what, unit, direction, text in _PER_PHASE_GPU for phase in PHASE_PREFIX),
    MetricDef("nvml_peak_mb", "MiB", "lower", phase="memory",
              description="the largest per-phase GPU memory the driver (NVML) attributes to the worker process",
              **_SINGLE),
    MetricDef("framework_*_mb", "MiB", "lower", phase="memory",
              description="the framework allocator's statistics (framework_peak_mb, ...)", **_SINGLE),
    MetricDef("parameters", "count", "info", phase="memory", description="parameters of the model", **_SINGLE),
    MetricDef("trainable_parameters", "count", "info", phase="memory",
              description="parameters the freeze policy lets train", **_SINGLE),
    MetricDef("param_mb", "MiB", "info", phase="memory", description="float32 parameter size", **_SINGLE),
    MetricDef("optimizer_state_mb", "MiB", "info", phase="memory", description="Adam state of the trained parameters",
              **_SINGLE),
)


class Catalogue(Mapping):
    """Metric definitions by name (``catalogue["accuracy"]``; patterns such as ``framework_*_mb``
    match too). :meth:`definition` never fails: an unknown name gets a plain fallback definition.
    Immutable: :meth:`extended` returns a new catalogue."""

    def __init__(self, definitions: Iterable[MetricDef] = ()):
        self._exact: dict[str, MetricDef] = {}
        self._patterns: list[MetricDef] = []
        for d in definitions:
            if not isinstance(d, MetricDef):
                raise TypeError(f"{d!r} is not a zoo.metrics.MetricDef")
            if d.name in self._exact or any(p.name == d.name for p in self._patterns):
                raise ValueError(f"metric {d.name!r} is defined twice")
            if d.is_pattern:
                self._patterns.append(d)
            else:
                self._exact[d.name] = d

    # --- the mapping

    def __getitem__(self, name: str) -> MetricDef:
        d = self._exact.get(name)
        if d is not None:
            return d
        for p in self._patterns:
            if fnmatchcase(name, p.name) and _plain_name(name):
                return replace(p, name=name)
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._exact or any(fnmatchcase(name, p.name) for p in self._patterns))

    def __iter__(self) -> Iterator[str]:
        return iter(self._exact)

    def __len__(self) -> int:
        return len(self._exact)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Catalogue) and self.definitions == other.definitions

    def __hash__(self) -> int:
        return hash(self.definitions)

    def __repr__(self) -> str:
        return f"Catalogue({len(self._exact)} metrics, {len(self._patterns)} patterns)"

    @property
    def definitions(self) -> tuple[MetricDef, ...]:
        """Every definition, patterns included, in order."""
        return (*self._exact.values(), *self._patterns)

    def definition(self, name: str) -> MetricDef:
        """The definition of ``name``; for an unknown name, a fallback (label = name, ``{:.4g}``,
        not compared or plotted, merged by its samples)."""
        try:
            return self[name]
        except KeyError:
            # a name no definition could have (an old record's) is still shown by its name
            return MetricDef(name) if _plain_name(name) else MetricDef("unnamed", label=name)

    def with_thresholds(self, thresholds: Mapping[str, float]) -> "Catalogue":
        """A catalogue whose compare rules use the user's thresholds (``zoo compare --threshold``):
        a fraction for relative rules (0.03 = 3 %), the metric's unit for absolute ones."""
        unknown = [n for n in thresholds if n not in self or self[n].compare is None]
        if unknown:
            compared = ", ".join(n for n, d in self._exact.items() if d.compare is not None)
            raise ValueError(f"--threshold: {', '.join(map(repr, unknown))} is not a compared metric; choose from "
                             f"{compared}")
        return Catalogue(replace(d, compare=replace(d.compare, threshold=thresholds[d.name]))
                         if d.name in thresholds else d for d in self.definitions)

    def extended(self, definitions: Iterable[MetricDef]) -> "Catalogue":
        """A catalogue with ``definitions`` added (a name defined twice raises ``ValueError``)."""
        return Catalogue((*self.definitions, *definitions))

    # --- what each consumer asks

    def columns(self) -> tuple[str, ...]:
        """The default columns of reports, history, the ``zoo bench`` table and the direction-split exports."""
        shown = [d for d in self._exact.values() if d.column is not None]
        return tuple(d.name for d in sorted(shown, key=lambda d: d.column))

    def plotted(self) -> tuple[str, ...]:
        return tuple(d.name for d in self._exact.values() if d.plotted)

    def gates(self) -> tuple[str, ...]:
        """The metrics ``zoo compare --fail-on all`` (the default) gates on."""
        return tuple(d.name for d in self._exact.values() if d.gates)

    def compare_rules(self) -> dict[str, Rule]:
        """The compared metrics and their rules (any of them may be named in ``--fail-on``)."""
        return {d.name: d.compare for d in self._exact.values() if d.compare is not None}

    def timings(self) -> dict[str, Timing]:
        """Metrics exported as pytest-benchmark timings."""
        return {d.name: d.timing for d in self._exact.values() if d.timing is not None}

    def shown_not_applicable(self, name: str, not_applicable: Sequence[str]) -> bool:
        """Whether a missing ``name`` is "n/a" for a record whose ``not_applicable`` phases are these
        (a training metric of an inference-only framework), rather than just not measured."""
        d = self.definition(name)
        return bool(d.phase) and (d.phase in not_applicable or (d.needs_training and "fine_tune" in not_applicable))

    # --- record metrics, for the worker

    def metric(self, name: str, value: Value) -> Metric:
        """A record :class:`~harness.results.records.Metric` with the definition's unit and
        direction: ``value`` is one number, or raw samples (summarised, and kept)."""
        if isinstance(value, (int, float)):
            d = self.definition(name)
            return Metric(float(value), d.unit, d.direction)
        return self.from_samples(name, value)

    def from_samples(self, name: str, samples: Sequence[float]) -> Metric:
        d = self.definition(name)
        return Metric.from_samples([float(v) for v in samples], d.unit, d.direction)


def _plain_name(name: str) -> bool:
    return bool(_PLAIN.match(name))


#: The built-in catalogue: what a command gets with no plugin definitions.
BUILTIN = Catalogue(BUILTIN_DEFINITIONS)
