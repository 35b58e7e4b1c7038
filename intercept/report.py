"""Research reports over the ledger: `intercept report`.

For a date range (UTC, both ends included) grouped by day, ISO week or calendar month, and by
chosen intervention dimensions (category, action, language, variant), a report gives searches,
interventions, the intervention rate (interventions / searches), clicks, and the click-through
rate per message variant and link (clicks / interventions shown in that variant) with a 95%
Wilson score interval.

Interventions here are the block and warn actions taken, mostly pages searchers saw; an
autocomplete route's empty suggestion list shows no page, so it has the variant `none` and no
part in click-through. Shadow-rule hits are recorded, never shown, and are listed separately
by `shadow_report` (`intercept report --shadow`), per rule id, so a curator can promote, fix
or drop a rule.

Small cells are suppressed: a count below `k` (default 10) is never shown (`<k` in CSV and
HTML, `null` with `"suppressed": true` in JSON) and never used in a derived figure: a rate or
interval with a suppressed numerator or denominator is itself suppressed. This is primary
suppression; totals are shown as they are, so a suppressed cell can sometimes be bounded from
a total and the other cells.

Formats: CSV (one table in long form, its `table` column naming the part), JSON, and one
self-contained HTML file (inline CSS and SVG charts, no JavaScript, no external resources).
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Final, Literal

from intercept.ledger import DAY, NO_PAGE, DailyCount, LedgerReader

__all__ = [
    "DIMENSIONS",
    "FORMATS",
    "GROUPINGS",
    "Z95",
    "LedgerData",
    "Report",
    "ShadowReport",
    "build_report",
    "build_shadow_report",
    "load_data",
    "render",
    "render_shadow",
    "wilson",
]

Z95: Final = 1.959964
DIMENSIONS: Final = ("category", "action", "language", "variant")
GROUPINGS: Final = ("day", "week", "month")
FORMATS: Final = ("csv", "json", "html")
SHADOW_ACTION: Final = "shadow"
PRIVACY_NOTE: Final = (
    "Aggregate counts only. The ledger holds hourly counts by route, rule category, action, "
    "page language, message variant, link and shadow rule id, with labels taken from the "
    "configuration. It holds no query text, no address, no user agent and nothing that "
    "identifies a request or a person."
)

Grouping = Literal["day", "week", "month"]
Value = str | int | float | None

_EPOCH: Final = date(1970, 1, 1)


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for `successes` out of `trials` (95% with the default z)."""
    if trials <= 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials and trials > 0, got {successes}/{trials}")
    p = successes / trials
    z2 = z * z
    denominator = 1 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


# --- periods --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Period:
    """One row group: its label and the days of the report range it covers (first and last
    included; a week or month at either end of the range may be partial)."""

    key: str
    start: date
    end: date


def _key(day: date, by: Grouping) -> str:
    if by == "day":
        return day.isoformat()
    if by == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{day.year}-{day.month:02d}"


def periods(start: date, end: date, by: Grouping) -> list[Period]:
    """The periods covering `start`..`end`, in order."""
    out: list[Period] = []
    day = start
    while day <= end:
        key = _key(day, by)
        if out and out[-1].key == key:
            out[-1] = Period(key, out[-1].start, day)
        else:
            out.append(Period(key, day, day))
        day += timedelta(days=1)
    return out


def _day_start(day: date) -> int:
    return (day - _EPOCH).days * DAY


# --- data -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LedgerData:
    """The ledger's counts for a range, summed per UTC day (what a report is built from)."""

    searches: Sequence[DailyCount] = ()
    interventions: Sequence[DailyCount] = ()
    clicks: Sequence[DailyCount] = ()
    shadow_hits: Sequence[DailyCount] = ()


