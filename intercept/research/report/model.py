"""The report model: tables of rows that hold only what may be shown.

Small cells are suppressed when the model is built (`intercept.research.report.build`), not when it
is rendered: a count below `k` is None in `Row.values` and its name is in `Row.suppressed`,
and so is every rate or interval derived from it. No renderer can therefore show a small
count, and every renderer shows the same cells suppressed (`<k` in CSV and HTML, `null` with
`"suppressed": true` in JSON). A value that is None without being suppressed is a rate that
is not defined (see `intercept.research.report.statistics`).

Also here: what every rendering shares, the privacy note, the UTC time stamp and which
kind of cell a value is (`CellText`: a text format says only how it writes each kind).
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
