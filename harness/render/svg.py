"""Small inline-SVG charts for the HTML report: no JavaScript, no external files, every label
escaped. Bars and points carry a ``<title>`` so a browser shows the exact value on hover."""

from __future__ import annotations

import math
from html import escape
from typing import Mapping, Sequence

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac")


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def nice_ticks(top: float, n: int = 5) -> list[float]:
    if not top > 0 or not math.isfinite(top):
        return [0.0, 1.0]
    raw = top / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    return [i * step for i in range(int(math.ceil(top / step)) + 1)]


def fmt_tick(v: float) -> str:
    if v >= 1e6:
        return f"{v / 1e6:g}M"
    if v >= 1e3:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


Styles = Mapping[str, tuple[str, str]]  # series name -> (colour, SVG dash pattern or "")


def _style(styles: Styles | None, name: str, i: int) -> tuple[str, str]:
    return (styles or {}).get(name, (color(i), ""))


def _legend(series: Sequence[str], x: float, y: float, styles: Styles | None = None) -> list[str]:
    out = []
    for i, name in enumerate(series):
        fill, dash = _style(styles, name, i)
        yy = y + 16 * i
        out.append(f'<line x1="{x:.1f}" x2="{x + 10:.1f}" y1="{yy + 5:.1f}" y2="{yy + 5:.1f}" stroke="{fill}" '
                   f'stroke-width="6" stroke-dasharray="{dash}"/>'
                   f'<text x="{x + 14:.1f}" y="{yy + 9:.1f}" class="legend">{escape(name)}</text>')
    return out


def _frame(width: int, height: int, title: str, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">'
            f'<title>{escape(title)}</title>'
            f'<text x="8" y="16" class="chart-title">{escape(title)}</text>' + "".join(body) + "</svg>")


def _axis(ticks: list[float], left: float, top: float, plot_w: float, plot_h: float, unit: str) -> list[str]:
    out = []
    for t in ticks:
        y = top + plot_h - plot_h * t / ticks[-1]
        out.append(f'<line x1="{left:.1f}" x2="{left + plot_w:.1f}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                   f'<text x="{left - 4:.1f}" y="{y + 4:.1f}" class="tick" text-anchor="end">{fmt_tick(t)}</text>')
    out.append(f'<text x="{left - 4:.1f}" y="{top - 6:.1f}" class="tick" text-anchor="end">{escape(unit)}</text>')
    return out


def bar_chart(title: str, groups: Sequence[str], series: Sequence[str],
              values: Mapping[tuple[str, str], tuple[float, float, float]], unit: str = "",
              styles: Styles | None = None) -> str:
    """Grouped bars: one group per entry of ``groups``, one bar per ``series`` inside it.
    ``values[(group, series)] = (value, low, high)``; low/high draw an interval (NaN: none)."""
    left, top, legend_w = 64.0, 34.0, 120.0
    group_w = max(60.0, 14.0 * len(series) + 24)
    plot_w, plot_h = group_w * max(1, len(groups)), 170.0
    width, height = int(left + plot_w + legend_w), int(top + plot_h + 40)
    finite = [x for v in values.values() for x in v if x == x and math.isfinite(x)]
    ticks = nice_ticks(max(finite, default=1.0))
    scale = plot_h / ticks[-1]
    body = _axis(ticks, left, top, plot_w, plot_h, unit)
    bar_w = (group_w - 24) / max(1, len(series))
    for gi, group in enumerate(groups):
        gx = left + gi * group_w + 12
        body.append(f'<text x="{gx + (group_w - 24) / 2:.1f}" y="{top + plot_h + 16:.1f}" class="tick" '
                    f'text-anchor="middle">{escape(group)}</text>')
        for si, name in enumerate(series):
            v = values.get((group, name))
            if v is None or not (v[0] == v[0]):
                continue
            value, lo, hi = v
            x, h = gx + si * bar_w, max(0.0, value) * scale
            tip = f"{name}, {group}: {value:,.4g} {unit}" + (f" (CI {lo:,.4g} to {hi:,.4g})" if lo == lo else "")
            body.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w - 2:.1f}" height="{h:.1f}" '
                        f'fill="{_style(styles, name, si)[0]}"><title>{escape(tip)}</title></rect>')
            if lo == lo and hi == hi and hi > lo:
                cx = x + (bar_w - 2) / 2
                y1, y2 = top + plot_h - max(0.0, lo) * scale, top + plot_h - min(hi, ticks[-1]) * scale
                body.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y1:.1f}" y2="{y2:.1f}" class="err"/>')
    body += _legend(series, left + plot_w + 12, top, styles)
    return _frame(width, height, title, body)


def line_chart(title: str, xs: Sequence[str], series: Mapping[str, Sequence[float]], unit: str = "",
               marks: Mapping[tuple[str, int], str] | None = None, styles: Styles | None = None) -> str:
    """One line per series over the x labels (runs); NaN leaves a gap. ``marks[(series, i)]`` is
    "better" or "worse": a change point drawn as a triangle at that point."""
    marks = marks or {}
    left, top, legend_w = 64.0, 34.0, 260.0
    plot_w, plot_h = max(240.0, 48.0 * len(xs)), 170.0
    width, height = int(left + plot_w + legend_w), int(top + plot_h + 56)
    finite = [v for ys in series.values() for v in ys if v == v and math.isfinite(v)]
    ticks = nice_ticks(max(finite, default=1.0))
    scale = plot_h / ticks[-1]
    step = plot_w / max(1, len(xs) - 1) if len(xs) > 1 else 0.0
    body = _axis(ticks, left, top, plot_w, plot_h, unit)
    for i, x in enumerate(xs):
        px = left + i * step
        body.append(f'<text x="{px:.1f}" y="{top + plot_h + 14:.1f}" class="tick" text-anchor="end" '
                    f'transform="rotate(-30 {px:.1f} {top + plot_h + 14:.1f})">{escape(x[-16:])}</text>')
    for si, (name, ys) in enumerate(series.items()):
        stroke, dash = _style(styles, name, si)
        pts = [(left + i * step, top + plot_h - v * scale, v, i) for i, v in enumerate(ys) if v == v]
        segments: list[list[tuple]] = [[]]
        for pt in pts:  # a run without a value breaks the line
            if segments[-1] and pt[3] != segments[-1][-1][3] + 1:
                segments.append([])
            segments[-1].append(pt)
        for seg in segments:
            if len(seg) > 1:
                line = " ".join(f"{px:.1f},{py:.1f}" for px, py, _, _ in seg)
                body.append(f'<polyline points="{line}" fill="none" stroke="{stroke}" stroke-width="1.5" '
                            f'stroke-dasharray="{dash}"/>')
        for px, py, v, i in pts:
            tip = escape(f"{name} at {xs[i]}: {v:,.4g} {unit}")
            mark = marks.get((name, i))
            if mark:
                d = -7 if mark == "better" else 7
                body.append(f'<path d="M{px - 6:.1f},{py - d:.1f} L{px + 6:.1f},{py - d:.1f} L{px:.1f},{py + d:.1f} Z" '
                            f'class="cp-{mark}"><title>{tip} (change point)</title></path>')
            body.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{stroke}"><title>{tip}</title></circle>')
    body += _legend(list(series), left + plot_w + 16, top, styles)
    return _frame(width, height, title, body)
