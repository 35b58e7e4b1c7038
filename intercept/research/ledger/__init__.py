"""The research ledger: hourly aggregate counts in SQLite or PostgreSQL, and nothing else.

What is stored: per UTC hour (the bucket is the hour's start as Unix seconds), counts of
searches by route, interventions by category, action, language and message variant, clicks by
link id and variant, and shadow-rule hits by rule id. Every label comes from the rule files and
the messages configuration. No query text, client address, user agent, cookie or per-request
identifier ever reaches the ledger: its methods take only those labels.

The rooms, each with its own invariants:

- `schema`: the tables and their label columns (`TABLES`, derived from
  `intercept.research.counters`), the SQL text both databases run.
- `backend`: the `Backend` interface, and `SQLBackend`, the connect/transaction/retry code
  SQLite and PostgreSQL share; `LedgerError` and `scrub_error`.
- `sqlite`, `postgres`: the two dialects (how to open a connection, begin a transaction,
  run a statement; which failures mean a dropped connection).
- `urls`: which backend a ledger URL names, and URLs without passwords for messages.
- `writer`: `Ledger`, the batched counts, their flushes, the spool at shutdown, `prune`.
- `reader`: `LedgerReader`, the daily sums for `intercept report`.

Import from here (`from intercept.research.ledger import Ledger`); the names below are the public
ones. Dependencies point one way: writer and reader -> urls -> sqlite, postgres -> backend ->
schema.
"""

from __future__ import annotations

from intercept.research.ledger.backend import Backend, LedgerError, scrub_error
from intercept.research.ledger.reader import DailyCount, LedgerReader, open_reader
from intercept.research.ledger.schema import DAY, HOUR, NO_PAGE, SCHEMA_VERSION, TABLES
from intercept.research.ledger.urls import redacted_url, sqlite_path
from intercept.research.ledger.writer import Ledger, LedgerStatus, from_url

__all__ = [
    "DAY",
    "HOUR",
    "NO_PAGE",
    "SCHEMA_VERSION",
    "TABLES",
    "Backend",
    "DailyCount",
    "Ledger",
    "LedgerError",
    "LedgerReader",
    "LedgerStatus",
    "from_url",
    "open_reader",
    "redacted_url",
    "scrub_error",
    "sqlite_path",
]
