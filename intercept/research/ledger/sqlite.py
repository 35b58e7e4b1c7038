"""The SQLite backend: a ledger file that the workers of one host share.

The file is opened in WAL mode (`synchronous = NORMAL`), so readers never block the writer;
writers (several `intercept serve` workers on one file) take the write lock with
`BEGIN IMMEDIATE` and wait for each other up to `busy_timeout` seconds (a lock held longer
fails that flush: the counts are kept for the next one). The file is opened at the first
flush, not before: a folder that does not exist yet is a failed flush, not a failed start.
Statements are the shared ones of `intercept.research.ledger.schema`, with `?` for `%s`.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from intercept.research.ledger.backend import LedgerError, SQLBackend

__all__ = ["SQLiteBackend"]


def _sql(statement: str) -> str:
    return statement.replace("%s", "?")


class SQLiteBackend(SQLBackend[sqlite3.Connection]):
    """A SQLite ledger file at `path` (absolute)."""

    name = "sqlite"
    closing_errors = (sqlite3.Error,)
    tables_sql = "SELECT name FROM sqlite_master WHERE type = 'table'"

    def __init__(self, url: str, path: Path, busy_timeout: float) -> None:
        super().__init__(url)
        self.path = path
        self.busy_timeout = busy_timeout

    def _open(self) -> sqlite3.Connection:
        return sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )

    def _configure(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")

    @contextlib.contextmanager
    def _begin(self, conn: sqlite3.Connection) -> Iterator[None]:
        conn.execute("BEGIN IMMEDIATE")  # the write lock now: no upgrade deadlocks later
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _execute(
        self, conn: sqlite3.Connection, sql: str, params: Sequence[Any] | None = None
    ) -> sqlite3.Cursor:
        if params is None:
            return conn.execute(_sql(sql))
        return conn.execute(_sql(sql), params)

    def _executemany(
        self, conn: sqlite3.Connection, sql: str, params: list[tuple[Any, ...]]
    ) -> None:
        conn.executemany(_sql(sql), params)

    def connect_read_only(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise LedgerError(f"{self.url}: no such ledger file ({self.path})")
        uri = self.path.resolve().as_uri() + "?mode=ro"
        return sqlite3.connect(uri, uri=True, timeout=self.busy_timeout)
