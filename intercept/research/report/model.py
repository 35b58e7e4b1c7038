"""The report model: tables of rows that hold only what may be shown.

Small cells are suppressed when the model is built (`intercept.research.report.build`), not when it
is rendered: a count below `k` is None in `Row.values` and its name is in `Row.suppressed`,
and so is every rate or interval derived from it. No renderer can therefore show a small
count, and every renderer shows the same cells suppressed (`<k` in CSV and HTML, `null` with
`"suppressed": true` in JSON). A value that is None without being suppressed is a rate that
is not defined (see `intercept.research.report.statistics`), or a count of a period the ledger
holds no data for (its row's `note` says `no data`).

Also here: what every rendering shares, the privacy note and the report's notes, the UTC
time stamp and which kind of cell a value is (`CellText`: a text format says only how it
writes each kind).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Final

from intercept.research.report.periods import Grouping, Period

__all__ = [
    "DIMENSIONS",
    "PRIVACY_NOTE",
    "CellText",
    "Report",
    "Row",
    "Series",
    "ShadowReport",
    "Table",
    "Value",
    "has_data",
    "report_notes",
    "stamp",
]

DIMENSIONS: Final = ("category", "action", "language", "variant")
PRIVACY_NOTE: Final = (
    "Aggregate counts only. The ledger holds hourly counts by route, rule category, action, "
    "page language, message variant, link and shadow rule id, with labels taken from the "
    "configuration. It holds no query text, no address, no user agent and nothing that "
    "identifies a request or a person."
)

Value = str | int | float | None


@dataclass(frozen=True, slots=True)
class Row:
    """One row of a table. `values` hold labels, shown counts and rates; a field named in
    `suppressed` is None in `values` because it was below k or derived from such a count."""

    values: Mapping[str, Value]
    suppressed: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class CellText:
    """How a text format (CSV, HTML) writes a cell of each kind; JSON writes the values as
    they are. The kind is decided in `text`, the same for every format, in this order:
    suppressed (named in `Row.suppressed`, whatever its value), undefined (None: a rate
    without a denominator), a rate or interval bound (a float), a count (an int), a label
    (a str)."""

    suppressed: Callable[[int], str]  # given k
    undefined: str
    rate: Callable[[float], str]
    count: Callable[[int], str]
    label: Callable[[str], str]

    def text(self, row: Row, column: str, k: int) -> str:
        """Row `row`'s cell in `column` as this format writes it."""
        if column in row.suppressed:
            return self.suppressed(k)
        value = row.values.get(column)
        if value is None:
            return self.undefined
        if isinstance(value, float):
            return self.rate(value)
        if isinstance(value, int):
            return self.count(value)
        return self.label(value)


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
    """The research report: its range, grouping and k, and what it shows."""

    start: date
    end: date  # the last day, included
    by: Grouping  # the length of a period: a day, an ISO week or a calendar month
    dimensions: tuple[str, ...]  # what interventions are broken down by, from DIMENSIONS
    k: int  # counts below k are suppressed
    generated_at: datetime
    periods: tuple[Period, ...]
    tables: tuple[Table, ...]
    category_series: tuple[Series, ...] = ()
    ctr_overall: Table | None = field(default=None)
    # the first day the ledger holds a count for (None: it holds none); a period that ends
    # before it has no data, which is not the same as counts below k
    data_from: date | None = date(1970, 1, 1)
    # route names the ledger holds whose kind the configuration does not give: while any
    # is in the range, no intervention rate is computed (`intercept.research.report.kinds`)
    unknown_routes: tuple[str, ...] = ()

    def has_data(self, period: Period) -> bool:
        """Whether the ledger covers any day of `period` (see `has_data`)."""
        return has_data(period, self.data_from)


def has_data(period: Period, data_from: date | None) -> bool:
    """Whether a ledger whose counts start on `data_from` (None: it holds none) covers any
    day of `period`: the period ends on or after that day."""
    return data_from is not None and period.end >= data_from


@dataclass(frozen=True, slots=True)
class ShadowReport:
    start: date
    end: date
    days: int
    k: int
    generated_at: datetime
    table: Table


def stamp(moment: datetime) -> str:
    """`moment` in UTC to the second, as every format writes it: `2026-11-25T12:00:00Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def report_notes(report: Report) -> list[str]:
    """What a reader must know to read the numbers, the same in JSON and HTML."""
    k, start = report.k, report.data_from
    notes = [
        PRIVACY_NOTE,
        f"Counts below {k} are suppressed (k = {k}) and not used in any rate or interval.",
        "Days are UTC days. Interventions are pages shown (block and warn) on search routes; "
        "shadow-rule hits are listed by `intercept report --shadow`.",
        "Click-through: clicks on a link / interventions shown in that message variant, with "
        "a 95% Wilson score interval.",
        "Searches, interventions and the intervention rate count search routes only; "
        "autocomplete requests and the empty suggestion lists answered are counted apart "
        "(autocomplete), with no rate: a front-end may ask for suggestions on every keystroke. "
        "A route's kind comes from the configuration (--config), else from the default "
        "routes; routes lists each route with its kind.",
        "No data: the ledger holds no count."
        if start is None
        else f"The ledger's counts start on {start.isoformat()}: a period before that has no "
        "data (its periods row says so in note, empty, not suppressed) and no row in the "
        "other tables.",
    ]
    if report.unknown_routes:
        notes.append(
            f"Routes of unknown kind ({', '.join(report.unknown_routes)}) are in no count of "
            "searches, and no intervention rate is computed: pass the configuration (--config)."
        )
    return notes
