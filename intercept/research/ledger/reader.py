"""The ledger's reader: `LedgerReader` sums the stored counts per UTC day for `intercept
report`, and says on which day its counts start (`first_day`: a report tells a period with no
data from one with few counts).

Read-only: a SQLite file is opened with `mode=ro`, a PostgreSQL session is set read-only.
Opening never creates a database or a table: a missing SQLite file or a database without
ledger tables is a `LedgerError`, as is a ledger of another schema version. A counter's table
that a ledger does not hold yet (the counter was added in a later version, and no server of
that version has written to this ledger) reads as no counts. Every error is a
`LedgerError` whose message names the URL without its password and describes the cause with
`scrub_error` (no password, no label value). It reads only the aggregate rows the writer
stored (`intercept.research.ledger.schema`).

(`/admin/status` and `/readyz` do not read the database: they show the writer's own
`Ledger.status` and `Ledger.spool`.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from intercept.research.ledger.backend import LedgerError, check_version
from intercept.research.ledger.schema import DAY, TABLES, daily_sql, first_hour_sql
from intercept.research.ledger.urls import backend_for, redacted_url

__all__ = ["DailyCount", "LedgerReader", "open_reader"]


@dataclass(frozen=True, slots=True)
class DailyCount:
    """Counts of one table summed over one UTC day for one combination of labels."""

    day: int  # days since 1970-01-01 (UTC)
    labels: tuple[str, ...]  # in TABLES order
    count: int


class LedgerReader:
    """Read-only access for `intercept report`: counts summed per UTC day. Opening never
    creates a database: a missing SQLite file or a database without ledger tables is a
    `LedgerError`."""

    def __init__(self, url: str, *, connect_timeout: float = 10.0) -> None:
        self.url = url
        backend = backend_for(url, busy_timeout=5.0, connect_timeout=connect_timeout)
        self._backend = backend
        self._conn: Any = None
        self._tables: set[str] = set()
        try:
            self._conn = backend.connect_read_only()
            self._check()
            self._tables = backend.table_names(self._conn)
        except LedgerError:
            self.close()
            raise
        except Exception as error:
            self.close()
            raise LedgerError(
                f"cannot read ledger {redacted_url(url)}: {backend.describe(error)}"
            ) from None

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        assert self._conn is not None
        return self._backend.query(self._conn, sql, params)

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """`_query`, any failure a `LedgerError` that names the ledger without its password."""
        try:
            return self._query(sql, params)
        except Exception as error:
            raise LedgerError(
                f"cannot read ledger {redacted_url(self.url)}: {self._backend.describe(error)}"
            ) from None

    def _check(self) -> None:
        try:
            rows = self._query("SELECT value FROM ledger_meta WHERE key = 'schema_version'")
        except Exception:
            raise LedgerError(
                f"{redacted_url(self.url)} is not an Intercept ledger (no ledger_meta table)"
            ) from None
        check_version(rows[0][0] if rows else None)

    def daily(self, table: str, start: int, end: int) -> list[DailyCount]:
        """`table`'s counts summed per UTC day and label combination, for hourly buckets in
        [start, end) (Unix seconds)."""
        if table not in TABLES:
            raise ValueError(f"unknown ledger table {table!r}")
        if table not in self._tables:  # a counter added since this ledger was last written
            return []  # to: it has counted nothing of it (the writer adds the table)
        width = len(TABLES[table])
        rows = self._read(daily_sql(table), (start, end))
        return [
            DailyCount(int(row[0]), tuple(str(v) for v in row[1 : 1 + width]), int(row[-1]))
            for row in rows
        ]

    def first_day(self) -> int | None:
        """The first UTC day (days since 1970-01-01) any table holds a count for, or None
        when the ledger holds none: where its data start (when it was first written to, or
        the oldest day pruning kept), so that a report can tell a period with no data from
        a period with few counts."""
        days = []
        for table in sorted(self._tables & TABLES.keys()):
            rows = self._read(first_hour_sql(table))
            if rows and rows[0][0] is not None:
                days.append(int(rows[0][0]) // DAY)
        return min(days, default=None)

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> LedgerReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def open_reader(url: str) -> LedgerReader:
    """A `LedgerReader` over `url`."""
    return LedgerReader(url)
