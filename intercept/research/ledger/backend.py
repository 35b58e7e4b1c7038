"""The backend interface (`Backend`), and the connect/transaction/retry code that SQLite and
PostgreSQL share (`SQLBackend`).

A backend is one database. Its methods run in worker threads, serialized by the writer's I/O
lock, never on the request path. Every operation is ONE transaction: all of it is applied or
none of it, and a failure is raised (the writer keeps the counts and retries them with the
next flush). If a commit fails in a way that leaves unknown whether the database applied it
(the connection drops during COMMIT), the retry may count that batch twice; it never loses it.

`SQLBackend` keeps one connection per process: a connection inherited over fork is never
used (nor closed: it is the parent's). Nothing is opened before the first operation, so a
database that is down does not stop the server from starting. The first operation of a
connection creates the tables if they are missing and refuses a ledger of another schema
version (`LedgerError`). After any failure the connection is closed and the next operation
opens a new one (the file may have moved or been repaired, the server restarted). A dialect
may retry once, within the same operation, when a kept connection turns out to have been
dropped while idle (`SQLBackend._dropped`).

Errors are described for `status.last_error` and logs by `scrub_error`: the exception type
and the first line of its message, without URLs, credentials or quoted values (a quoted
value may be a label value or a password).
"""

from __future__ import annotations

import contextlib
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from intercept.errors import InterceptError
from intercept.research.ledger.schema import (
    MARK_SQL,
    SCHEMA_VERSION,
    SCHEMA_VERSION_SQL,
    TABLES,
    UNMARK_SQL,
    Rows,
    ddl,
    prune_sql,
    upsert_sql,
)

__all__ = ["Backend", "Cursor", "LedgerError", "SQLBackend", "check_version", "scrub_error"]


class LedgerError(InterceptError):
    """The ledger cannot be opened or read (bad URL, missing file, not a ledger database).

    Messages never hold a password. Failures of the background flush are not raised: they are
    reported in `Ledger.status`."""


# --- scrubbing ------------------------------------------------------------------------------

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
_SECRET_KV = re.compile(r"(?i)\b(password|passwd|pwd|user|dbname)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)")
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'|«[^»]*»")


def scrub_error(
    error: BaseException, *, keep: Iterable[str] = (), secrets: Iterable[str] = ()
) -> str:
    """`ExceptionType: first line of the message`, with URLs, `key=value` credentials, quoted
    values (which may hold a label value or a password) and every string in `secrets`
    removed; a quoted string equal to one in `keep` (the server's host name) stays."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _URL.sub("<url>", text)
    text = _SECRET_KV.sub(lambda m: f"{m.group(1)}=***", text)
    kept = set(keep)
    text = _QUOTED.sub(lambda m: m.group(0) if m.group(0)[1:-1] in kept else '"…"', text)
    if len(text) > 200:
        text = text[:199] + "…"
    name = type(error).__name__
    return f"{name}: {text}" if text else name


def check_version(found: object) -> None:
    """Refuse a ledger whose stored schema version is not the one this Intercept writes."""
    if str(found) != str(SCHEMA_VERSION):
        raise LedgerError(
            f"ledger schema version {found} is not the version {SCHEMA_VERSION} this Intercept "
            "writes (upgrade Intercept, or use a new ledger database)"
        )


# --- the interface --------------------------------------------------------------------------


class Backend(ABC):
    """One database. Methods run in worker threads, serialized by the ledger's I/O lock."""

    name: str

    @abstractmethod
    def write(self, rows: Rows) -> None:
        """Add the rows' counts in one transaction; raise on any failure (nothing applied)."""

    def write_once(self, rows: Rows, marker: str, now: int) -> bool:
        """Add the rows' counts together with the marker `marker` in `ledger_meta`, in one
        transaction, unless the marker is already there (then add nothing and return False):
        a spool file is replayed at most once, whatever crashes or races."""
        raise NotImplementedError(f"{type(self).__name__} cannot replay a spool")

    @abstractmethod
    def prune(self, before_hour: int) -> int:
        """Delete buckets older than `before_hour`; return the number of rows deleted."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection, if any."""

    def describe(self, error: BaseException) -> str:
        """`error` as `status.last_error` and the logs show it (see `scrub_error`)."""
        return scrub_error(error)


# --- the shared SQL implementation ----------------------------------------------------------