def load_data(reader: LedgerReader, start: date, end: date, *, shadow: bool = False) -> LedgerData:
    """Read the days `start`..`end` (UTC, both included) from the ledger."""
    lo, hi = _day_start(start), _day_start(end) + DAY
    if shadow:
        return LedgerData(shadow_hits=reader.daily("shadow_hits", lo, hi))
    return LedgerData(
        searches=reader.daily("searches", lo, hi),
        interventions=reader.daily("interventions", lo, hi),
        clicks=reader.daily("clicks", lo, hi),
    )


# --- the report model: only suppressed values, so no renderer can show a small count -------


@dataclass(frozen=True, slots=True)
class Row:
    """One row of a table. `values` hold labels, shown counts and rates; a field named in
    `suppressed` is None in `values` because it was below k or derived from such a count."""

    values: Mapping[str, Value]
    suppressed: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[Row, ...]


@dataclass(frozen=True, slots=True)
class Series:
    """A chart line: one value per period, None where suppressed."""

    label: str
    values: tuple[int | None, ...]


@dataclass(frozen=True, slots=True)
class Report:
    start: date
    end: date
    by: Grouping
    dimensions: tuple[str, ...]
    k: int
    generated_at: datetime
    periods: tuple[Period, ...]
    tables: tuple[Table, ...]
    category_series: tuple[Series, ...] = ()
    ctr_overall: Table | None = field(default=None)


class _Cells:
    """Builds rows, applying suppression to every count and derived figure."""

    def __init__(self, k: int) -> None:
        self.k = k

    def count(self, values: dict[str, Value], suppressed: set[str], name: str, n: int) -> None:
        if n < self.k:
            values[name] = None
            suppressed.add(name)
        else:
            values[name] = n

    def ratio(
        self,
        values: dict[str, Value],
        suppressed: set[str],
        name: str,
        numerator: str,
        denominator: str,
        interval: tuple[str, str] | None = None,
    ) -> None:
        names = (name, *(interval or ()))
        num, den = values[numerator], values[denominator]
        if numerator in suppressed or denominator in suppressed:
            for n in names:
                values[n] = None
                suppressed.add(n)
            return
        assert isinstance(num, int)
        assert isinstance(den, int)
        if den <= 0 or num > den:  # undefined (more clicks than pages), not suppressed
            for n in names:
                values[n] = None
            return
        values[name] = round(num / den, 6)
        if interval is not None:
            low, high = wilson(num, den)
            values[interval[0]], values[interval[1]] = round(low, 6), round(high, 6)


def _period_values(period: Period) -> dict[str, Value]:
    return {"period": period.key, "start": period.start.isoformat(), "end": period.end.isoformat()}


