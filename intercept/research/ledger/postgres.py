"""The PostgreSQL backend: one database that every replica shares.

Needs the `psycopg` package (version 3), imported only when a PostgreSQL ledger is used.
Every transaction sets a 30 s `statement_timeout`, so a stuck server fails a flush instead
of holding the writer forever. The first connection of each process creates the tables under
a transaction-scoped advisory lock (concurrent `CREATE TABLE IF NOT EXISTS` can collide in the
catalog). A kept connection that the server dropped while idle (restart, failover, idle
timeout) is replaced at once: the flush tries once more on a new connection and is not
counted as a failure. Error descriptions keep the server's host name and hide its password.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from intercept.research.ledger.backend import SQLBackend, scrub_error

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgreSQLBackend"]


class PostgreSQLBackend(SQLBackend["psycopg.Connection[tuple[Any, ...]]"]):
    """A PostgreSQL database at `url` (libpq URL; see `intercept.research.ledger.urls`)."""

    name = "postgresql"
    tables_sql = (
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
    )

    def __init__(self, url: str, connect_timeout: float) -> None:
        super().__init__(url)
        self.connect_timeout = connect_timeout
        parts = urlsplit(url)
        self._host = parts.hostname or ""
        self._secrets = tuple(s for s in (parts.password, unquote(parts.password or "")) if s)

    def describe(self, error: BaseException) -> str:
        return scrub_error(error, keep=(self._host,), secrets=self._secrets)

    def _open(self) -> psycopg.Connection[tuple[Any, ...]]:
        import psycopg

        return psycopg.connect(
            self.url, connect_timeout=max(1, round(self.connect_timeout)), autocommit=False
        )

    def _alive(self, conn: psycopg.Connection[tuple[Any, ...]]) -> bool:
        return not conn.closed

    @contextlib.contextmanager
    def _begin(self, conn: psycopg.Connection[tuple[Any, ...]]) -> Iterator[None]:
        with conn.transaction():
            conn.execute("SET LOCAL statement_timeout = 30000")
            yield

    def _lock_schema(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        # one process at a time creates the tables (concurrent CREATE IF NOT EXISTS can
        # collide in the catalog)
        conn.execute("SELECT pg_advisory_xact_lock(7263540131)")

    def _execute(
        self,
        conn: psycopg.Connection[tuple[Any, ...]],
        sql: str,
        params: Sequence[Any] | None = None,
    ) -> psycopg.Cursor[tuple[Any, ...]]:
        return conn.execute(sql, params)

    def _executemany(
        self, conn: psycopg.Connection[tuple[Any, ...]], sql: str, params: list[tuple[Any, ...]]
    ) -> None:
        with conn.cursor() as cursor:
            cursor.executemany(sql, params)

    def _dropped(self, conn: psycopg.Connection[tuple[Any, ...]], error: BaseException) -> bool:
        import psycopg

        return isinstance(error, psycopg.OperationalError) and conn.broken

    def connect_read_only(self) -> psycopg.Connection[tuple[Any, ...]]:
        import psycopg

        conn = psycopg.connect(self.url, connect_timeout=round(self.connect_timeout))
        try:
            conn.read_only = True
        except BaseException:
            conn.close()
            raise
        return conn
