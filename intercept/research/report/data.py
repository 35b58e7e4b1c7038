"""What a report is built from: the ledger's counts for a range, summed per UTC day.

The only part of `intercept report` that reads the ledger (through `LedgerReader`, read-only).
A report reads searches, interventions, clicks and continues past warn pages, and the first
day the ledger holds any count for (`LedgerReader.first_day`: where its data start, so that a
report tells a period with no data from a period with few counts); a shadow report reads only
shadow hits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from intercept.research.ledger import DAY, DailyCount, LedgerReader
from intercept.research.report.periods import day_start

__all__ = ["LedgerData", "load_data"]


@dataclass(frozen=True, slots=True)
class LedgerData:
    """The ledger's counts for a range, summed per UTC day (what a report is built from)."""

    searches: Sequence[DailyCount] = ()
    interventions: Sequence[DailyCount] = ()
    clicks: Sequence[DailyCount] = ()
    shadow_hits: Sequence[DailyCount] = ()
    warn_continues: Sequence[DailyCount] = ()
    # the first UTC day (days since 1970-01-01) the ledger holds a count for, on any day,
    # not only in the range read; None: it holds none. The default 0 (1970-01-01) says
    # every day is covered, as a report read before this was known.
    first_day: int | None = 0


def load_data(reader: LedgerReader, start: date, end: date, *, shadow: bool = False) -> LedgerData:
    """Read the days `start`..`end` (UTC, both included) from the ledger."""
    lo, hi = day_start(start), day_start(end) + DAY
    if shadow:
        return LedgerData(shadow_hits=reader.daily("shadow_hits", lo, hi))
    return LedgerData(
        searches=reader.daily("searches", lo, hi),
        interventions=reader.daily("interventions", lo, hi),
        clicks=reader.daily("clicks", lo, hi),
        warn_continues=reader.daily("warn_continues", lo, hi),
        first_day=reader.first_day(),
    )
