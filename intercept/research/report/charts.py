"""The report's two charts as inline SVG: interventions per period by category (lines, or
bars for a few periods), and click-through per message variant and link with its 95% Wilson
interval (points and whiskers).

Charts draw only what the model holds: periods before the ledger's first count are left out
(they have no data, which is not a small count), a suppressed point leaves a gap in its line
or reads `<k` where its bar would be, a suppressed or undefined click-through says so in
words, and a chart with nothing to draw is replaced by a sentence.

Readable with any number of periods: each period sits at the centre of an equal band, so no
point lies on the frame and no label runs off it; labels are level while a band is wide
enough for one (slanted, and at most 14 of them, when not); with at most `BARS_UP_TO`
periods the categories are bars side by side with their values written above them, since a
line through one, two or three points tells no trend and leaves each point to its tooltip.

Every label is HTML-escaped. The colours are seven of the Okabe-Ito palette (told apart with
colour blindness); past seven categories they repeat, with dashes on lines and as outlines
on bars. The SVG is plain markup with a `<title>` for screen readers, 760 units wide: no
script, no external resource.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Final

from intercept.research.report.model import Report, Series
from intercept.research.report.periods import Period

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


BARS_UP_TO: Final = 3
"""With this many periods or fewer (after those without data), the category chart draws bars:
a line between one, two or three points says little and hides which point is which."""


@dataclass(frozen=True, slots=True)
class _Plot:
    """The category chart's frame: the periods it draws (those the ledger has data for) at
    the centres of equal bands, so that no point sits on the frame and no label runs off it,
    and the value scale."""

    periods: tuple[Period, ...]
    top_value: float
    width: int = 760
    height: int = 320
    left: int = 64
    right: int = 16
    top: int = 16
    bottom: int = 72

    @property
    def plot_w(self) -> int:
        return self.width - self.left - self.right

    @property
    def plot_h(self) -> int:
        return self.height - self.top - self.bottom

    @property
    def band(self) -> float:
        return self.plot_w / len(self.periods)

    @property
    def level(self) -> bool:
        """Whether a period's label fits level in its band (`2026-11-02` is about 70 units
        wide); else labels are slanted."""
        return self.band >= 84

    def x(self, i: int) -> float:
        return self.left + self.band * (i + 0.5)

    def y(self, value: float) -> float:
        return self.top + self.plot_h * (1 - value / self.top_value)


def line_chart(report: Report) -> str:
    """Interventions per period by category: lines, or bars with their values when there
    are at most `BARS_UP_TO` periods; periods without data are left out, suppressed points
    leave gaps (lines) or say `<k` (bars)."""
    shown = [i for i, period in enumerate(report.periods) if report.has_data(period)]
    series = [
        Series(s.label, tuple(s.values[i] for i in shown))
        for s in report.category_series
        if any(s.values[i] is not None for i in shown)
    ]
    if not series:
        return (
            f'<p class="empty">No category reaches {report.k} interventions in any period: '
            "nothing to draw.</p>"
        )
    top_value = _nice_ceiling(max(v for s in series for v in s.values if v is not None))
    plot = _Plot(tuple(report.periods[i] for i in shown), top_value)
    if plot.level:  # no slanted labels below the plot: less room for them
        plot = _Plot(plot.periods, top_value, height=280, bottom=32)
    bars = len(plot.periods) <= BARS_UP_TO
    parts = [
        f'<svg viewBox="0 0 {plot.width} {plot.height}" width="{plot.width}" '
        f'height="{plot.height}" role="img" aria-labelledby="chart1-title">'
        f'<title id="chart1-title">Interventions per {_e(report.by)} by category (counts '
        f"below {report.k} not drawn)</title>",
        f'<rect x="{plot.left}" y="{plot.top}" width="{plot.plot_w}" height="{plot.plot_h}" '
        'fill="#fafbfc" stroke="#ccd"/>',
        *_axes(plot),
        *(_bars(plot, series, report.k) if bars else _lines(plot, series)),
        "</svg>",
    ]
    legend = "".join(f"<li>{_swatch(i, bars)} {_e(s.label)}</li>" for i, s in enumerate(series))
    return "\n".join(parts) + f'\n<ul class="legend">{legend}</ul>'


def _style(number: int) -> tuple[str, str]:
    """The colour and dash pattern of the `number`-th category: past the seven colours, the
    same colours again with dashes (lines) or as outlines (bars)."""
    colour = _COLOURS[number % len(_COLOURS)]
    return colour, _DASHES[(number // len(_COLOURS)) % len(_DASHES)]


def _swatch(number: int, bar: bool) -> str:
    colour, dash = _style(number)
    if bar:
        fill = colour if not dash else "#ffffff"
        return (
            f'<svg width="16" height="12" aria-hidden="true"><rect x="1" y="1" width="14" '
            f'height="10" fill="{fill}" stroke="{colour}" stroke-width="2"/></svg>'
        )
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    return (
        f'<svg width="28" height="10" aria-hidden="true"><line x1="0" x2="28" y1="5" y2="5" '
        f'stroke="{colour}" stroke-width="3"{dash_attr}/></svg>'
    )


def _axes(plot: _Plot) -> list[str]:
    """Grid lines with their values; a label under each period, level when the bands are
    wide enough for it, else slanted and thinned out to at most 14."""
    parts = []
    for step in range(5):
        value = plot.top_value * step / 4
        yy = plot.y(value)
        parts.append(
            f'<line x1="{plot.left}" x2="{plot.left + plot.plot_w}" y1="{yy:.1f}" '
            f'y2="{yy:.1f}" stroke="#e3e6ea"/><text x="{plot.left - 6}" y="{yy + 4:.1f}" '
            f'font-size="11" text-anchor="end">{_number(value)}</text>'
        )
    n = len(plot.periods)
    level = plot.level
    every = 1 if level else max(1, math.ceil(n / 14))
    base = plot.top + plot.plot_h
    for i, period in enumerate(plot.periods):
        if i % every and i != n - 1:
            continue
        xx = plot.x(i)
        placed = (
            'text-anchor="middle">'
            if level
            else f'text-anchor="end" transform="rotate(-35 {xx:.1f} {base + 14})">'
        )
        parts.append(
            f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{base}" y2="{base + 4}" stroke="#888"/>'
            f'<text x="{xx:.1f}" y="{base + 16}" font-size="11" {placed}{_e(period.key)}</text>'
        )
    return parts


def _lines(plot: _Plot, series: list[Series]) -> list[str]:
    """One line per category, broken where a point is suppressed; a point on its own is a
    dot. Every point has a tooltip with its value."""
    parts = []
    for number, line in enumerate(series):
        colour, dash = _style(number)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        segments: list[list[str]] = [[]]
        for i, point in enumerate(line.values):
            if point is None:
                segments.append([])
            else:
                segments[-1].append(f"{plot.x(i):.1f},{plot.y(point):.1f}")
        for points in segments:
            if len(points) > 1:
                parts.append(
                    f'<polyline fill="none" stroke="{colour}" stroke-width="2"{dash_attr} '
                    f'points="{" ".join(points)}"/>'
                )
        for i, point in enumerate(line.values):
            if point is not None:
                parts.append(
                    f'<circle cx="{plot.x(i):.1f}" cy="{plot.y(point):.1f}" r="3" '
                    f'fill="{colour}"><title>{_e(line.label)}, {_e(plot.periods[i].key)}: '
                    f"{point:,}</title></circle>"
                )
    return parts


def _bars(plot: _Plot, series: list[Series], k: int) -> list[str]:
    """Per period, a bar per category side by side, its value written above it; a
    suppressed value is a `<k` at the base instead of a bar."""
    parts = []
    bar = min(56.0, plot.band * 0.8 / len(series))
    base = plot.top + plot.plot_h
    for i in range(len(plot.periods)):
        first = plot.x(i) - bar * len(series) / 2
        for number, line in enumerate(series):
            colour, dash = _style(number)
            xx, value = first + bar * number, line.values[i]
            centre = xx + bar / 2
            if value is None:
                parts.append(
                    f'<text x="{centre:.1f}" y="{base - 4}" font-size="11" fill="#666" '
                    f'font-style="italic" text-anchor="middle">&lt;{k}</text>'
                )
                continue
            yy = plot.y(value)
            fill = colour if not dash else "#ffffff"
            parts.append(
                f'<rect x="{xx + 1:.1f}" y="{yy:.1f}" width="{bar - 2:.1f}" '
                f'height="{base - yy:.1f}" fill="{fill}" stroke="{colour}" stroke-width="2">'
                f"<title>{_e(line.label)}, {_e(plot.periods[i].key)}: {value:,}</title></rect>"
                f'<text x="{centre:.1f}" y="{yy - 4:.1f}" font-size="11" '
                f'text-anchor="middle">{value:,}</text>'
            )
    return parts


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
