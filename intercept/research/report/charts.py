"""The report's two charts as inline SVG: interventions per period by category (lines), and
click-through per message variant and link with its 95% Wilson interval (points and whiskers).

Charts draw only what the model holds: a suppressed point leaves a gap in its line, a
suppressed or undefined click-through says so in words, and a chart with nothing to draw is
replaced by a sentence. Every label is HTML-escaped. The colours are seven of the Okabe-Ito
palette (told apart with colour blindness); past seven categories the lines repeat them with
dashes. The SVG is plain markup with a `<title>` for screen readers, 760 units wide: no
script, no external resource.
"""

from __future__ import annotations

import html
import math
from typing import Final

from intercept.research.report.model import Report

__all__ = ["ctr_chart", "line_chart"]

_e = html.escape
_COLOURS: Final = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000")
_DASHES: Final = ("", "6 3", "2 3")


def _number(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.1f}"


def _nice_ceiling(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude  # pragma: no cover - the loop always returns


def line_chart(report: Report) -> str:
    """Interventions per period, one line per category; suppressed points leave gaps."""
    series = [s for s in report.category_series if any(v is not None for v in s.values)]
    if not series:
        return (
            f'<p class="empty">No category reaches {report.k} interventions in any period: '
            "nothing to draw.</p>"
        )
    width, height = 760, 320
    left, right, top, bottom = 64, 16, 16, 72
    plot_w, plot_h = width - left - right, height - top - bottom
    n = len(report.periods)
    top_value = _nice_ceiling(max(v for s in series for v in s.values if v is not None))

    def x(i: int) -> float:
        return left + (plot_w / 2 if n == 1 else plot_w * i / (n - 1))

    def y(v: float) -> float:
        return top + plot_h * (1 - v / top_value)

    parts = [
        f'<svg viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" '
        'aria-labelledby="chart1-title"><title id="chart1-title">Interventions per '
        f"{_e(report.by)} by category (counts below {report.k} not drawn)</title>",
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafbfc" '
        'stroke="#ccd"/>',
    ]
    for step in range(5):
        value = top_value * step / 4
        yy = y(value)
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#e3e6ea"/>'
            f'<text x="{left - 6}" y="{yy + 4:.1f}" font-size="11" text-anchor="end">'
            f"{_number(value)}</text>"
        )
    every = max(1, math.ceil(n / 14))
    for i, period in enumerate(report.periods):
        if i % every and i != n - 1:
            continue
        xx = x(i)
        parts.append(
            f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{top + plot_h}" y2="{top + plot_h + 4}" '
            f'stroke="#888"/><text x="{xx:.1f}" y="{top + plot_h + 14}" font-size="11" '
            f'text-anchor="end" transform="rotate(-35 {xx:.1f} {top + plot_h + 14})">'
            f"{_e(period.key)}</text>"
        )
    for number, line in enumerate(series):
        colour = _COLOURS[number % len(_COLOURS)]
        dash = _DASHES[(number // len(_COLOURS)) % len(_DASHES)]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        segment: list[str] = []
        segments: list[list[str]] = []
        for i, point in enumerate(line.values):
            if point is None:
                if segment:
                    segments.append(segment)
                segment = []
                continue
            segment.append(f"{x(i):.1f},{y(point):.1f}")
        if segment:
            segments.append(segment)
        for points in segments:
            if len(points) > 1:
                parts.append(
                    f'<polyline fill="none" stroke="{colour}" stroke-width="2"{dash_attr} '
                    f'points="{" ".join(points)}"/>'
                )
        for i, point in enumerate(line.values):
            if point is not None:
                parts.append(
                    f'<circle cx="{x(i):.1f}" cy="{y(point):.1f}" r="3" fill="{colour}">'
                    f"<title>{_e(line.label)}, {_e(report.periods[i].key)}: {point:,}</title>"
                    "</circle>"
                )
    parts.append("</svg>")
    legend = "".join(
        f'<li><svg width="28" height="10" aria-hidden="true"><line x1="0" x2="28" y1="5" y2="5" '
        f'stroke="{_COLOURS[i % len(_COLOURS)]}" stroke-width="3"'
        + (
            f' stroke-dasharray="{_DASHES[(i // len(_COLOURS)) % len(_DASHES)]}"'
            if _DASHES[(i // len(_COLOURS)) % len(_DASHES)]
            else ""
        )
        + f"/></svg> {_e(s.label)}</li>"
        for i, s in enumerate(series)
    )
    return "\n".join(parts) + f'\n<ul class="legend">{legend}</ul>'


def ctr_chart(report: Report) -> str:
    """Click-through per variant and link over the whole range: a point with whiskers at the
    95% Wilson interval; suppressed rows say so instead."""
    table = report.ctr_overall
    if table is None or not table.rows:
        return '<p class="empty">No clicks recorded in this range.</p>'
    rows = table.rows
    highs = [h for r in rows if isinstance(h := r.values.get("ctr_high"), float | int)]
    if not highs:
        return (
            f'<p class="empty">Every click-through figure is suppressed (counts below '
            f"{report.k}).</p>"
        )
    top_value = _nice_ceiling(max(highs) * 100)
    row_h, left, right, top, bottom = 30, 190, 190, 12, 34
    width = 760
    plot_w = width - left - right
    height = top + row_h * len(rows) + bottom

    def x(share: float) -> float:
        return left + plot_w * min(share * 100, top_value) / top_value

    parts = [
        f'<svg viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-labelledby="chart2-title">'
        '<title id="chart2-title">Click-through per message variant and link with 95% '
        "Wilson intervals</title>"
    ]
    axis_y = top + row_h * len(rows)
    for step in range(5):
        value = top_value * step / 4
        xx = left + plot_w * step / 4
        parts.append(
            f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{top}" y2="{axis_y}" stroke="#e3e6ea"/>'
            f'<text x="{xx:.1f}" y="{axis_y + 16}" font-size="11" text-anchor="middle">'
            f"{_number(value)}%</text>"
        )
    for i, row in enumerate(rows):
        cy = top + row_h * i + row_h / 2
        label = f"{row.values['variant']} · {row.values['link']}"
        parts.append(
            f'<text x="{left - 8}" y="{cy + 4:.1f}" font-size="12" text-anchor="end">'
            f"{_e(label)}</text>"
        )
        ctr, low, high = (row.values.get(c) for c in ("ctr", "ctr_low", "ctr_high"))
        if (
            isinstance(ctr, float | int)
            and isinstance(low, float | int)
            and isinstance(high, float | int)
        ):
            x0, x1, xc = x(low), x(high), x(ctr)
            parts.append(
                f'<g stroke="#0072b2" stroke-width="1.5"><line x1="{x0:.1f}" x2="{x1:.1f}" '
                f'y1="{cy:.1f}" y2="{cy:.1f}"/><line x1="{x0:.1f}" x2="{x0:.1f}" '
                f'y1="{cy - 6:.1f}" y2="{cy + 6:.1f}"/><line x1="{x1:.1f}" x2="{x1:.1f}" '
                f'y1="{cy - 6:.1f}" y2="{cy + 6:.1f}"/></g>'
                f'<circle cx="{xc:.1f}" cy="{cy:.1f}" r="4.5" fill="#d55e00">'
                f"<title>{_e(label)}: {ctr * 100:.1f}% "
                f"(95% CI {low * 100:.1f}–{high * 100:.1f}%)</title></circle>"
                f'<text x="{width - right + 8}" y="{cy + 4:.1f}" font-size="12">'
                f"{ctr * 100:.1f}% ({low * 100:.1f}–{high * 100:.1f}%)</text>"
            )
        else:
            why = f"suppressed (&lt;{report.k})" if "ctr" in row.suppressed else "not defined"
            parts.append(
                f'<text x="{left + 4}" y="{cy + 4:.1f}" font-size="12" fill="#666" '
                f'font-style="italic">{why}</text>'
            )
    parts.append("</svg>")
    return "\n".join(parts)
