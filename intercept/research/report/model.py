"""The report model: tables of rows that hold only what may be shown.

Small cells are suppressed when the model is built (`intercept.research.report.build`), not when it
is rendered: a count below `k` is None in `Row.values` and its name is in `Row.suppressed`,
and so is every rate or interval derived from it. No renderer can therefore show a small
count, and every renderer shows the same cells suppressed (`<k` in CSV and HTML, `null` with
`"suppressed": true` in JSON). A value that is None without being suppressed is a rate that
is not defined (see `intercept.research.report.statistics`).

Also here: what every rendering states, the privacy note and the UTC time stamp.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Final

from intercept.research.report.periods import Grouping, Period

__all__ = [
    "DIMENSIONS",
    "PRIVACY_NOTE",
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
