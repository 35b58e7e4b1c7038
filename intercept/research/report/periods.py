"""The calendar of a report: UTC days grouped by day, ISO week or calendar month.

A report's range runs from its first to its last day, both included; the periods cover it
in order without gaps or overlaps, and a week or month at either end may be partial (its
`start` and `end` say which days it covers). Days are counted from `EPOCH` as the ledger
counts them (`DailyCount.day`), so no time zone enters anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final, Literal

from intercept.research.ledger import DAY

__all__ = ["EPOCH", "GROUPINGS", "Grouping", "Period", "day_start", "period_key", "periods"]

GROUPINGS: Final = ("day", "week", "month")
Grouping = Literal["day", "week", "month"]

EPOCH: Final = date(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class Period:
    """One row group: its label and the days of the report range it covers (first and last
    included; a week or month at either end of the range may be partial)."""

    key: str
    start: date
    end: date


def period_key(day: date, by: Grouping) -> str:
    """The label of the period holding `day`: `2026-11-02`, `2026-W45` or `2026-11`."""
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
        key = period_key(day, by)
        if out and out[-1].key == key:
            out[-1] = Period(key, out[-1].start, day)
        else:
            out.append(Period(key, day, day))
        day += timedelta(days=1)
    return out


def day_start(day: date) -> int:
    """The Unix time at which the UTC day `day` starts."""
    return (day - EPOCH).days * DAY