def build_report(
    data: LedgerData,
    *,
    start: date,
    end: date,
    by: Grouping = "week",
    dimensions: Sequence[str] = ("category",),
    k: int = 10,
    now: datetime | None = None,
) -> Report:
    """The report over `data` (see the module docstring). `k` >= 1."""
    if k < 1:
        raise ValueError("k must be at least 1")
    if start > end:
        raise ValueError(f"the range starts ({start}) after it ends ({end})")
    unknown = [d for d in dimensions if d not in DIMENSIONS]
    if unknown:
        raise ValueError(f"unknown dimension {unknown[0]!r}: choose from {', '.join(DIMENSIONS)}")
    dims = tuple(dimensions)
    spans = periods(start, end, by)
    index = {p.key: i for i, p in enumerate(spans)}
    first_day = (start - _EPOCH).days

    def period_of(day: int) -> int | None:
        offset = day - first_day
        if offset < 0 or day > (end - _EPOCH).days:
            return None
        return index[_key(start + timedelta(days=offset), by)]

    searches: dict[int, int] = defaultdict(int)
    for row in data.searches:
        p = period_of(row.day)
        if p is not None:
            searches[p] += row.count

    shown: dict[int, int] = defaultdict(int)
    by_dims: dict[tuple[int, tuple[str, ...]], int] = defaultdict(int)
    by_category: dict[tuple[int, str], int] = defaultdict(int)
    by_variant: dict[tuple[int, str], int] = defaultdict(int)
    columns = DIMENSIONS
    for row in data.interventions:
        p = period_of(row.day)
        if p is None:
            continue
        labels = dict(zip(columns, row.labels, strict=True))
        if labels["action"] == SHADOW_ACTION:
            continue
        shown[p] += row.count
        by_dims[(p, tuple(labels[d] for d in dims))] += row.count
        by_category[(p, labels["category"])] += row.count
        if labels["variant"] != NO_PAGE:  # no page, so nothing to click through
            by_variant[(p, labels["variant"])] += row.count

    clicks: dict[int, int] = defaultdict(int)
    by_click: dict[tuple[int, str, str], int] = defaultdict(int)  # (period, variant, link)
    for row in data.clicks:
        p = period_of(row.day)
        if p is None:
            continue
        link, variant = row.labels
        clicks[p] += row.count
        by_click[(p, variant, link)] += row.count

    cells = _Cells(k)

    # per period
    period_rows = []
    for i, period in enumerate(spans):
        values, hidden = _period_values(period), set[str]()
        cells.count(values, hidden, "searches", searches.get(i, 0))
        cells.count(values, hidden, "interventions", shown.get(i, 0))
        cells.ratio(values, hidden, "intervention_rate", "interventions", "searches")
        cells.count(values, hidden, "clicks", clicks.get(i, 0))
        period_rows.append(Row(values, frozenset(hidden)))
    tables = [
        Table(
            "periods",
            "Searches and interventions per period",
            ("period", "start", "end", "searches", "interventions", "intervention_rate", "clicks"),
            tuple(period_rows),
        )
    ]

    # per period and chosen dimensions (a full grid: every combination seen in the range)
    if dims:
        combos = sorted({combo for _, combo in by_dims})
        rows = []
        for i, period in enumerate(spans):
            for combo in combos:
                values, hidden = _period_values(period), set[str]()
                values.update(zip(dims, combo, strict=True))
                cells.count(values, hidden, "interventions", by_dims.get((i, combo), 0))
                cells.count(values, hidden, "searches", searches.get(i, 0))
                cells.ratio(values, hidden, "intervention_rate", "interventions", "searches")
                rows.append(Row(values, frozenset(hidden)))
        tables.append(
            Table(
                "interventions",
                f"Interventions by {', '.join(dims)}",
                ("period", "start", "end", *dims, "interventions", "searches", "intervention_rate"),
                tuple(rows),
            )
        )

    # click-through per variant and link
    variants = sorted({v for _, v in by_variant} | {v for _, v, _ in by_click})
    links = sorted({link for _, _, link in by_click})
    ctr_columns = ("variant", "link", "interventions", "clicks", "ctr", "ctr_low", "ctr_high")

    def ctr_row(base: dict[str, Value], variant: str, link: str, pages: int, hits: int) -> Row:
        values, hidden = dict(base), set[str]()
        values.update(variant=variant, link=link)
        cells.count(values, hidden, "interventions", pages)
        cells.count(values, hidden, "clicks", hits)
        cells.ratio(values, hidden, "ctr", "clicks", "interventions", ("ctr_low", "ctr_high"))
        return Row(values, frozenset(hidden))

    overall_base: dict[str, Value] = {
        "period": "all",
        "start": start.isoformat(),
        "end": end.isoformat(),
    }
    overall_rows = []
    for variant in variants:
        pages = sum(n for (_, v), n in by_variant.items() if v == variant)
        for link in links:
            hits = sum(n for (_, v, li), n in by_click.items() if v == variant and li == link)
            overall_rows.append(ctr_row(overall_base, variant, link, pages, hits))
    overall = Table(
        "click_through_overall",
        "Click-through per message variant, whole range",
        ("period", "start", "end", *ctr_columns),
        tuple(overall_rows),
    )
    per_period = [
        ctr_row(
            _period_values(period),
            variant,
            link,
            by_variant.get((i, variant), 0),
            by_click.get((i, variant, link), 0),
        )
        for i, period in enumerate(spans)
        for variant in variants
        for link in links
    ]
    tables.append(overall)
    tables.append(
        Table(
            "click_through",
            "Click-through per message variant and period",
            ("period", "start", "end", *ctr_columns),
            tuple(per_period),
        )
    )

    categories = sorted({c for _, c in by_category})
    series = tuple(
        Series(
            category,
            tuple(
                n if (n := by_category.get((i, category), 0)) >= k else None
                for i in range(len(spans))
            ),
        )
        for category in categories
    )
    return Report(
        start=start,
        end=end,
        by=by,
        dimensions=dims,
        k=k,
        generated_at=(now or datetime.now(UTC)).replace(microsecond=0),
        periods=tuple(spans),
        tables=tuple(tables),
        category_series=series,
        ctr_overall=overall,
    )