class Cursor(Protocol):
    """What both drivers' cursors give back after `execute`."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> Any: ...


class _Closable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=_Closable)


class SQLBackend(Backend, Generic[C]):
    """A `Backend` over a DB-API connection of type `C`: one connection per process, one
    transaction per operation, the schema made and checked on connecting (see the module
    docstring). A dialect supplies how to open, configure and test a connection, how to run
    a transaction and a statement, and which failures mean a dropped idle connection.

    `url` is the URL the backend was made from (for the reader's messages; it may hold a
    password, so it is never logged as it is: see `intercept.research.ledger.urls.redacted_url`)."""

    #: What closing a connection may raise (suppressed: it may be broken already).
    closing_errors: tuple[type[Exception], ...] = (Exception,)
    #: A statement listing the database's tables by name (one column).
    tables_sql: str = ""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: C | None = None
        self._pid = 0

    # -- what a dialect supplies --

    @abstractmethod
    def _open(self) -> C:
        """A new connection, not yet in a transaction."""

    def _configure(self, conn: C) -> None:
        """Session settings of a new connection, before its first transaction."""

    def _alive(self, conn: C) -> bool:
        """False when the driver knows `conn` is closed."""
        return True

    @abstractmethod
    def _begin(self, conn: C) -> contextlib.AbstractContextManager[None]:
        """One transaction on `conn`: committed when the block ends, rolled back when it
        raises."""

    def _lock_schema(self, conn: C) -> None:
        """Within the schema transaction, before the tables are made: keep other processes
        out until it commits."""

    @abstractmethod
    def _execute(self, conn: C, sql: str, params: Sequence[Any] | None = None) -> Cursor:
        """Run one statement written with `%s` placeholders (without parameters: as it is)."""

    @abstractmethod
    def _executemany(self, conn: C, sql: str, params: list[tuple[Any, ...]]) -> None:
        """Run one statement (`%s` placeholders) once per parameter tuple."""

    def _dropped(self, conn: C, error: BaseException) -> bool:
        """True when `error` shows that `conn`, kept from an earlier operation, was dropped
        by the server while idle: the operation is tried once more on a new connection."""
        return False

    @abstractmethod
    def connect_read_only(self) -> C:
        """A connection that cannot write (for `LedgerReader`); never creates a database.
        Raises `LedgerError` when there is no ledger to read."""

    # -- shared --

    def _kept(self) -> C | None:
        conn = self._conn
        if conn is not None and self._pid == os.getpid() and self._alive(conn):
            return conn
        return None

    def _connection(self) -> C:
        kept = self._kept()
        if kept is not None:
            return kept
        self._conn = None  # a connection inherited over fork is never used
        conn = self._open()
        try:
            self._configure(conn)
            with self._begin(conn):
                self._lock_schema(conn)
                for statement in ddl():
                    self._execute(conn, statement)
                self._execute(conn, SCHEMA_VERSION_SQL, (str(SCHEMA_VERSION),))
                row = self._execute(
                    conn, "SELECT value FROM ledger_meta WHERE key = 'schema_version'"
                ).fetchone()
                check_version(None if row is None else row[0])
        except BaseException:
            conn.close()
            raise
        self._conn, self._pid = conn, os.getpid()
        return conn

    def _transaction(self, work: Callable[[C], int]) -> int:
        for attempt in (1, 2):
            reused = self._kept() is not None
            conn = self._connection()
            try:
                with self._begin(conn):
                    return work(conn)
            except BaseException as error:
                # a kept connection that the server dropped while idle (restart, failover,
                # idle timeout): one more try on a new one, within this operation
                retry = attempt == 1 and reused and self._dropped(conn, error)
                self.close()  # reopen next time: the file may have moved, or be repaired
                if retry:
                    continue
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _upsert(self, conn: C, rows: Rows) -> None:
        for table, params in rows.items():
            self._executemany(conn, upsert_sql(table), params)

    def write(self, rows: Rows) -> None:
        def work(conn: C) -> int:
            self._upsert(conn, rows)
            return 0

        self._transaction(work)

    def write_once(self, rows: Rows, marker: str, now: int) -> bool:
        def work(conn: C) -> int:
            # a concurrent replay of the same file waits here for the first to commit
            if self._execute(conn, MARK_SQL, (marker, str(now))).rowcount != 1:
                return 0  # replayed before (the file outlived a crash)
            self._upsert(conn, rows)
            return 1

        return self._transaction(work) == 1

    def prune(self, before_hour: int) -> int:
        def work(conn: C) -> int:
            deleted = 0
            for table in TABLES:
                deleted += max(self._execute(conn, prune_sql(table), (before_hour,)).rowcount, 0)
            self._execute(conn, UNMARK_SQL, (before_hour,))
            return deleted

        return self._transaction(work)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._pid == os.getpid():
            with contextlib.suppress(*self.closing_errors):  # closing a broken connection
                conn.close()

    def table_names(self, conn: C) -> set[str]:
        """The names of the tables the database holds."""
        return {str(row[0]) for row in self.query(conn, self.tables_sql)}

    def query(self, conn: C, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Every row of one statement (`%s` placeholders), on any connection of this
        backend's kind (the reader's own)."""
        return list(self._execute(conn, sql, tuple(params)).fetchall())
