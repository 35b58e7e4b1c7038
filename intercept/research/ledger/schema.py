"""What the ledger stores, and the SQL text both databases run on it.

Per UTC hour (the bucket is the hour's start as Unix seconds), counts of searches by route,
interventions by category, action, language and message variant, clicks by link id and
variant, and shadow-rule hits by rule id: `TABLES` lists each table's label columns (derived
from the research counters declared in `intercept.research.counters`), and the schema holds exactly
those columns plus `hour` and `count` (and the `ledger_meta` key/value table for the schema
version and the spool markers). Every label comes from the rule files and the messages
configuration. No query text, client address, user agent, cookie or per-request identifier
has a column to go to.

The SQL here is written once, with `%s` placeholders (psycopg's); the SQLite backend turns
them into `?` (`intercept.research.ledger.sqlite`). Both databases understand every statement as it
is (`ON CONFLICT ... DO UPDATE`, `BIGINT`), so the two never drift apart.
"""

from __future__ import annotations

from typing import Any, Final

from intercept.research.counters import COUNTERS

__all__ = [
    "DAY",
    "HOUR",
    "MARK_SQL",
    "NO_PAGE",
    "SCHEMA_VERSION",
    "SCHEMA_VERSION_SQL",
    "TABLES",
    "UNMARK_SQL",
    "Batch",
    "Key",
    "Rows",
    "daily_sql",
    "ddl",
    "first_hour_sql",
    "prune_sql",
    "rows_by_table",
    "upsert_sql",
]

SCHEMA_VERSION: Final = 1
HOUR: Final = 3600
DAY: Final = 86400

#: The `variant` of an intervention that showed no page: a shadow hit, or an autocomplete
#: route's empty suggestion list. Such rows take no part in click-through per variant.
NO_PAGE: Final = "none"

#: Each table's label columns, in primary-key order (after `hour`). Nothing else is stored.
#: One per research counter that has a table, in declaration order (`intercept.research.counters`).
TABLES: Final[dict[str, tuple[str, ...]]] = {
    c.table: c.labels for c in COUNTERS if c.table is not None
}

#: (table, hour start in Unix seconds, label values in TABLES order)
Key = tuple[str, int, tuple[str, ...]]
#: Counts by key, as the writer buffers them.
Batch = dict[Key, int]
#: Upsert parameters per table: (hour, *labels, count) tuples.
Rows = dict[str, list[tuple[Any, ...]]]


def ddl() -> list[str]:
    """The statements that create the tables (each `IF NOT EXISTS`)."""
    statements = [
        "CREATE TABLE IF NOT EXISTS ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ]
    for table, labels in TABLES.items():
        columns = ", ".join(f"{label} TEXT NOT NULL" for label in labels)
        key = ", ".join(("hour", *labels))
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {table} (hour BIGINT NOT NULL, {columns}, "
            f"count BIGINT NOT NULL, PRIMARY KEY ({key}))"
        )
    return statements


#: Record this Intercept's schema version in a new ledger (a stored one is kept).
SCHEMA_VERSION_SQL: Final = (
    "INSERT INTO ledger_meta (key, value) VALUES ('schema_version', %s) "
    "ON CONFLICT (key) DO NOTHING"
)


def upsert_sql(table: str) -> str:
    """Add one row's count to `table`, creating the row when it is new."""
    labels = TABLES[table]
    columns = ", ".join(("hour", *labels, "count"))
    values = ", ".join(["%s"] * (len(labels) + 2))
    key = ", ".join(("hour", *labels))
    return (
        f"INSERT INTO {table} ({columns}) VALUES ({values}) ON CONFLICT ({key}) "
        f"DO UPDATE SET count = {table}.count + excluded.count"
    )


def prune_sql(table: str) -> str:
    """Delete `table`'s buckets that started before a given hour."""
    return f"DELETE FROM {table} WHERE hour < %s"


def daily_sql(table: str) -> str:
    """`table`'s counts summed per UTC day and label combination, for hours in [%s, %s)."""
    labels = ", ".join(TABLES[table])
    return (
        f"SELECT hour / {DAY} AS day, {labels}, CAST(SUM(count) AS BIGINT) FROM {table} "
        f"WHERE hour >= %s AND hour < %s "
        f"GROUP BY day, {labels} ORDER BY day, {labels}"
    )


def first_hour_sql(table: str) -> str:
    """The start of `table`'s earliest stored hourly bucket (NULL when it holds none)."""
    return f"SELECT MIN(hour) FROM {table}"


# A replayed spool file's marker: key `spool:<file id>`, value the replay's Unix time (so
# that pruning removes it with the buckets of its age).
MARK_SQL: Final = (
    "INSERT INTO ledger_meta (key, value) VALUES ('spool:' || %s, %s) ON CONFLICT (key) DO NOTHING"
)
UNMARK_SQL: Final = (
    "DELETE FROM ledger_meta WHERE key LIKE 'spool:%%' AND CAST(value AS BIGINT) < %s"
)


def rows_by_table(batch: Batch) -> Rows:
    """The batch as upsert parameters per table, sorted so that concurrent writers take row
    locks in the same order (no deadlocks between replicas)."""
    out: Rows = {}
    for (table, hour, labels), count in sorted(batch.items()):
        if count:
            out.setdefault(table, []).append((hour, *labels, count))
    return out