# --- shadow rules ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShadowReport:
    start: date
    end: date
    days: int
    k: int
    generated_at: datetime
    table: Table


def build_shadow_report(
    data: LedgerData, *, end: date, days: int = 14, k: int = 10, now: datetime | None = None
) -> ShadowReport:
    """Hits per shadow rule id over the `days` days ending with `end` (included). A rule's
    hits below k are suppressed, and so are its days with hits and first and last day seen."""
    if k < 1 or days < 1:
        raise ValueError("k and days must be at least 1")
    start = end - timedelta(days=days - 1)
    lo, hi = (start - _EPOCH).days, (end - _EPOCH).days
    hits: dict[str, int] = defaultdict(int)
    seen: dict[str, list[int]] = defaultdict(list)
    for row in data.shadow_hits:
        if lo <= row.day <= hi and row.count > 0:
            hits[row.labels[0]] += row.count
            seen[row.labels[0]].append(row.day)
    cells = _Cells(k)
    rows = []
    for rule_id in sorted(hits, key=lambda r: (-hits[r] if hits[r] >= k else 0, r)):
        values: dict[str, Value] = {"rule_id": rule_id}
        hidden: set[str] = set()
        cells.count(values, hidden, "hits", hits[rule_id])
        if "hits" in hidden:
            hidden |= {"days_with_hits", "first_seen", "last_seen"}
            values.update(days_with_hits=None, first_seen=None, last_seen=None)
        else:
            day_list = sorted(set(seen[rule_id]))
            values["days_with_hits"] = len(day_list)
            values["first_seen"] = (_EPOCH + timedelta(days=day_list[0])).isoformat()
            values["last_seen"] = (_EPOCH + timedelta(days=day_list[-1])).isoformat()
        rows.append(Row(values, frozenset(hidden)))
    table = Table(
        "shadow_hits",
        "Shadow rule hits",
        ("rule_id", "hits", "days_with_hits", "first_seen", "last_seen"),
        tuple(rows),
    )
    return ShadowReport(
        start=start,
        end=end,
        days=days,
        k=k,
        generated_at=(now or datetime.now(UTC)).replace(microsecond=0),
        table=table,
    )


# --- rendering: CSV and JSON ----------------------------------------------------------------


def _text(row: Row, column: str, k: int) -> str:
    """A value as text: `<k` when suppressed, empty when undefined."""
    if column in row.suppressed:
        return f"<{k}"
    value = row.values.get(column)
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


_CSV_COLUMNS: Final = (
    "table", "period", "start", "end", "category", "action", "language", "variant", "link",
    "searches", "interventions", "intervention_rate", "clicks", "ctr", "ctr_low", "ctr_high",
)  # fmt: skip


def _csv(tables: Iterable[Table], columns: Sequence[str], k: int, with_table: bool) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for table in tables:
        for row in table.rows:
            writer.writerow(
                table.name if c == "table" and with_table else _text(row, c, k) for c in columns
            )
    return out.getvalue()


