"""How numbers are written in every report format (terminal, Markdown, HTML, exports): one
function per kind of number, so the formats cannot drift apart. A metric's own format and label
come from its :class:`~zoo.metrics.MetricDef` (the metric catalogue)."""

from __future__ import annotations

import math

from zoo.metrics import MetricDef

ARROWS = {"higher": "↑", "lower": "↓"}


def fmt_value(definition: MetricDef, value: float | None) -> str:
    """A metric's value in its definition's format; "" for a missing one (None or NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return definition.format.format(value)


def heading(definition: MetricDef, direction: str = "") -> str:
    """The metric's row title: its label, with ↑/↓ for the direction that is better."""
    return f"{definition.title} {ARROWS.get(direction, '')}".strip()


def fmt_cv(cv: float | None) -> str:
    """`` ±N%`` for a spread (robust CV) of at least 0.5 %, else ""."""
    return f" ±{100 * cv:.0f}%" if cv is not None and cv == cv and cv >= 0.005 else ""


def fmt_ratio(ratio: float | None) -> str:
    if ratio is None or ratio != ratio:
        return ""
    return f"{ratio:.2f}×" if ratio < 100 else f"{ratio:,.0f}×"


def fmt_change(change: float, kind: str) -> str:
    """A change between runs: ``+5.0%`` (relative rules) or ``+0.60`` (absolute, in the unit)."""
    if change != change:
        return ""
    return f"{100 * change:+.1f}%" if kind == "relative" else f"{change:+.2f}"


def fmt_ci(lo: float, hi: float, kind: str) -> str:
    if lo != lo or hi != hi:
        return ""
    return f"[{fmt_change(lo, kind)}, {fmt_change(hi, kind)}]"


def fmt_q(q: float) -> str:
    return "" if q != q else (f"{q:.2g}" if q >= 1e-4 else "<1e-4")


def fmt_noise(noise: float, kind: str) -> str:
    return f"{100 * noise:.1f}%" if kind == "relative" else f"{noise:.2g}"