def _json_rows(table: Table) -> list[dict[str, Value | bool | list[str]]]:
    rows: list[dict[str, Value | bool | list[str]]] = []
    for row in table.rows:
        item: dict[str, Value | bool | list[str]] = {c: row.values.get(c) for c in table.columns}
        item["suppressed"] = bool(row.suppressed)
        item["suppressed_fields"] = sorted(row.suppressed)
        rows.append(item)
    return rows


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _notes(k: int) -> list[str]:
    return [
        PRIVACY_NOTE,
        f"Counts below {k} are suppressed (k = {k}) and not used in any rate or interval.",
        "Days are UTC days. Interventions are pages shown (block and warn); shadow-rule hits "
        "are listed by `intercept report --shadow`.",
        "Click-through: clicks on a link / interventions shown in that message variant, with "
        "a 95% Wilson score interval.",
    ]


def render(report: Report, fmt: str) -> str:
    """The report as `csv`, `json` or `html`."""
    if fmt == "csv":
        return _csv(report.tables, _CSV_COLUMNS, report.k, with_table=True)
    if fmt == "json":
        document = {
            "report": "intercept research report",
            "generated_at": _stamp(report.generated_at),
            "from": report.start.isoformat(),
            "to": report.end.isoformat(),
            "timezone": "UTC",
            "by": report.by,
            "dimensions": list(report.dimensions),
            "k": report.k,
            "confidence": 0.95,
            "interval": "Wilson score",
            "notes": _notes(report.k),
            **{table.name: _json_rows(table) for table in report.tables},
        }
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if fmt == "html":
        return _html_report(report)
    raise ValueError(f"unknown format {fmt!r}: choose from {', '.join(FORMATS)}")


def render_shadow(report: ShadowReport, fmt: str) -> str:
    """The shadow-rule listing as `csv`, `json` or `html`."""
    if fmt == "csv":
        return _csv([report.table], report.table.columns, report.k, with_table=False)
    if fmt == "json":
        document = {
            "report": "intercept shadow rule hits",
            "generated_at": _stamp(report.generated_at),
            "from": report.start.isoformat(),
            "to": report.end.isoformat(),
            "days": report.days,
            "timezone": "UTC",
            "k": report.k,
            "notes": [PRIVACY_NOTE, f"Counts below {report.k} are suppressed (k = {report.k})."],
            "rules": _json_rows(report.table),
        }
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if fmt == "html":
        return _html_shadow(report)
    raise ValueError(f"unknown format {fmt!r}: choose from {', '.join(FORMATS)}")


# --- rendering: HTML with inline SVG --------------------------------------------------------

_e = html.escape
_COLOURS: Final = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000")
_DASHES: Final = ("", "6 3", "2 3")

_CSS: Final = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1a1a1a;
margin:0 auto;max-width:62rem;padding:1.5rem}
h1{font-size:1.6rem;margin:0 0 .5rem}h2{font-size:1.2rem;margin:2rem 0 .5rem}
dl.meta{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem;margin:0 0 1rem}
dl.meta dt{font-weight:600}dl.meta dd{margin:0}
.note{background:#f3f6f9;border-left:4px solid #0072b2;padding:.6rem .9rem;margin:1rem 0}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #ccd;padding:.25rem .5rem;text-align:right;white-space:nowrap}
th{background:#eef1f5}td.l,th.l{text-align:left}td.s{color:#666;font-style:italic}
svg{max-width:100%;height:auto;font-family:inherit}
ul.legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:.4rem 1.2rem}
.empty{color:#555;font-style:italic}
footer{margin-top:2rem;color:#555;font-size:.85rem}
"""


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


def _cell(row: Row, column: str, k: int) -> str:
    if column in row.suppressed:
        return f'<td class="s">&lt;{k}</td>'
    value = row.values.get(column)
    if value is None:
        return "<td></td>"
    if isinstance(value, float):
        return f"<td>{value * 100:.1f}%</td>"
    if isinstance(value, int):
        return f"<td>{value:,}</td>"
    return f'<td class="l">{_e(value)}</td>'


_HEADINGS: Final = {
    "period": "Period",
    "start": "From",
    "end": "To",
    "searches": "Searches",
    "interventions": "Interventions",
    "intervention_rate": "Intervention rate",
    "clicks": "Clicks",
    "ctr": "Click-through",
    "ctr_low": "95% CI low",
    "ctr_high": "95% CI high",
    "rule_id": "Rule id",
    "hits": "Hits",
    "days_with_hits": "Days with hits",
    "first_seen": "First seen",
    "last_seen": "Last seen",
}


def _html_table(table: Table, k: int, columns: Sequence[str] | None = None) -> str:
    columns = columns or table.columns
    if not table.rows:
        return '<p class="empty">No data in this range.</p>'
    head = "".join(
        f'<th scope="col" class="{"l" if c in _LABEL_COLUMNS else ""}">'
        f"{_e(_HEADINGS.get(c, c.capitalize()))}</th>"
        for c in columns
    )
    body = "\n".join(
        "<tr>" + "".join(_cell(row, c, k) for c in columns) + "</tr>" for row in table.rows
    )
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


_LABEL_COLUMNS: Final = frozenset(
    {"period", "start", "end", "rule_id", "first_seen", "last_seen", "link", *DIMENSIONS}
)


def _line_chart(report: Report) -> str:
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


def _ctr_chart(report: Report) -> str:
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


def _page(title: str, meta: Sequence[tuple[str, str]], body: str, generated: datetime) -> str:
    rows = "".join(f"<dt>{_e(name)}</dt><dd>{_e(value)}</dd>" for name, value in meta)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="referrer" content="no-referrer">
<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>{_e(title)}</h1>
<dl class="meta">{rows}</dl>
<p class="note">{_e(PRIVACY_NOTE)}</p>
{body}
<footer>Generated by intercept report at {_e(_stamp(generated))}. This file has no scripts and
loads nothing from the network.</footer>
</body>
</html>
"""


def _html_report(report: Report) -> str:
    k = report.k
    meta = [
        ("Date range", f"{report.start.isoformat()} to {report.end.isoformat()} (UTC, inclusive)"),
        ("Grouped by", report.by),
        ("Dimensions", ", ".join(report.dimensions) or "none"),
        ("Small cells", f"counts below k = {k} are shown as <{k} and left out of every rate"),
        ("Intervals", "95% Wilson score intervals (z = 1.959964)"),
        ("Generated", _stamp(report.generated_at)),
    ]
    tables = {table.name: table for table in report.tables}
    sections = [
        "<h2>Interventions over time by category</h2>",
        _line_chart(report),
        "<h2>Click-through by message variant</h2>",
        "<p>Clicks on each link divided by the interventions shown in that variant, over the "
        "whole range.</p>",
        _ctr_chart(report),
    ]
    for name in ("periods", "interventions", "click_through_overall", "click_through"):
        if name in tables:
            table = tables[name]
            columns = table.columns[3:] if name == "click_through_overall" else table.columns
            sections.append(f"<h2>{_e(table.title)}</h2>")
            sections.append(_html_table(table, k, columns))
    sections.append(
        "<p>Interventions are pages shown (block and warn). Shadow-rule hits are not shown to "
        "anyone and are listed by <code>intercept report --shadow</code>. Periods at either end "
        "of the range may be partial (see From and To).</p>"
    )
    return _page("Intercept research report", meta, "\n".join(sections), report.generated_at)


def _html_shadow(report: ShadowReport) -> str:
    k = report.k
    meta = [
        (
            "Days",
            f"{report.days}: {report.start.isoformat()} to {report.end.isoformat()} (UTC, "
            "inclusive)",
        ),
        ("Small cells", f"counts below k = {k} are shown as <{k}"),
        ("Generated", _stamp(report.generated_at)),
    ]
    body = (
        "<h2>Hits per shadow rule</h2>\n<p>Shadow rules are matched and counted but never shown "
        "to searchers. Promote a rule whose hits look right, fix one that hits too much, drop "
        "one that never hits. Rules without any hit in these days are not listed.</p>\n"
        + _html_table(report.table, k)
    )
    return _page("Intercept shadow rule hits", meta, body, report.generated_at)
